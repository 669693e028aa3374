import NIOCore

/// Runs a task's jobs on one event loop, so that a task which talks to a connection starts,
/// and resumes after each wait, on the thread that does the connection's I/O, with no hand-off
/// between threads (on the cooperative pool each resumption is a wake-up of another thread).
///
/// The daemon runs its deferred calls' tasks on their connection's loop (`RequestHandler`);
/// the client offers the same to its callers (`AuthdClient.taskExecutor`). Only work that does
/// not block may run here: the loop's other connections wait for it.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
