#ifndef AUTHD_CCALLERTHREAD_H
#define AUTHD_CCALLERTHREAD_H

#include <stdint.h>

// What the load tool's open-loop caller needs of its thread and Swift's Glibc module hides:
// ppoll and pthread_setname_np need _GNU_SOURCE, and prctl is variadic.

/// Waits until `fd` is readable or the monotonic clock reaches `deadline_ns`, with nanosecond
/// precision (ppoll(2)). Returns 1 if readable, 0 at the deadline, or -1 with errno set.
int authd_poll_readable_until(int fd, int64_t deadline_ns);

/// Sets the calling thread's timer slack (prctl(2), PR_SET_TIMERSLACK). The default, 50 µs,
/// lets a timed wait end that much late. Returns 0, or -1 with errno set.
int authd_set_timer_slack(unsigned long nanoseconds);

/// Names the calling thread (at most 15 bytes are kept), for per-thread figures: /proc's
/// schedstat, `perf -t`. Returns 0, or an error number.
int authd_name_thread(const char *name);

#endif
