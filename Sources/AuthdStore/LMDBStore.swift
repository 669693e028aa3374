import CLMDB
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The embedded default store: one LMDB environment in a data folder.
///
/// Durable by default: a write returns only after the commit holding it was fsynced. Writes go
/// through one group-commit writer; reads run in their own snapshot and never wait for it.
public final class LMDBStore: AuthStore, Service, @unchecked Sendable {
    // Thread-safety: every stored property is immutable after init; the environment and the
    // writer are thread-safe themselves.
    public struct Options: Sendable {
        /// The largest the data file may grow, in MiB (address space, not memory).
        public var mapSizeMiB: Int = 8192
        /// The most writes one commit holds.
        public var maxBatch: Int = 1024
        /// How many deleted sessions wait for the sweep that deletes their records together.
        public var sweepRetiredSessionsAt: Int = 4096
        /// How far past its data the file is kept cached in single pages (`GrowthZone`); 0 for
        /// none.
        public var growthZoneKiB: Int = 16 << 10
        /// The nice value the writer thread asks for (-20 to 0). Every acknowledged write waits
        /// for that one thread, so on a busy host it should not queue for a core behind the
        /// event loops. Without the right to raise it (root, CAP_SYS_NICE, or `LimitNICE=` under
        /// systemd) the writer keeps the process's nice value.
        public var writerNice: Int32 = -10
        /// Whether the data file is read into the page cache at open, in the background
        /// (`PageCacheWarmer`), so that a store opened cold comes up to memory speed sooner
        /// than one random disk read per page fault brings it there.
        public var prewarm: Bool = true
        /// Told how a migration at open is getting on (about once a second, and when a step
        /// ends), besides the log.
        public var migrationProgress: (@Sendable (String) -> Void)?

        public init(
            mapSizeMiB: Int = 8192, maxBatch: Int = 1024, sweepRetiredSessionsAt: Int = 4096, growthZoneKiB: Int = 16 << 10,
            writerNice: Int32 = -10, prewarm: Bool = true, migrationProgress: (@Sendable (String) -> Void)? = nil
        ) {
            self.mapSizeMiB = mapSizeMiB
            self.maxBatch = maxBatch
            self.sweepRetiredSessionsAt = sweepRetiredSessionsAt
            self.growthZoneKiB = growthZoneKiB
            self.writerNice = writerNice
            self.prewarm = prewarm
            self.migrationProgress = migrationProgress
        }
    }

    /// The schema version this build writes. Bump it together with a migration in `migrations`.
    public static let schemaVersion: UInt32 = 6

    /// Migrations from version N (the key) to N + 1, run at open.
    static let migrations: [UInt32: @Sendable (MigrationRun) throws -> Void] = Migrations.steps

    let environment: LMDBEnvironment
    private let writer: GroupCommitWriter
    private let warmer: PageCacheWarmer?
    private let lockDescriptor: Int32
    private let logger: Logger

