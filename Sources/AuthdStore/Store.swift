/// The storage contract the domain works against. Read and write transactions are distinct
/// types, so a read path cannot write by accident; invariants (unique ids and emails, index
/// consistency) are enforced inside the write transaction.
public protocol AuthStore: Sendable {
    /// Runs `body` in a consistent snapshot. Never blocks on the writer.
    func read<T>(_ body: (any StoreReader) throws -> T) throws -> T

    /// Runs `body` in a write transaction and returns once the change is durable. Many
    /// concurrent writes share one commit. When `body` throws, nothing it did is kept. `body`
    /// may run more than once (when another write of its batch fails); only its last run is
    /// kept, so it must have no effect outside the transaction it is given.
    func write<T: Sendable>(_ body: @escaping @Sendable (any StoreWriter) throws -> T) async throws -> T

    /// Queues a write nobody waits for (bookkeeping such as `accessedAt`); a failure is logged.
    func writeInBackground(_ body: @escaping @Sendable (any StoreWriter) throws -> Void)

    /// Calls `observer` after every commit that changed users, sessions or API keys, before
    /// any write of that commit is acknowledged: a cache kept above the store drops what
    /// changed, so that a read after an acknowledged write never sees the old value.
    func observeCommits(_ observer: @escaping @Sendable (CommittedChanges) -> Void)

    /// Figures of the store's work and size, for benchmarks and monitoring.
    func statistics() throws -> StoreStatistics
}

/// Whether a task's writes may wait for company (`LMDBStore.letLoneWritesWait`): set around a
/// sign-in's session write, which the next sign-in's will most likely follow within
/// milliseconds in a storm of them. Any other write commits at once (taking along any write
/// that waits).
public enum WriteCompany {
    @TaskLocal public static var mayWait = false
}

public struct StoreStatistics: Sendable, Equatable {
    /// Commits of the writer since the store opened, each one fsync.
    public var commits: UInt64 = 0
    /// Writes those commits held.
    public var writes: UInt64 = 0
    /// The most writes one commit held.
    public var largestBatch: Int = 0
    /// Where the writes' time in the store went, in microseconds summed over the writes (so
    /// that each divided by `writes` is a mean per write): queued before their batch began,
    /// in their batch's run and commit (its fsync included), and committed but waiting for
    /// their acknowledgement to start.
    public var writesQueuedMicros: UInt64 = 0
    public var writesCommittingMicros: UInt64 = 0
    public var writesAcknowledgingMicros: UInt64 = 0
    /// Commits whose lone write waited for the next one expected (`letLoneWritesWait`), and
    /// their time waiting, in microseconds.
    public var commitsWaitedForCompany: UInt64 = 0
    public var companyWaitMicros: UInt64 = 0
    public var users: Int = 0
    public var sessions: Int = 0
    /// Bytes of the data file in use.
    public var dataBytes: UInt64 = 0
    /// Bytes of the data file read into the page cache since the store opened (`prewarm`).
    public var dataBytesPrewarmed: UInt64 = 0
    /// The bytes that read covers (0 without `prewarm`), and whether it has ended.
    public var dataBytesPrewarmLimit: UInt64 = 0
    public var dataPrewarmDone: Bool = true

    public init() {}
}

/// What one commit changed, as far as caches above the store care.
public struct CommittedChanges: Sendable, Equatable {
    /// Users whose record or any of whose sessions was inserted, updated or deleted.
    public var userIDs: Set<String> = []
    /// Whether any API key was inserted or updated.
    public var apiKeys = false

    public init(userIDs: Set<String> = [], apiKeys: Bool = false) {
        self.userIDs = userIDs
        self.apiKeys = apiKeys
    }

    public var isEmpty: Bool { userIDs.isEmpty && !apiKeys }
}

