import Foundation

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

    public init(threads: Int, name: String = "authd-hash") {
        threadCount = max(1, threads)
        for index in 0..<threadCount {
            let thread = Thread { [self] in self.work() }
            thread.name = "\(name)-\(index)"
            running += 1
            thread.start()
        }
    }

    /// Runs `body` on one of the pool's threads.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            enqueue {
                continuation.resume(with: Result { try body() })
            }
        }
    }

    private func enqueue(_ item: @escaping @Sendable () -> Void) {
        condition.lock()
        if stopping {
            condition.unlock()
            item()  // after shutdown, run inline rather than leave a caller waiting forever
            return
        }
        queue.append(item)
        condition.signal()
        condition.unlock()
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
}
