import AuthdStore
import Foundation
import Synchronization

/// A fixed set of threads for CPU-heavy work (password hashing), so that it never runs on an
/// event loop or starves the cooperative pool. Work beyond the threads waits in a queue.
public final class BlockingPool: @unchecked Sendable {
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    private var queueHead = 0
    private var stopping = false
    private var running = 0

    public let threadCount: Int
    /// The threads' nice value (0-19): above 0, the event loops outweigh the hashing threads
    /// (at 10, by about ten to one), so a login storm uses every idle cycle and leaves the loops
    /// theirs. A loop that wakes may still wait out a hashing thread's slice: an EEVDF kernel
    /// lets the running thread finish it (up to a few milliseconds, with the tick). `SCHED_IDLE`
    /// would end that wait, but lets any busy process on the host starve logins, and measured
    /// no steadier on the machine this was measured on (BENCHMARKS.md).
    public let niceness: Int32
    /// CPU time the threads have spent on work, in nanoseconds (each thread's own clock, read
    /// around each body: a hash takes milliseconds, the two readings about a microsecond).
    private let workNanoseconds = Atomic<UInt64>(0)

    /// CPU time the threads have spent on work since the pool started, in microseconds.
    public var workMicros: UInt64 { workNanoseconds.load(ordering: .relaxed) / 1000 }
    /// The most calls that may wait for a thread. One more is refused at once (503): past it the
    /// wait is longer than a caller would wait for its answer, and a queue without a bound lets
    /// clients that send faster than the threads work grow the daemon and every later call's
    /// wait without end (16,000 sign-ins sent at once: 2.6 minutes of two cores' hashing).
    public let queueLimit: Int
    private let name: String
    private let refusedCalls = Atomic<UInt64>(0)

    /// Calls waiting for a thread now.
    public var queued: Int {
        condition.lock()
        defer { condition.unlock() }
        return queue.count - queueHead
    }

    /// Calls refused since the pool started, because `queueLimit` calls were waiting.
    public var refused: UInt64 { refusedCalls.load(ordering: .relaxed) }

    public init(threads: Int, name: String = "authd-hash", niceness: Int32 = 0, queueLimit: Int = .max) {
        threadCount = max(1, threads)
        self.name = name
        self.queueLimit = max(1, queueLimit)
        self.niceness = min(max(niceness, 0), 19)
        for index in 0..<threadCount {
            let threadName = "\(name)-\(index)"
            let thread = Thread { [self] in
                nameCurrentThread(threadName)
                if self.niceness > 0 { setCurrentThreadNice(self.niceness) }
                self.work()
            }
            running += 1
            thread.start()
        }
    }

    /// Runs `body` on one of the pool's threads; `AuthdError` 503 at once, without running it,
    /// when `queueLimit` calls are already waiting.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let queued = enqueue {
                // Counted before the caller resumes, so that what it reads next includes it.
                let started = Self.threadCPUNanoseconds()
                let result = Result { try body() }
                self.workNanoseconds.add(Self.threadCPUNanoseconds() &- started, ordering: .relaxed)
                continuation.resume(with: result)
            }
            guard !queued else { return }
            refusedCalls.add(1, ordering: .relaxed)
            continuation.resume(
                throwing: AuthdError.unavailable(
                    "The server is busy: \(queueLimit) calls are waiting for its \(name) threads. Try again shortly."))
        }
    }

    /// Queues `item` (or runs it here after shutdown); false when `queueLimit` items wait.
    private func enqueue(_ item: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        if stopping {
            condition.unlock()
            item()  // after shutdown, run inline rather than leave a caller waiting forever
            return true
        }
        guard queue.count - queueHead < queueLimit else {
            condition.unlock()
            return false
        }
        queue.append(item)
        condition.signal()
        condition.unlock()
        return true
    }

    /// Lets queued work finish, then ends the threads.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while queueHead == queue.count && !stopping { condition.wait() }
            if queueHead == queue.count {
                running -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let item = queue[queueHead]
            queueHead += 1
            if queueHead > 64 && queueHead * 2 > queue.count {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
            condition.unlock()
            item()
        }
    }

    private static func threadCPUNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
