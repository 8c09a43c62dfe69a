/* sig.h - SIGTERM/SIGINT for a server that drains before it exits.
 *
 * A server calls sig_block_stop() first thing, before anything starts a
 * thread (gRPC core, libcurl's resolver, connection pools, our own): every
 * thread inherits the mask, so the stop signals can never be delivered to a
 * thread whose default action is to kill the process. sig_wait_stop() then
 * takes the first one; any later one (an impatient operator, a second
 * `kill`, Kubernetes does not send one but people do) is logged at warn and
 * ignored while the drain goes on. SIGKILL remains the way to stop at once.
 *
 * Usage:
 *   sig_block_stop();          // first, before any thread
 *   ... start servers ...
 *   int s = sig_wait_stop();   // blocks; later signals are logged, ignored
 *   ... drain, free ...
 *   sig_watch_end();           // joins the watcher, just before returning
 */
#ifndef CRUDDUR_SIG_H
#define CRUDDUR_SIG_H

/* Blocks SIGTERM and SIGINT in the calling thread (threads started later
 * inherit the block) and ignores SIGPIPE (a write to a closed socket then
 * fails with EPIPE instead of killing the process). Returns 0, or -1 when
 * the mask cannot be set (errno). */
int sig_block_stop(void);

/* Waits for SIGTERM or SIGINT (blocked by sig_block_stop) and returns its
 * number. Then starts a watcher thread that logs every later SIGTERM/SIGINT
 * ("ignored: draining") until sig_watch_end. If the watcher cannot start,
 * later signals stay pending (blocked) and are ignored without a log line. */
int sig_wait_stop(void);

/* Stops and joins the watcher started by sig_wait_stop (no-op without one). */
void sig_watch_end(void);

#endif
