#ifndef AUTHD_CIOPRIORITY_H
#define AUTHD_CIOPRIORITY_H

/// Puts the calling thread's disk reads in the idle class (ioprio_set(2), IOPRIO_CLASS_IDLE):
/// the I/O scheduler (mq-deadline, BFQ) serves them only when no other request waits.
/// Returns 0, or -1 with errno set. A C shim because glibc has no wrapper for ioprio_set and
/// Swift does not import the variadic syscall(2).
int authd_set_idle_io_priority(void);

/// The calling thread's I/O priority class (ioprio_get(2)): 0 none (the default, which follows
/// the nice value), 1 realtime, 2 best effort, 3 idle; or -1 with errno set.
int authd_io_priority_class(void);

#endif
