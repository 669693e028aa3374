import CLMDB
import Foundation
import Logging
import Synchronization

/// The one writer of the store. Write requests queue up; the writer thread runs every queued
/// request in its own nested transaction inside one parent transaction, commits the parent once
/// (one fsync for the whole batch) and only then reports success to each request. A request
/// that fails is rolled back alone and does not disturb the others in its batch.
///
/// LMDB write transactions belong to the thread that began them, hence a dedicated thread
/// rather than an event loop or the cooperative pool.
final class GroupCommitWriter: @unchecked Sendable {
    struct Job {
        /// Runs the request in a write transaction; returns what to do once it is durable.
        let perform: (LMDBWriter) throws -> @Sendable () -> Void
        let fail: @Sendable (any Error) -> Void
        /// Whether it may wait, alone, for the write `Company` expects (`WriteCompany`).
        var mayWaitForCompany = false
        /// When it was made: each request makes its job right before `submit` queues it.
        let queuedAt = ContinuousClock.now
    }

    /// Counters of the writer's work, for benchmarks and logs.
    struct Statistics: Sendable, Equatable {
        var commits: UInt64 = 0
        var writes: UInt64 = 0
        var largestBatch: Int = 0
        /// Where an acknowledged write's time in the store went, summed over the writes, in
        /// microseconds (divided by `writes`, each is a mean per write): waiting in the queue
        /// for its batch to begin; its batch's run and commit (its fsync included); and, once
        /// committed, waiting for the thread that tells the batch's requests.
        var queuedMicros: UInt64 = 0
        var committingMicros: UInt64 = 0
        var acknowledgingMicros: UInt64 = 0
        /// Commits that waited for a second write (`awaitCompany`), and their time waiting
        /// in microseconds.
        var companyWaits: UInt64 = 0
        var companyWaitMicros: UInt64 = 0
    }

    /// What lets a write that comes alone wait for another: how long it may wait at most, and
    /// how soon another write is expected (nil: none is).
    struct Company: Sendable {
        let longest: Duration
        let nextWriteExpected: @Sendable () -> Duration?
    }

    private let environment: LMDBEnvironment
    private let maxBatch: Int
    private let logger: Logger
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var stopping = false
    private var stopped = false
    private var statistics = Statistics()
    private var thread: Thread?
    private var observers: [@Sendable (CommittedChanges) -> Void] = []
    private var company: Company?
    /// Used by the writer thread alone, after each commit.
    private let growthZone: GrowthZone?

    func addObserver(_ observer: @escaping @Sendable (CommittedChanges) -> Void) {
        condition.lock()
        observers.append(observer)
        condition.unlock()
    }

    /// Lets a write that may (`Job.mayWaitForCompany`) and finds the writer idle wait up to
    /// `company.longest` (and a millisecond for the call to reach the writer) for the write
    /// that `company` expects next, so that one commit, and one fsync, serves both.
    func letLoneWritesWait(for company: Company) {
        condition.lock()
        self.company = company
        condition.unlock()
    }

    /// How many deleted sessions wait before the writer sweeps their records (see `Keys`).
    private let sweepRetiredAt: Int
    /// The deleted sessions being swept, lowest id first, and how many of them are done: from
    /// a commit that leaves `sweepRetiredAt` queued, the writer reads the queue once (at most
    /// four times that) and sweeps an eighth of `sweepRetiredAt` in each commit until it is
    /// through. Used by the writer thread alone.
    private var sweepList: [RetiredSession]?
    private var sweptCount = 0
    private var sweepDue = false

    /// The nice value the writer thread asks for; 0 leaves it as it is.
    private let nice: Int32
    /// Resumes the requests of each committed batch, off the writer's thread.
    private let acknowledger = Acknowledger()

    init(
        environment: LMDBEnvironment, maxBatch: Int = 1024, sweepRetiredAt: Int = 4096, growthZone: GrowthZone? = nil,
        nice: Int32 = 0, logger: Logger
    ) {
        self.nice = nice
        self.environment = environment
        self.maxBatch = maxBatch
        self.sweepRetiredAt = max(1, sweepRetiredAt)
        self.growthZone = growthZone
        self.logger = logger
    }

    func start() {
        let thread = Thread { [self] in
            nameCurrentThread(StoreThreadName.writer)
            self.raisePriority()
            self.runLoop()
        }
        self.thread = thread
        thread.start()
        acknowledger.start()
    }

    /// Asks for the configured nice value for this thread alone; without the right to, the
    /// writer runs as it is.
    private func raisePriority() {
        guard nice < 0 else { return }
        if setCurrentThreadNice(nice) {
            logger.debug("writer priority raised", metadata: ["nice": "\(nice)"])
        } else {
            logger.notice(
                "the writer thread keeps its priority: raising it needs root, CAP_SYS_NICE or LimitNICE",
                metadata: ["nice": "\(nice)", "error": "\(String(cString: strerror(errno)))"])
        }
    }

