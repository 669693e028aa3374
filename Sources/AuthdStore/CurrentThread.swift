import Glibc

/// Names the calling thread in the kernel: what `top -H`, `perf` and /proc show (at most 15
/// bytes). For threads that name themselves first thing: Foundation's `Thread.name` reaches the
/// kernel only once the starting thread has stored the new thread's handle, which can be after
/// the new thread has run its first lines, and a thread then keeps the name it inherited from its
/// starter (a test saw that in 1 run in 15). `pthread_setname_np` is not in Swift's Glibc module.
public func nameCurrentThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = Array(name.utf8.prefix(15)).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

/// Sets the calling thread's nice value; false (with errno set) without the right to. On Linux
/// the nice value belongs to the thread: `who` 0 is the calling thread (setpriority(2), BUGS),
/// not the whole process.
@discardableResult
public func setCurrentThreadNice(_ nice: Int32) -> Bool {
    setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, nice) == 0
}

/// The names of the store's own threads, as /proc/PID/task/*/comm shows them: the daemon's
/// statistics sum its threads' CPU time by name.
public enum StoreThreadName {
    public static let writer = "authd-writer"
    public static let acknowledger = "authd-acks"
}
