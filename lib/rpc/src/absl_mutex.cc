/* absl_mutex.cc - the one C++ file of lib/rpc: abseil has no C API.
 *
 * gRPC core locks absl::Mutex many times per call. Debian builds abseil
 * without NDEBUG, and there a Mutex's deadlock detector is on by default
 * (kAbort): every Lock records the lock-order graph (GraphCycles, a global
 * table under its own lock). It is a debugging aid: it costs about 9,500
 * instructions of each users-svc GetUser (callgrind, tests/bench/callgrind)
 * and decides nothing a release build of abseil would not. So each process
 * turns it off, through abseil's public API, before gRPC starts.
 */
#include <absl/synchronization/mutex.h>

extern "C" void rpc__absl_deadlock_detection_off(void) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}