    func submit(_ job: Job) {
        condition.lock()
        if stopping {
            condition.unlock()
            job.fail(StoreError(.unavailable, "the store is shutting down"))
            return
        }
        queue.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Finishes every queued write, then ends the writer thread. Later writes fail.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while thread != nil && !stopped { condition.wait() }
        condition.unlock()
        acknowledger.stop()
    }

    var currentStatistics: Statistics {
        condition.lock()
        var current = statistics
        condition.unlock()
        current.acknowledgingMicros = acknowledger.waitedMicros
        return current
    }

    private func runLoop() {
        keepGrowthZoneAhead()
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.count == 1 && queue[0].mayWaitForCompany && !stopping, let company { awaitCompany(company) }
            if queue.isEmpty && stopping {
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let batch = Array(queue.prefix(maxBatch))
            queue.removeFirst(batch.count)
            condition.unlock()
            commit(batch, begunAt: .now)
            keepGrowthZoneAhead()
        }
    }

    /// Called with the lock held and one write queued; returns with the lock held.
    private func awaitCompany(_ company: Company) {
        // The hint takes its own lock: not under this one.
        condition.unlock()
        let expected = company.nextWriteExpected()
        condition.lock()
        guard let expected, expected <= company.longest else { return }
        let began = ContinuousClock.now
        let deadline = Date(timeIntervalSinceNow: Double((expected + Self.companyTravel) / .seconds(1)))
        while queue.count == 1 && !stopping && condition.wait(until: deadline) {}
        statistics.companyWaits += 1
        statistics.companyWaitMicros += micros(.now - began)
    }

    /// How long after the expected write is due the writer still waits for it: the call's way
    /// from its hashing thread to the writer, through its event loop.
    static let companyTravel = Duration.milliseconds(1)

