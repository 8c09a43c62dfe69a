/* wmux.h - many WatchEvents watches on one messages-svc WatchMany call.
 *
 * gRPC 1.51 costs ~13 KiB per call on each side, so one WatchEvents call per
 * event stream made 10,000 idle streams cost ~147 MiB (README, "Memory of
 * idle streams"). wmux carries every watch of the process on ONE
 * bidirectional WatchMany call instead: a watch costs our own state only.
 *
 * To its user a watch looks like the rpc_stream it replaces: start it for
 * (user, resume token) with on_msg (each WatchEvent) and on_end (its status,
 * exactly once, after the last on_msg); cancel; release.
 *
 * The call is opened lazily by the first watch, on the channel given to
 * wmux_new (rpc_channel_open_streams), and again by the first watch after
 * it ended. When it ends (a messages-svc replica draining, the connection
 * lost or aged out) every watch on it ends with the call's status, exactly
 * as each WatchEvents call ended before: the owner resumes from the last
 * event's token on a new watch (the browser reconnects with
 * Last-Event-ID). A call that ended young (within WMUX_YOUNG_MS) makes
 * later starts fail fast with UNAVAILABLE for a backoff (WMUX_BACKOFF_MIN_MS
 * doubling to WMUX_BACKOFF_MAX_MS), so an upstream that is down costs one
 * call attempt per backoff, not one per browser reconnect.
 */
#ifndef GW_WMUX_H
#define GW_WMUX_H

#include <stdint.h>

#include "cruddur/rpc_client.h"

#define WMUX_YOUNG_MS 2000
#define WMUX_BACKOFF_MIN_MS 100
#define WMUX_BACKOFF_MAX_MS 2000
/* wmux_free half-closes the call, and cancels it if it has not ended
 * after this long. */
#define WMUX_CLOSE_WAIT_MS 1000

typedef struct wmux wmux;
typedef struct wmux_watch wmux_watch;

/* Creates the multiplexer for `ch` (a reference: it must outlive the
 * wmux). At most `max_watches` watches exist at once (started and not yet
 * released); more fail with RESOURCE_EXHAUSTED. Opens no call yet.
 * Returns 0 and sets *out, or -1 (out of memory; nothing allocated). */
int wmux_new(rpc_channel *ch, long max_watches, wmux **out);

/* Starts a watch of `user_uuid` from `resume_token` ("" or NULL: from now)
 * on the shared call, opening the call first if there is none.
 * Callbacks: on_msg gets each Cruddur__Messages__V1__WatchEvent (valid
 * during the call only; return -1 to cancel the watch); on_end its end
 * (the server's per-watch status, the call's end, or CANCELLED after
 * wmux_watch_cancel or on_msg's -1), exactly once and after the last
 * on_msg. They run on the channel's stream thread and must not block;
 * on_end may also run inside wmux_watch_cancel / wmux_watch_release on
 * the caller's thread, so the caller must not hold a lock on_end takes.
 * `user` must stay valid until on_end has returned.
 * Returns the watch, holding one reference for the caller (release with
 * wmux_watch_release), or NULL with *st filled when it cannot start
 * (draining, backoff, cap, out of memory): no callback will run. */
wmux_watch *wmux_watch_start(wmux *m, const char *user_uuid, const char *resume_token,
                             rpc_stream_msg_fn on_msg, rpc_stream_end_fn on_end, void *user,
                             rpc_status *st);

/* Ends the watch: sends `close` for it and runs on_end (CANCELLED), here
 * or, when on_msg is running right now, on the channel's thread when it
 * returns. No-op once on_end ran or is about to. Any thread. */
void wmux_watch_cancel(wmux_watch *w);

/* Drops the caller's reference (cancelling the watch first if it still
 * runs). Exactly once; w must not be used afterwards. */
void wmux_watch_release(wmux_watch *w);

/* Watches started and not yet ended, and WatchMany calls opened since
 * wmux_new (for /metrics). */
long wmux_watch_count(wmux *m);
uint64_t wmux_calls_opened(wmux *m);
/* 1 while a WatchMany call is open. */
int wmux_call_open(wmux *m);

/* Stops: no new watches or calls; half-closes the call (cancelling it
 * after WMUX_CLOSE_WAIT_MS) and waits (until `until_us`, ts_mono_us clock)
 * for it to end and be freed, then frees the wmux: returns 0. Every watch
 * must have been released. Returns -1 and leaves the wmux allocated when
 * the call did not end in time (its callbacks still point into it). */
int wmux_free(wmux *m, int64_t until_us);

#endif
