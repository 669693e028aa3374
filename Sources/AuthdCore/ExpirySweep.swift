import AuthdStore
import Logging
import Synchronization

/// Deletes the sessions and tokens whose expiry has passed, and the change log's entries older
/// than its retention. A check refuses an expired session or token at once, but its record
/// stays until deleted, as in Appwrite until its daily maintenance (spec 6.3 and 7): without a
/// sweep, a store whose users sign in now and then keeps every session and token ever made.
/// Appwrite purges a session by its creation time, which deletes an extended session before
/// its extension ends (spec quirk 14); here a session goes when its own expiry passes.
public final class ExpirySweep: Sendable {
    let store: any AuthStore
    let clock: any WallClock
    /// Where the walk's reads run: a thread of its own at a high nice value, so that a part of
    /// the walk yields the core to an event loop that wakes up. (On the cooperative pool, the
    /// p99 of session checks during walks read 2.9-5.7 ms in three rounds, against 0.5-3.2 ms
    /// without; BENCHMARKS.md, seventeenth pass.)
    let readPool: BlockingPool
    /// Records each read transaction looks at; what expired among them is deleted in one write.
    /// Kept to hundreds: the writer holds every other write of its batch while it deletes them.
    let recordsPerRead: Int
    /// Change-log entries pruned per write. They lie together at the start of the log, so a
    /// write deletes them from a few pages; parts of 512 kept pace with a third of the entries
    /// a token sign-in storm appends (about 36,000 a second; BENCHMARKS.md).
    let changesPerWrite: Int
    /// After each part of the walk the sweep rests this many times as long as the part took, so
    /// that it takes at most a share of a core: walking 5M sessions without a rest took a core
    /// for about a second at once (BENCHMARKS.md).
    let restPerWork: Double
    /// How long the change log keeps an entry, in seconds; 0 keeps every entry.
    let changeLogRetentionSeconds: Int64
    /// What the sweeps deleted since start, counted as each part commits (`Health/Stats`).
    private let sessionsDeleted = Atomic<Int>(0)
    private let tokensDeleted = Atomic<Int>(0)
    private let changesPruned = Atomic<Int>(0)
    private let sweepsFinished = Atomic<Int>(0)

    public init(
        directory: Directory, readPool: BlockingPool, changeLogRetentionSeconds: Int64 = 0, recordsPerRead: Int = 512,
        changesPerWrite: Int = 4096, restPerWork: Double = 3
    ) {
        self.store = directory.store
        self.clock = directory.clock
        self.readPool = readPool
        self.changeLogRetentionSeconds = max(0, changeLogRetentionSeconds)
        self.recordsPerRead = max(1, recordsPerRead)
        self.changesPerWrite = max(1, changesPerWrite)
        self.restPerWork = max(0, restPerWork)
    }

    public struct Outcome: Sendable, Equatable {
        public var sessions = 0
        public var tokens = 0
        /// Change-log entries older than the retention.
        public var changes = 0

        public init(sessions: Int = 0, tokens: Int = 0, changes: Int = 0) {
            self.sessions = sessions
            self.tokens = tokens
            self.changes = changes
        }
    }

    /// What every sweep since start deleted, and how many sweeps finished.
    public var totals: (sweeps: Int, deleted: Outcome) {
        (
            sweepsFinished.load(ordering: .relaxed),
            Outcome(
                sessions: sessionsDeleted.load(ordering: .relaxed), tokens: tokensDeleted.load(ordering: .relaxed),
                changes: changesPruned.load(ordering: .relaxed))
        )
    }

    /// One walk over every session and token, deleting those that expired before it started;
    /// then, with a retention, the change log's entries older than it (Appwrite's maintenance
    /// keeps audit records 14 days). Each session is checked again in the write that deletes
    /// it: one extended, or deleted, since it was read is left as it is. Stops at a
    /// cancellation between two parts of the walk; what it deleted until then stays deleted.
    public func run() async throws -> Outcome {
        let now = clock.now()
        var outcome = Outcome()
        let (store, limit) = (store, recordsPerRead)
        outcome.sessions = try await walk(counting: sessionsDeleted) { after in
            let part = try await readPool.run { try store.read { try $0.expiredSessions(after: after, before: now, limit: limit) } }
            return (part.expired.isEmpty ? 0 : try await delete(part.expired, now: now), part.next)
        }
        outcome.tokens = try await walk(counting: tokensDeleted) { after in
            let part = try await readPool.run { try store.read { try $0.expiredTokens(after: after, before: now, limit: limit) } }
            return (part.expired.isEmpty ? 0 : try await delete(part.expired, now: now), part.next)
        }
        if changeLogRetentionSeconds > 0 {
            let (cutoff, limit) = (now - changeLogRetentionSeconds * 1000, changesPerWrite)
            // The log is pruned from its start each time: the parts need no position, only
            // whether there is more.
            outcome.changes = try await walk(counting: changesPruned) { (_: Void?) in
                let part = try await store.write { w in try w.pruneChanges(before: cutoff, limit: limit) }
                return (part.pruned, part.more ? () : nil)
            }
        }
        sweepsFinished.add(1, ordering: .relaxed)
        return outcome
    }

    /// Runs `part` from the start of a table (position nil) until it reports no next position,
    /// resting after each; returns how many records the parts deleted, and adds each part's to
    /// `total`.
    private func walk<Position>(
        counting total: borrowing Atomic<Int>, _ part: (Position?) async throws -> (deleted: Int, next: Position?)
    ) async throws -> Int {
        var deleted = 0
        var after: Position?
        repeat {
            try Task.checkCancellation()
            let started = ContinuousClock.now
            let done = try await part(after)
            deleted += done.deleted
            total.add(done.deleted, ordering: .relaxed)
            after = done.next
            try await rest(since: started)
        } while after != nil
        return deleted
    }

    private func rest(since started: ContinuousClock.Instant) async throws {
        try await Task.sleep(for: (ContinuousClock.now - started) * restPerWork)
    }

    private func delete(_ sessions: [SessionKeys], now: Int64) async throws -> Int {
        // Encoded here rather than in the write, which every other write waits for.
        let changes = try sessions.map { session in
            var change = Directory.sessionDeletion(userID: session.userID, sessionID: session.id, time: now)
            change.actorType = Self.actorType
            return try PreparedChange(change)
        }
        return try await store.write { w in
            var deleted = 0
            for (session, change) in zip(sessions, changes) {
                guard let current = try w.session(id: session.id), current.expire < now else { continue }
                try w.deleteSession(session)
                try w.appendChange(change)
                deleted += 1
            }
            return deleted
        }
    }

    private func delete(_ tokens: [TokenRecord], now: Int64) async throws -> Int {
        // A token's expiry never changes, and a redeemed one is already gone: no change entry,
        // as a redemption makes none for the token it uses up.
        try await store.write { w in
            var deleted = 0
            for token in tokens {
                if try w.deleteExpiredToken(token) { deleted += 1 }
            }
            return deleted
        }
    }

    /// The actor of the sweep's change-log entries: no caller asked for them.
    static let actorType = "system"
}