public protocol StoreReader {
    func user(id: String) throws -> UserRecord?
    func userID(email: String) throws -> String?
    /// Whether the user is active (not blocked), nil when there is no such user: read without
    /// decoding the whole record.
    func userStatus(id: String) throws -> Bool?
    func session(id: String) throws -> SessionRecord?
    /// The live session whose secret has this hash and locator (0: a secret without one). The
    /// hash is lent, not copied: this runs on every session check the cache misses.
    func session(secretHash: UnsafeRawBufferPointer, locator: UInt64) throws -> SessionRecord?
    /// The user's sessions, oldest first.
    func sessions(userID: String) throws -> [SessionRecord]
    /// The user's `limit` oldest sessions, oldest first: what a list of them shows, read
    /// without walking the rest of the user's index.
    func sessions(userID: String, limit: Int) throws -> [SessionRecord]
    /// The ids of the user's sessions, oldest first, read from the index alone.
    func sessionIDs(userID: String) throws -> [String]
    /// The keys of the user's oldest sessions beyond their newest `keeping`, at most `limit`
    /// of them, oldest first: a sign-in past the session limit trims them, and a call that
    /// ends many of a user's sessions takes them a part at a time. Only the secret is read of
    /// their records, and the index is walked no further than `limit + keeping` entries.
    func sessionKeys(userID: String, beyondNewest keeping: Int, atMost limit: Int) throws -> [SessionKeys]
    func userID(phone: String) throws -> String?
    /// Calls `visit` with every user in id order, starting after `afterID` (all when nil),
    /// while it returns true.
    func forEachUser(after afterID: String?, _ visit: (UserRecord) throws -> Bool) throws
    /// The same, but a user is decoded and visited only when `mayMatch` lets its stored fields
    /// through: a scan that can tell from them that a user does not match skips the decoding.
    func forEachUser(after afterID: String?, mayMatch: (UserFields) -> Bool, _ visit: (UserRecord) throws -> Bool) throws
    /// Calls `visit` with every user's stored fields (`UserFields`), in id order (`reversed`:
    /// from the last id back), while it returns true: no user is decoded.
    func forEachUserFields(reversed: Bool, _ visit: (borrowing UserFields) throws -> Bool) throws
    func token(id: String) throws -> TokenRecord?
    func tokens(userID: String) throws -> [TokenRecord]
    /// The user's first `limit` tokens, in id order (oldest first); the rest of the index is
    /// not walked.
    func tokens(userID: String, limit: Int) throws -> [TokenRecord]
    /// The first of the user's tokens whose secret has this hash (compared in constant time)
    /// and that has not expired at `now`; only that one is decoded.
    func token(userID: String, secretHash: [UInt8], validAt now: Int64) throws -> TokenRecord?
    /// The expiry sweep's walk over the sessions, a part at a time: of at most `limit` stored
    /// sessions in id order after `afterID` (from the first when nil), the keys of the live ones
    /// whose expiry is before `now`; and the id to go on after, nil once the walk is at the end.
    func expiredSessions(after afterID: String?, before now: Int64, limit: Int) throws -> (expired: [SessionKeys], next: String?)
    /// The same walk over the tokens.
    func expiredTokens(after afterID: String?, before now: Int64, limit: Int) throws -> (expired: [TokenRecord], next: String?)
    func apiKey(id: String) throws -> ApiKeyRecord?
    func apiKeyID(secretHash: [UInt8]) throws -> String?
    func apiKeys() throws -> [ApiKeyRecord]
    /// The stored auth settings, or nil when none were ever stored (defaults apply).
    func settings() throws -> AuthSettings?
    /// The JWT signing keys, oldest first.
    func jwtKeys() throws -> [JWTKeyRecord]
    /// A rate-limit counter: the start of its window (Unix seconds) and the count in it.
    func rateCounter(_ key: String) throws -> (windowStart: Int64, count: Int)?
    /// How many users there are.
    func userCount() throws -> Int
    /// One user's change-log entries, newest first, older than `beforeSequence` (all when nil),
    /// skipping `offset`, at most `limit`; and how many entries the user has (counted up to 5000).
    func changes(userID: String, before beforeSequence: UInt64?, offset: Int, limit: Int) throws -> (entries: [ChangeRecord], total: Int)
    /// Change-log entries with a sequence above `sequence`, in order.
    func changes(after sequence: UInt64, limit: Int) throws -> [ChangeRecord]
}

