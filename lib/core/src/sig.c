/* sig.c - the stop signals of a draining server (see sig.h). */
#include "cruddur/sig.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "cruddur/log.h"

static pthread_t sig_watcher;
static int sig_watching;           /* sig_watcher was started (main thread only) */
static atomic_int sig_watch_stop;  /* set by sig_watch_end before it wakes the watcher */

static void stop_set(sigset_t *s) {
  sigemptyset(s);
  sigaddset(s, SIGTERM);
  sigaddset(s, SIGINT);
}

int sig_block_stop(void) {
  sigset_t s;
  stop_set(&s);
  int rc = pthread_sigmask(SIG_BLOCK, &s, NULL);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

static const char *sig_name(int sig) { return sig == SIGTERM ? "SIGTERM" : "SIGINT"; }

/* Every thread blocks the stop signals, so a process-directed one stays
 * pending until this sigwait takes it: it can neither kill the process nor
 * interrupt the drain. sig_watch_end wakes it with a thread-directed SIGTERM
 * after setting the flag; a signal arriving in between is simply taken. */
static void *watch_main(void *arg) {
  (void)arg;
  sigset_t s;
  stop_set(&s);
  for (;;) {
    int sig = 0;
    if (sigwait(&s, &sig) != 0) continue;
    if (atomic_load(&sig_watch_stop)) break;
    log_warn("%s received while draining: ignored (in-flight requests finish; SIGKILL "
             "stops at once)",
             sig_name(sig));
  }
  return NULL;
}

int sig_wait_stop(void) {
  sigset_t s;
  stop_set(&s);
  int sig = 0;
  while (sigwait(&s, &sig) != 0) {
  }
  atomic_store(&sig_watch_stop, 0);
  if (pthread_create(&sig_watcher, NULL, watch_main, NULL) == 0)
    sig_watching = 1;
  else
    log_warn("cannot start the signal watcher: later stop signals are ignored silently");
  return sig;
}

void sig_watch_end(void) {
  if (!sig_watching) return;
  atomic_store(&sig_watch_stop, 1);
  pthread_kill(sig_watcher, SIGTERM);
  pthread_join(sig_watcher, NULL);
  sig_watching = 0;
}