    /// Deletes the records of a chunk of deleted sessions in the batch's transaction, in a
    /// nested one so that a failure rolls back the chunk alone and leaves the queue for the next
    /// try. The next batch waited for a commit of the chunk's own before (measured: a commit's
    /// fixed cost and its two syncs, for about one commit in fifteen under sign-ins at full
    /// rate); now the batch's acknowledgements wait for the chunk itself, about as long. One
    /// sweep of 4096 at once held every write in flight for about 25 ms, hence chunks. It
    /// changes nothing a reader sees, so the observers are not told. Returns what to note once
    /// the batch has committed.
    private func sweepChunk(in parent: OpaquePointer) -> (list: [RetiredSession], swept: Int)? {
        let chunk = max(1, sweepRetiredAt / 8)
        var txn: OpaquePointer?
        let rc = mdb_txn_begin(environment.env, parent, 0, &txn)
        guard rc == 0, let txn else {
            stopSweep()
            logger.warning("session sweep failed to start", metadata: ["error": "\(lmdbError(rc, "mdb_txn_begin"))"])
            return nil
        }
        do {
            let writer = LMDBWriter(environment: environment, txn: txn)
            // New deletions queue under new numbers, so the list stays true while it is swept.
            let list = try sweepList ?? writer.retiredSessionsByID(limit: 4 * sweepRetiredAt)
            let end = min(list.count, sweptCount + chunk)
            try writer.sweep(list[sweptCount..<end])
            // The list is the queue's first entries: new deletions queue under higher numbers.
            if end == list.count { try writer.dropRetired(count: list.count) }
            try lmdbCheck(mdb_txn_commit(txn), "mdb_txn_commit (session sweep)")
            return (list, end)
        } catch {
            mdb_txn_abort(txn)
            stopSweep()
            logger.warning("session sweep failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// After the batch holding a chunk has committed.
    private func noteSwept(_ progress: (list: [RetiredSession], swept: Int)) {
        if progress.swept == progress.list.count {
            stopSweep()
        } else {
            sweepList = progress.list
            sweptCount = progress.swept
        }
    }

    private func stopSweep() {
        sweepDue = false
        sweepList = nil
        sweptCount = 0
    }

    /// After the batch's answers: caches the next stretch of the file before LMDB grows into it.
    private func keepGrowthZoneAhead() {
        guard let growthZone, let dataEnd = try? environment.dataBytes() else { return }
        growthZone.keepAhead(of: dataEnd)
    }

    /// Commits a batch. First optimistically: every request straight in one transaction, with
    /// no nested transaction (in LMDB each child copies every page it touches, which cost more
    /// than the writes themselves). If a request throws, that transaction is abandoned, the
    /// request fails alone, and the rest of the batch runs again with a nested transaction each.
    /// A request body may therefore run more than once; only its last run is kept.
    private func commit(_ batch: [Job], begunAt begun: ContinuousClock.Instant) {
        guard let parent = begin(batch) else { return }
        let changes = ChangeCollector()
        var completions: [@Sendable () -> Void] = []
        completions.reserveCapacity(batch.count)
        let writer = LMDBWriter(environment: environment, txn: parent, changes: changes)
        for (index, job) in batch.enumerated() {
            do {
                completions.append(try job.perform(writer))
            } catch {
                mdb_txn_abort(parent)
                job.fail(error)
                var rest = batch
                rest.remove(at: index)
                if !rest.isEmpty { commitIsolated(rest, begunAt: begun) }
                return
            }
        }
        finish(parent, batch, completions, changes, begunAt: begun)
    }

    /// Commits a batch with a nested transaction per request, so that one that fails is rolled
    /// back alone.
    private func commitIsolated(_ batch: [Job], begunAt begun: ContinuousClock.Instant) {
        guard let parent = begin(batch) else { return }
        let changes = ChangeCollector()
        var completions: [@Sendable () -> Void] = []
        var pending: [Job] = []  // written, waiting for the commit
        completions.reserveCapacity(batch.count)
        for job in batch {
            var child: OpaquePointer?
            let rc = mdb_txn_begin(environment.env, parent, 0, &child)
            guard rc == 0, let child else {
                job.fail(lmdbError(rc, "mdb_txn_begin (nested)"))
                continue
            }
            do {
                let completion = try job.perform(LMDBWriter(environment: environment, txn: child, changes: changes))
                try lmdbCheck(mdb_txn_commit(child), "mdb_txn_commit (nested)")
                completions.append(completion)
                pending.append(job)
            } catch {
                mdb_txn_abort(child)
                job.fail(error)
            }
        }
        finish(parent, pending, completions, changes, begunAt: begun)
    }

    /// The batch's write transaction; nil, with every request failed, when LMDB refuses one.
    private func begin(_ batch: [Job]) -> OpaquePointer? {
        var parent: OpaquePointer?
        let rc = mdb_txn_begin(environment.env, nil, 0, &parent)
        guard rc == 0, let parent else {
            let error = lmdbError(rc, "mdb_txn_begin")
            logger.error("write batch failed to start", metadata: ["error": "\(error)"])
            batch.forEach { $0.fail(error) }
            return nil
        }
        return parent
    }

    /// Adds a chunk of the session sweep when one is due, commits `parent` (one fsync), then
    /// tells the observers and only then the requests.
    private func finish(
        _ parent: OpaquePointer, _ pending: [Job], _ completions: [@Sendable () -> Void], _ changes: ChangeCollector,
        begunAt begun: ContinuousClock.Instant
    ) {
        let swept = sweepDue ? sweepChunk(in: parent) : nil
        let retired = try? LMDBReader(environment: environment, txn: parent).entries(environment.sessionsRetired)
        let commitRC = mdb_txn_commit(parent)
        if commitRC != 0 {
            let error = lmdbError(commitRC, "mdb_txn_commit")
            logger.error("write batch commit failed", metadata: ["error": "\(error)", "writes": "\(pending.count)"])
            pending.forEach { $0.fail(error) }
            return
        }
        let committed = ContinuousClock.now
        if let swept { noteSwept(swept) }
        if let retired, retired >= sweepRetiredAt { sweepDue = true }
        condition.lock()
        statistics.commits += 1
        statistics.writes += UInt64(completions.count)
        statistics.largestBatch = max(statistics.largestBatch, completions.count)
        statistics.queuedMicros += micros(pending.reduce(.zero) { $0 + (begun - $1.queuedAt) })
        statistics.committingMicros += micros((committed - begun) * completions.count)
        let observers = self.observers
        condition.unlock()
        // Caches drop what changed before anyone hears that the write is done.
        let changed = changes.committed
        if !changed.isEmpty { observers.forEach { $0(changed) } }
        acknowledger.acknowledge(completions, committedAt: committed)
    }
}

/// Tells the requests of committed batches that their writes are durable, on a thread of its
/// own, in commit order. Resuming a hundred waiting calls is work the next commit need not
/// wait for: on the writer's thread it was 5-6 % of its time (perf, `authd-load tokens`).
private final class Acknowledger: @unchecked Sendable {
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var batches: [(completions: [@Sendable () -> Void], committedAt: ContinuousClock.Instant)] = []
    private var started = false
    private var stopping = false
    private var stopped = false
    /// From each commit to the start of its acknowledgements, in microseconds summed over the
    /// writes; a batch counts once its acknowledgements begin.
    private let waited = Atomic<UInt64>(0)

    var waitedMicros: UInt64 { waited.load(ordering: .relaxed) }

    func start() {
        condition.lock()
        started = true
        condition.unlock()
        Thread { [self] in
            nameCurrentThread(StoreThreadName.acknowledger)
            self.run()
        }.start()
    }

    func acknowledge(_ completions: [@Sendable () -> Void], committedAt: ContinuousClock.Instant) {
        guard !completions.isEmpty else { return }
        condition.lock()
        batches.append((completions, committedAt))
        condition.signal()
        condition.unlock()
    }

    /// Delivers every batch handed over, then ends the thread.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while started && !stopped { condition.wait() }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while batches.isEmpty && !stopping { condition.wait() }
            if batches.isEmpty {
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let ready = batches
            batches.removeAll(keepingCapacity: true)
            condition.unlock()
            for batch in ready {
                waited.add(micros((.now - batch.committedAt) * batch.completions.count), ordering: .relaxed)
                batch.completions.forEach { $0() }
            }
        }
    }
}

/// Whole microseconds of a span of time, for the writer's counters.
private func micros(_ duration: Duration) -> UInt64 {
    UInt64(max(0, duration / .microseconds(1)))
}
