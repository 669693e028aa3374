#define _GNU_SOURCE
#include "CCallerThread.h"

#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

int authd_poll_readable_until(int fd, int64_t deadline_ns) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t left = deadline_ns - ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
    if (left < 0) left = 0;
    struct timespec timeout = {.tv_sec = left / 1000000000, .tv_nsec = left % 1000000000};
    struct pollfd poll = {.fd = fd, .events = POLLIN};
    int ready = ppoll(&poll, 1, &timeout, NULL);
    return ready < 0 ? -1 : ready > 0;
}

int authd_set_timer_slack(unsigned long nanoseconds) {
    return prctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0);
}

int authd_name_thread(const char *name) {
    char kept[16];
    strncpy(kept, name, sizeof kept - 1);
    kept[sizeof kept - 1] = 0;
    return pthread_setname_np(pthread_self(), kept);
}
