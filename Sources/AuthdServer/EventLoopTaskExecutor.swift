import NIOCore

/// Runs a task's jobs on one event loop. A deferred call's work is a task with this executor
/// as its preference: it starts, resumes after the writer or the hashing pool, and answers on
/// the loop that serves its connection. On the cooperative pool the same call made two more
/// thread hand-offs (loop to pool, pool back to loop), each a wake-up on a small machine.
///
/// Only work that does not block may run here: password hashing and every other slow hash
/// go to the hashing pool and are awaited, and the store's writes to the writer thread.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