    public init(directory: String, options: Options = Options(), logger: Logger = Logger(label: "authd.store")) throws {
        self.logger = logger
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let lockPath = directory + "/authd.lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StoreError(.io, "cannot open \(lockPath): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(fd)
            throw StoreError(.unavailable, "the data folder \(directory) is in use by another authd")
        }
        // Opened and migrated before the store is fully initialised, so that a failure here
        // cleans up once, here, and never reaches deinit.
        let environment: LMDBEnvironment
        do {
            environment = try LMDBEnvironment(path: directory, mapSize: options.mapSizeMiB << 20)
        } catch {
            Glibc.close(fd)
            throw error
        }
        do {
            try Self.migrate(environment, logger: logger, progress: options.migrationProgress)
        } catch {
            environment.close()
            Glibc.close(fd)
            throw error
        }
        self.environment = environment
        lockDescriptor = fd
        let growthZone = options.growthZoneKiB > 0
            ? GrowthZone(
                path: environment.dataPath, pageSize: environment.pageSize, mapSize: options.mapSizeMiB << 20,
                ahead: options.growthZoneKiB << 10, step: min(options.growthZoneKiB << 10, 2 << 20))
            : nil
        writer = GroupCommitWriter(
            environment: environment, maxBatch: options.maxBatch, sweepRetiredAt: options.sweepRetiredSessionsAt,
            growthZone: growthZone, nice: options.writerNice, logger: logger)
        writer.start()
        let dataEnd = (try? environment.dataBytes()) ?? 0
        warmer = options.prewarm
            ? PageCacheWarmer(path: environment.dataPath, limit: min(dataEnd, PageCacheWarmer.memoryBound() ?? 0)) : nil
        warmer?.start(logger: logger)
    }

    /// Brings the data folder to `schemaVersion`, or refuses one written by a newer authd or
    /// one this build has no migration for (then the folder is left as it was).
    static func migrate(
        _ environment: LMDBEnvironment, to target: UInt32 = schemaVersion,
        using migrations: [UInt32: @Sendable (MigrationRun) throws -> Void] = migrations, logger: Logger,
        progress: (@Sendable (String) -> Void)? = nil
    ) throws {
        let run = MigrationRun(environment: environment) { status in
            logger.info("migrating store", metadata: ["progress": "\(status)"])
            progress?(status)
        }
        let key = Keys.utf8("schema_version")
        func store(_ version: UInt32) throws {
            try run.write { w in try w.put(environment.meta, key, withUnsafeBytes(of: version.bigEndian) { Array($0) }) }
        }
        let stored = try run.write { w in
            try w.get(environment.meta, key) { raw in
                raw.count == 4 ? raw.reduce(UInt32(0)) { ($0 << 8) | UInt32($1) } : nil
            } ?? nil
        }
        // A new data folder starts at the current version.
        guard let stored else { return try store(target) }
        guard stored <= target else {
            throw StoreError(.incompatible, "the data folder has schema version \(stored), newer than this authd's \(target)")
        }
        if let missing = (stored..<target).first(where: { migrations[$0] == nil }) {
            throw StoreError(.incompatible, "no migration from schema version \(missing)")
        }
        for version in stored..<target {
            logger.notice("migrating store", metadata: ["from": "\(version)", "to": "\(version + 1)"])
            try migrations[version]!(run)
            try store(version + 1)
        }
    }

    public func read<T>(_ body: (any StoreReader) throws -> T) throws -> T {
        try readLMDB(body)
    }

    /// A read snapshot with the LMDB reader itself, for the store's own figures.
    private func readLMDB<T>(_ body: (LMDBReader) throws -> T) throws -> T {
        let txn = try takeReadTransaction()
        defer { giveBack(txn) }
        return try body(LMDBReader(environment: environment, txn: txn))
    }

    /// Read transactions reset after use, renewed for later reads. Beginning one allocates over
    /// a kilobyte (which also has glibc consolidate its free lists) and takes a reader slot; a
    /// renewal only takes a new snapshot. A reset transaction holds no snapshot, so it keeps no
    /// page from being reused. Nil once the store is closed.
    private let idleReadTransactions = Mutex<[IdleReadTransaction]?>([])
    /// About the number of threads that read at once (event loops, the concurrency pool).
    private static let idleReadTransactionsKept = 64

    private func takeReadTransaction() throws -> OpaquePointer {
        if let idle = idleReadTransactions.withLock({ $0?.popLast() })?.txn {
            if mdb_txn_renew(idle) == 0 { return idle }
            mdb_txn_abort(idle)
        }
        var txn: OpaquePointer?
        try lmdbCheck(mdb_txn_begin(environment.env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin (read)")
        guard let txn else { throw StoreError(.io, "mdb_txn_begin returned no transaction") }
        return txn
    }

    /// Sendable: a reset transaction is only handed from thread to thread through the lock
    /// (MDB_NOTLS lets any thread renew it).
    private struct IdleReadTransaction: @unchecked Sendable {
        let txn: OpaquePointer
    }

    private func giveBack(_ txn: OpaquePointer) {
        mdb_txn_reset(txn)
        let kept = idleReadTransactions.withLock { idle in
            guard idle != nil, idle!.count < Self.idleReadTransactionsKept else { return false }
            idle!.append(IdleReadTransaction(txn: txn))
            return true
        }
        if !kept { mdb_txn_abort(txn) }
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (any StoreWriter) throws -> T) async throws -> T {
        let mayWait = WriteCompany.mayWait
        return try await withCheckedThrowingContinuation { continuation in
            writer.submit(
                GroupCommitWriter.Job(
                    perform: { txn in
                        let result = try body(txn)
                        return { continuation.resume(returning: result) }
                    },
                    fail: { continuation.resume(throwing: $0) }, mayWaitForCompany: mayWait))
        }
    }

    public func writeInBackground(_ body: @escaping @Sendable (any StoreWriter) throws -> Void) {
        let logger = self.logger
        writer.submit(
            GroupCommitWriter.Job(
                perform: { txn in
                    try body(txn)
                    return {}
                },
                fail: { error in logger.warning("background write failed", metadata: ["error": "\(error)"]) }))
    }

    public func observeCommits(_ observer: @escaping @Sendable (CommittedChanges) -> Void) {
        writer.addObserver(observer)
    }

    /// Lets a write made under `WriteCompany.mayWait` that finds the writer idle wait, up to
    /// `longest`, for the next write when `nextWriteExpected` says one comes that soon (a
    /// sign-in whose hash is ending), so that one commit and its fsync serve both. A write that
    /// comes while a commit runs waits for it anyway and needs none of this; a write no other
    /// is expected after, or any other write, commits at once.
    public func letLoneWritesWait(upTo longest: Duration, forNextWriteExpected nextWriteExpected: @escaping @Sendable () -> Duration?) {
        guard longest > .zero else { return }
        writer.letLoneWritesWait(for: GroupCommitWriter.Company(longest: longest, nextWriteExpected: nextWriteExpected))
    }

    public func statistics() throws -> StoreStatistics {
        let writes = writer.currentStatistics
        var statistics = StoreStatistics()
        statistics.commits = writes.commits
        statistics.writes = writes.writes
        statistics.largestBatch = writes.largestBatch
        statistics.writesQueuedMicros = writes.queuedMicros
        statistics.writesCommittingMicros = writes.committingMicros
        statistics.writesAcknowledgingMicros = writes.acknowledgingMicros
        statistics.commitsWaitedForCompany = writes.companyWaits
        statistics.companyWaitMicros = writes.companyWaitMicros
        statistics.dataBytes = UInt64(try environment.dataBytes())
        statistics.dataBytesPrewarmed = warmer?.warmedBytes ?? 0
        statistics.dataBytesPrewarmLimit = warmer?.limitBytes ?? 0
        statistics.dataPrewarmDone = warmer?.isDone ?? true
        try readLMDB { reader in
            statistics.users = try reader.userCount()
            // Deleted sessions wait in `sessions` for the sweep.
            statistics.sessions = max(0, try reader.entries(environment.sessions) - reader.entries(environment.sessionsRetired))
        }
        return statistics
    }

    /// Waits for graceful shutdown, then finishes the queued writes and closes the store. Put it
    /// before the listener in a ServiceGroup so that it stops after the listener has drained.
    public func run() async throws {
        try? await gracefulShutdown()
        close()
    }

    private let closeLock = NSLock()
    private var closed = false  // guarded by closeLock

    /// Finishes queued writes and closes the environment. Idempotent.
    public func close() {
        closeLock.lock()
        defer { closeLock.unlock() }
        guard !closed else { return }
        closed = true
        warmer?.stop()
        writer.stop()
        idleReadTransactions.withLock { idle in
            idle?.forEach { mdb_txn_abort($0.txn) }
            idle = nil
        }
        environment.close()
        Glibc.close(lockDescriptor)
    }

    deinit {
        close()
    }
}