extension StoreReader {
    /// The live session whose secret has this hash and locator (0: a secret without one).
    public func session(secretHash: [UInt8], locator: UInt64) throws -> SessionRecord? {
        try secretHash.withUnsafeBytes { try session(secretHash: $0, locator: locator) }
    }
}

public protocol StoreWriter: StoreReader {
    /// Adds a user; `StoreError.duplicate` when the id or email is taken.
    func insertUser(_ user: UserRecord) throws
    /// Replaces a user, keeping the email index in step; `StoreError.duplicate` when the new
    /// email belongs to another user.
    func updateUser(_ user: UserRecord) throws
    /// Deletes a user with their sessions, tokens and index entries; false when absent.
    @discardableResult
    func deleteUser(id: String) throws -> Bool
    /// Adds a session; `StoreError.notFound` when its user does not exist.
    func insertSession(_ session: SessionRecord) throws
    /// The same, for a record encoded before the write.
    func insertSession(_ session: Encoded<SessionRecord>) throws
    func updateSession(_ session: SessionRecord) throws
    /// Deletes a session and its index entries; false when it did not exist.
    @discardableResult
    func deleteSession(id: String) throws -> Bool
    /// Deletes a session read in this write, and its index entries, without reading it again.
    func deleteSession(_ session: SessionKeys) throws
    /// Adds a token; `StoreError.notFound` when its user does not exist.
    func insertToken(_ token: TokenRecord) throws
    /// The same, for a record encoded before the write.
    func insertToken(_ token: Encoded<TokenRecord>) throws
    /// Adds a token and appends its creation to the change log, returning the entry's sequence
    /// number. The store keeps both apart from the user's other records: a token lives minutes,
    /// and its creation need not rewrite what the user's sign-in rewrites anyway.
    @discardableResult
    func insertToken(_ token: Encoded<TokenRecord>, appending change: PreparedChange) throws -> UInt64
    @discardableResult
    func deleteToken(id: String) throws -> Bool
    /// Deletes a token read earlier, without reading it again; false when it is gone.
    @discardableResult
    func deleteToken(_ token: TokenRecord) throws -> Bool
    /// The same for a token past its expiry, which nobody redeems: the store also settles what
    /// it kept apart for the user's tokens once they have none left.
    @discardableResult
    func deleteExpiredToken(_ token: TokenRecord) throws -> Bool
    /// Adds an API key; `StoreError.duplicate` when the id or secret hash is taken.
    func insertApiKey(_ key: ApiKeyRecord) throws
    func updateApiKey(_ key: ApiKeyRecord) throws
    func putSettings(_ settings: AuthSettings) throws
    func putJWTKeys(_ keys: [JWTKeyRecord]) throws
    func putRateCounter(_ key: String, windowStart: Int64, count: Int) throws
    /// Appends to the change log and returns the entry's sequence number.
    @discardableResult
    func appendChange(_ change: ChangeRecord) throws -> UInt64
    /// The same, for an entry encoded before the write (see `PreparedChange`).
    @discardableResult
    func appendChange(_ change: PreparedChange) throws -> UInt64
    /// Deletes the change log's oldest entries made before `cutoff` (Unix ms), at most `limit`,
    /// and keeps each user's count of entries in step; the newest entry of the log stays. Returns
    /// how many went and whether older ones may be left.
    func pruneChanges(before cutoff: Int64, limit: Int) throws -> (pruned: Int, more: Bool)
}

/// A storage failure. `duplicate` and `notFound` are invariant violations the domain turns into
/// its own errors; the rest are faults of the store itself.
public struct StoreError: Error, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case duplicate
        case notFound
        case corrupt
        case unavailable
        case io
        case incompatible
    }

    public let kind: Kind
    public let detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    public var description: String { "store \(kind): \(detail)" }

    public static func duplicate(_ what: String) -> StoreError { StoreError(.duplicate, what) }
    public static func notFound(_ what: String) -> StoreError { StoreError(.notFound, what) }
}
