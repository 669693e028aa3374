#include "CIOPriority.h"

#include <sys/syscall.h>
#include <unistd.h>

// From linux/ioprio.h: who = IOPRIO_WHO_PROCESS with id 0 is the calling thread; the class
// sits above the 13 bits of the level.
enum { who_process = 1, class_idle = 3, class_shift = 13 };

int authd_set_idle_io_priority(void) {
    return (int)syscall(SYS_ioprio_set, who_process, 0, class_idle << class_shift);
}

int authd_io_priority_class(void) {
    long priority = syscall(SYS_ioprio_get, who_process, 0);
    return priority < 0 ? -1 : (int)(priority >> class_shift);
}
