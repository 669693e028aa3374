import AuthdStore
import Foundation
import Synchronization

/// A fixed set of threads for CPU-heavy work (password hashing), so that it never runs on an
/// event loop or starves the cooperative pool. Work beyond the threads waits in line, by lane.
public final class BlockingPool: @unchecked Sendable {
    /// Whose calls a call waits among. The threads take the lanes' calls in turn, one call of
    /// each lane with calls waiting, and each lane's in the order they came: a client that
    /// sends calls faster than the threads work (a retry loop, a flood of sign-ins from one
    /// address) makes its own calls wait, not every other client's.
    public struct Lane: Hashable, Sendable {
        private let key: Int

        /// The lane of calls that name no one.
        public static let shared = Lane(key: 0)

        public init<Key: Hashable>(_ key: Key) {
            self.key = key.hashValue
        }

        private init(key: Int) {
            self.key = key
        }
    }

    /// A waiting call: its work, which returns what resumes its caller. The thread marks the
    /// call ended before it resumes the caller, so that whatever the caller does next (a
    /// write, which asks `nextEndExpected`) no longer counts it as running.
    typealias Item = @Sendable () -> @Sendable () -> Void

    /// A lane's waiting calls, first come first served.
    private struct LaneQueue {
        var items: [Item] = []
        var head = 0
        var count: Int { items.count - head }

        mutating func take() -> Item {
            let item = items[head]
            head += 1
            if head > 64 && head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
            return item
        }
    }

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var lanes: [Lane: LaneQueue] = [:]
    /// The lanes with calls waiting, in the order the threads visit them; `nextLane` is the
    /// next one's index.
    private var turns: [Lane] = []
    private var nextLane = 0
    private var waiting = 0
    private var stopping = false
    private var running = 0
    /// When each thread began the call it is running, nil while it waits for one.
    private var runningSince: [ContinuousClock.Instant?]
    /// How long a call has taken, wall time, as a moving mean (each call counts an eighth).
    private var typicalRun: Duration?

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
    /// A full line still takes a call whose lane holds less than its share of the limit (the
    /// limit over the lanes with calls waiting), so that one lane that filled it does not
    /// refuse every other: at most about twice the limit wait.
    public let queueLimit: Int
    private let name: String
    private let refusedCalls = Atomic<UInt64>(0)

    /// Calls waiting for a thread now.
    public var queued: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiting
    }

    /// Calls refused since the pool started, because `queueLimit` calls were waiting.
    public var refused: UInt64 { refusedCalls.load(ordering: .relaxed) }

    public init(threads: Int, name: String = "authd-hash", niceness: Int32 = 0, queueLimit: Int = .max) {
        threadCount = max(1, threads)
        self.name = name
        self.queueLimit = max(1, queueLimit)
        self.niceness = min(max(niceness, 0), 19)
        runningSince = Array(repeating: nil, count: threadCount)
        for index in 0..<threadCount {
            let threadName = "\(name)-\(index)"
            let thread = Thread { [self] in
                nameCurrentThread(threadName)
                if self.niceness > 0 { setCurrentThreadNice(self.niceness) }
                self.work(thread: index)
            }
            running += 1
            thread.start()
        }
    }

    /// Runs `body` on one of the pool's threads, in its turn among `lane`'s calls; `AuthdError`
    /// 503 at once, without running it, when the line is full (`queueLimit`).
    public func run<T: Sendable>(in lane: Lane = .shared, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let queued = enqueue(in: lane) {
                // Counted before the caller resumes, so that what it reads next includes it.
                let started = Self.threadCPUNanoseconds()
                let result = Result { try body() }
                self.workNanoseconds.add(Self.threadCPUNanoseconds() &- started, ordering: .relaxed)
                return { continuation.resume(with: result) }
            }
            guard !queued else { return }
            refusedCalls.add(1, ordering: .relaxed)
            continuation.resume(
                throwing: AuthdError.unavailable(
                    "The server is busy: \(queueLimit) calls are waiting for its \(name) threads. Try again shortly."))
        }
    }

    /// Queues `item` in `lane` (or runs it here after shutdown); false when the line is full for
    /// that lane.
    private func enqueue(in lane: Lane, _ item: @escaping Item) -> Bool {
        condition.lock()
        if stopping {
            condition.unlock()
            item()()  // after shutdown, run inline rather than leave a caller waiting forever
            return true
        }
        let held = lanes[lane]?.count ?? 0
        if waiting >= queueLimit {
            let lanesWaiting = turns.count + (held == 0 ? 1 : 0)
            guard held < queueLimit / lanesWaiting else {
                condition.unlock()
                return false
            }
        }
        if held == 0 { turns.append(lane) }
        lanes[lane, default: LaneQueue()].items.append(item)
        waiting += 1
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

    /// How long until the first of the calls running now is likely to end (the calls' mean
    /// time so far, less what each has run): zero when one has run longer than the mean; nil
    /// when none runs, or before any has ended.
    public func nextEndExpected() -> Duration? {
        let now = ContinuousClock.now
        condition.lock()
        defer { condition.unlock() }
        guard let typicalRun else { return nil }
        let soonest = runningSince.lazy.compactMap { $0 }.min()
        return soonest.map { max(.zero, $0 + typicalRun - now) }
    }

    private func work(thread index: Int) {
        while true {
            condition.lock()
            while waiting == 0 && !stopping { condition.wait() }
            if waiting == 0 {
                running -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let item = takeInTurn()
            let began = ContinuousClock.now
            runningSince[index] = began
            condition.unlock()
            let resume = item()
            let took = .now - began
            condition.lock()
            typicalRun = typicalRun.map { $0 + (took - $0) / 8 } ?? took
            runningSince[index] = nil
            condition.unlock()
            resume()
        }
    }

    /// The next lane's first call; a lane left empty leaves the turns. Called with the lock held
    /// and a call waiting.
    private func takeInTurn() -> Item {
        if nextLane >= turns.count { nextLane = 0 }
        let lane = turns[nextLane]
        let item = lanes[lane]!.take()
        waiting -= 1
        if lanes[lane]!.count == 0 {
            lanes[lane] = nil
            turns.remove(at: nextLane)
        } else {
            nextLane += 1
        }
        return item
    }

    private static func threadCPUNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
