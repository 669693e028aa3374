import AuthdStore
import Logging

/// Limits on sessions (spec 6.4).
public struct SessionPolicy: Sendable, Equatable {
    /// How long a new session lasts, in seconds (default one year).
    public var durationSeconds: Int64 = 31_536_000
    /// The most sessions a user keeps; the oldest beyond it are deleted. 0: unlimited.
    public var limit: Int = 10

    public init(durationSeconds: Int64 = 31_536_000, limit: Int = 10) {
        self.durationSeconds = durationSeconds
        self.limit = limit
    }
}

/// A session as the domain hands it out: the record, whether the call presented it, and the
/// secret (only right after creation; empty otherwise).
public struct SessionView: Sendable, Equatable {
    public var record: SessionRecord
    public var isCurrent: Bool
    public var secret: String

    public init(record: SessionRecord, isCurrent: Bool, secret: String = "") {
        self.record = record
        self.isCurrent = isCurrent
        self.secret = secret
    }
}

/// What the Account and Users APIs share: the store, the clock, password hashing and the
/// change log.
public final class Directory: Sendable {
    let store: any AuthStore
    let hasher: PasswordHasher
    let hashingPool: BlockingPool
    let clock: any WallClock
    let sessionPolicy: SessionPolicy
    let logger: Logger
    /// Verified against when a login names an unknown email, so that the answer takes as long
    /// as for a known one and does not reveal which emails have accounts.
    let decoyHash: String
    let rateLimiter: RateLimiter
    /// Users looked up by id (`Users/Get`), shared by every event loop's `Users`.
    let users: UserCache
    /// New sessions' locators, in the order the sessions are made.
    let sessionLocators = SessionLocators()
    /// Where reads that may take milliseconds or more (`Users/List`, the change log's pages) run;
    /// nil: on the caller's thread.
    let queryPool: BlockingPool?

    public init(
        store: any AuthStore, hasher: PasswordHasher, hashingPool: BlockingPool, queryPool: BlockingPool? = nil,
        clock: any WallClock = SystemWallClock(), sessionPolicy: SessionPolicy = SessionPolicy(),
        userCacheSize: Int = Directory.defaultUserCacheSize,
        logger: Logger = Logger(label: "authd.directory")
    ) throws {
        self.store = store
        self.hasher = hasher
        self.hashingPool = hashingPool
        self.queryPool = queryPool
        self.clock = clock
        self.sessionPolicy = sessionPolicy
        self.logger = logger
        self.decoyHash = try hasher.hash(SecretToken.generate())
        self.rateLimiter = RateLimiter(store: store, clock: clock)
        let users = UserCache(capacity: userCacheSize)
        self.users = users
        store.observeCommits { users.invalidate($0) }
    }

    /// The most sessions a list of a user's sessions shows, the oldest ones: Appwrite's cap on a
    /// user's sessions (`APP_LIMIT_SUBQUERY`). Sessions made by the server are not trimmed by the
    /// session limit, so a user may have more, and the list stays a bounded read on the loop.
    public static let listedSessions = 1000

    /// The most sessions one write ends when a call ends many of a user's sessions: a user may
    /// hold any number (server-made sessions are not trimmed, nor any at a session limit of 0),
    /// and the writer holds every other write of its batch while it deletes them. Ending 20,000
    /// in one write held the writes beside it 43-74 ms (BENCHMARKS.md, thirty-eighth pass). The
    /// expiry sweep's parts are of the same size.
    static let sessionsPerWrite = 512

    /// The most queries (lists, log pages) that may wait for the query thread before more are
    /// refused with a 503: a list over a million users takes about a tenth of a second (one in
    /// id order that decodes many matches, more), so 64 in line are seconds' wait already.
    public static let queuedQueries = 64

    /// Runs `body` in a read transaction on the query pool (on this thread without one): the
    /// event loop that called is free meanwhile for the calls of its other connections.
    func query<T: Sendable>(_ body: @escaping @Sendable (any StoreReader) throws -> T) async throws -> T {
        let store = self.store
        guard let queryPool else { return try store.read(body) }
        return try await queryPool.run { try store.read(body) }
    }

    /// How many users `Users/Get` keeps decoded by default (`user_cache_size`): a few thousand
    /// cover the users a backend is working with at a time, at about a kilobyte each. A
    /// backend reading more users than the cache holds reads the store for most of them (12,000
    /// users against 10,000 places: 2.0 µs of CPU per call against 1.07 µs, issue 5).
    public static let defaultUserCacheSize = 10_000

    /// Users held in the user cache.
    public var cachedUsers: Int { users.count }
    /// How the user cache served `Users/Get` since start.
    public var userCacheFigures: CacheFigures { users.figures }

    /// The user's stored record, with every field (a signed-in caller's copy has no password
    /// fields, `SignedIn.user`); `user_not_found` when there is none.
    func storedUser(id: String) throws -> UserRecord {
        guard let user = try store.read({ try $0.user(id: id) }) else { throw AuthdError.userNotFound }
        return user
    }

    /// CPU time spent hashing passwords since start, in microseconds.
    public var hashingMicros: UInt64 { hashingPool.workMicros }
    /// CPU time the query pool has spent on its reads since start, in microseconds.
    public var queryMicros: UInt64 { queryPool?.workMicros ?? 0 }
    /// Calls the hashing and query threads refused since start, with their queues full.
    public var callsRefusedBusy: UInt64 { hashingPool.refused + (queryPool?.refused ?? 0) }

    /// The store's work and size, for `Health/Stats`.
    public func storeStatistics() throws -> StoreStatistics {
        try store.statistics()
    }

    /// The rate-limit key of the end user's relayed IP address.
    static func ipKey(_ call: Call) -> String { "ip:\(call.context.client.ip)" }

    func hash(_ password: String, for call: Call) async throws -> String {
        try await hashingPool.run(in: call.hashingLane) { [hasher] in try hasher.hash(password) }
    }

    func changeRecord(
        _ event: String, audit: String, resource: String, userID: String, call: Call, time: Int64
    ) -> ChangeRecord {
        Self.attributed(
            ChangeRecord(time: time, event: event, auditEvent: audit, resource: resource, userID: userID), to: call)
    }

    /// `change` with the call's actor and relayed client.
    private static func attributed(_ change: ChangeRecord, to call: Call) -> ChangeRecord {
        var change = change
        change.actorType = call.caller.actorType
        change.actorID = call.caller.actorID
        change.ip = call.context.client.ip
        change.userAgent = call.context.client.userAgent
        return change
    }

    /// Stores a new user with its change entry; `user_already_exists` when the id, email or
    /// phone is taken. `extra` runs in the same transaction.
    func insert(
        _ user: UserRecord, call: Call, userLimit: Int = 0, inSameWrite extra: (@Sendable (any StoreWriter) throws -> Void)? = nil
    ) async throws {
        let insertion = insertion(of: user, call: call, userLimit: userLimit)
        try await Self.duplicateIsTaken {
            try await store.write { w in
                try extra?(w)
                try insertion(w)
            }
        }
        logger.info("user created", metadata: ["user": "\(user.id)"])
    }

    /// The write that stores a new user with its change entry, for a transaction that does more.
    func insertion(of user: UserRecord, call: Call, userLimit: Int) -> @Sendable (any StoreWriter) throws -> Void {
        let change = changeRecord(
            "users.\(user.id).create", audit: "user.create", resource: "user/\(user.id)", userID: user.id,
            call: call, time: user.createdAt)
        return { w in
            // Checked again in the write, so that concurrent sign-ups cannot pass the limit.
            if userLimit > 0, try w.userCount() >= userLimit { throw AuthdError.userCountExceeded }
            try w.insertUser(user)
            try w.appendChange(change)
        }
    }

    /// Runs a write that inserts a user, with the store's duplicate refusal as `user_already_exists`.
    static func duplicateIsTaken<Result>(_ write: () async throws -> Result) async throws -> Result {
        do {
            return try await write()
        } catch let error as StoreError where error.kind == .duplicate {
            throw AuthdError.userAlreadyExists
        }
    }

    /// A new session of `userID` with a fresh secret. With `trim`, the user's oldest sessions
    /// beyond the session limit are deleted in the same transaction and stop working at once.
    func issueSession(
        userID: String, provider: String, providerUID: String = "", factors: [String], call: Call, trim: Bool,
        inSameWrite extra: (@Sendable (any StoreWriter) throws -> Void)? = nil
    ) async throws -> SessionView {
        let now = clock.now()
        let settings = try settings()
        let locator = sessionLocators.next(nowMicroseconds: now * 1000)
        let secret = SecretToken.generateSession(locator: locator)
        var session = SessionRecord(
            id: Identifiers.unique(nowMicroseconds: now * 1000), userID: userID, createdAt: now,
            expire: now + settings.duration * 1000, provider: provider,
            secretHash: SecretToken.hash(secret))
        session.secretLocator = locator
        session.providerUID = providerUID
        session.factors = factors
        session.ip = call.context.client.ip
        session.userAgent = call.context.client.userAgent
        // Encoded here rather than in the write, which every other write waits for.
        let created = try PreparedChange(
            changeRecord(
                "users.\(userID).sessions.\(session.id).create", audit: "session.create", resource: "user/\(userID)",
                userID: userID, call: call, time: now))
        let limit = trim ? settings.maxSessions : 0
        let newSession = try Encoded(session)
        // The change-log entry of a trimmed session, but for its event (which names the
        // session, known only in the write).
        let trimmed = limit > 0 ? try PreparedChange(deletionChange(userID: userID, sessionID: nil, call: call, time: now)) : nil
        let trimPart = { @Sendable (w: any StoreWriter) throws -> Bool in
            guard let trimmed else { return false }
            let part = try w.sessionKeys(userID: userID, beyondNewest: limit, atMost: Self.sessionsPerWrite)
            for old in part {
                try w.deleteSession(old)
                try w.appendChange(trimmed.withEvent(Self.deletionEvent(userID: userID, sessionID: old.id)))
            }
            return part.count == Self.sessionsPerWrite
        }
        let more = try await store.write { w in
            try extra?(w)
            try w.insertSession(newSession)
            try w.appendChange(created)
            return try trimPart(w)
        }
        // A user far past the limit (server-made sessions are not trimmed as they are made):
        // the rest in writes of their own, so that the writes beside them wait for a part only.
        // Each part trims what is past the limit when it runs, whatever else signed in since.
        if more { try await writeInParts(trimPart) }
        return SessionView(record: session, isCurrent: !call.caller.isServer, secret: secret)
    }

    /// Ends the oldest of `userID`'s sessions, `sessionsPerWrite` in each write, until at most
    /// that many are left (besides `except`), for a call whose own write then ends the rest:
    /// that write stays one transaction with the call's change, and waits no longer than a part
    /// does. Each ended session gets its change-log entry, unless `logged` is false (the user is
    /// being deleted, which ends their log's chain). `inEachWrite` runs in each part's write
    /// (a rate limit's count). A user with fewer sessions costs one read of their index.
    func endSessionsAhead(
        of userID: String, except: String? = nil, logged: Bool = true, call: Call, time: Int64,
        inEachWrite extra: (@Sendable (any StoreWriter) throws -> Void)? = nil
    ) async throws {
        let perWrite = Self.sessionsPerWrite
        guard try !store.read({ try $0.sessionKeys(userID: userID, beyondNewest: perWrite, atMost: 1) }).isEmpty else { return }
        let change = try PreparedChange(deletionChange(userID: userID, sessionID: nil, call: call, time: time))
        try await writeInParts { w in
            try extra?(w)
            let part = try w.sessionKeys(userID: userID, beyondNewest: perWrite, atMost: perWrite)
            for session in part where session.id != except {
                try w.deleteSession(session)
                if logged { try w.appendChange(change.withEvent(Self.deletionEvent(userID: userID, sessionID: session.id))) }
            }
            return part.count == perWrite
        }
    }

    /// Runs `part` in a write of its own, again and again while it returns true (that more is
    /// left): a long job in parts, so that the writes beside it wait for one part at a time.
    private func writeInParts(_ part: @escaping @Sendable (any StoreWriter) throws -> Bool) async throws {
        while try await store.write(part) {}
    }

    /// Applies `change` to the stored user in one write and records `users.<id>.update.<field>`;
    /// `duplicate` is thrown when the change takes another user's email or phone.
    func updateUser(
        _ userID: String, field: String, call: Call, duplicate: AuthdError,
        _ change: @escaping @Sendable (inout UserRecord, any StoreWriter) throws -> Void
    ) async throws -> UserRecord {
        let time = clock.now()
        let record = changeRecord(
            "users.\(userID).update.\(field)", audit: "user.update", resource: "user/\(userID)", userID: userID,
            call: call, time: time)
        do {
            return try await store.write { w in
                guard var user = try w.user(id: userID) else { throw AuthdError.userNotFound }
                try change(&user, w)
                user.updatedAt = time
                try w.updateUser(user)
                try w.appendChange(record)
                return user
            }
        } catch let error as StoreError where error.kind == .duplicate {
            throw duplicate
        }
    }

    /// Empties `userID`'s sessions and tokens ahead of the user's deletion, `sessionsPerWrite`
    /// in each write, until at most that many of each are left for the deletion's own write
    /// (tokens, like sessions, may be any number: `Users/CreateToken` makes them for the server).
    /// The sessions get no change-log entries: the deletion ends the user's chain.
    func emptyAheadOfDeletion(of userID: String, call: Call, time: Int64) async throws {
        try await endSessionsAhead(of: userID, logged: false, call: call, time: time)
        let perWrite = Self.sessionsPerWrite
        guard try store.read({ try $0.tokens(userID: userID, limit: perWrite + 1) }).count > perWrite else { return }
        try await writeInParts { w in
            let part = try w.tokens(userID: userID, limit: perWrite)
            for token in part { try w.deleteToken(token) }
            return part.count == perWrite
        }
    }

    /// Ends every session of `userID` but `except` in `w`, each with its change-log entry. For
    /// a user who may have many, `endSessionsAhead` runs first.
    func endSessions(of userID: String, except: String? = nil, in w: any StoreWriter, call: Call, time: Int64) throws {
        for session in try w.sessionKeys(userID: userID, beyondNewest: 0, atMost: .max) where session.id != except {
            try deleteSession(session, in: w, call: call, time: time)
        }
    }

    /// `session` as read in `w` (or its keys): it is deleted without being read again.
    func deleteSession(_ session: SessionKeys, in w: any StoreWriter, call: Call, time: Int64) throws {
        try w.deleteSession(session)
        try w.appendChange(deletionChange(userID: session.userID, sessionID: session.id, call: call, time: time))
    }

    /// The change-log entry of a session the call deleted; without the session's id, one with no
    /// event.
    private func deletionChange(userID: String, sessionID: String?, call: Call, time: Int64) -> ChangeRecord {
        Self.attributed(Self.sessionDeletion(userID: userID, sessionID: sessionID, time: time), to: call)
    }

    /// The change-log entry of a deleted session, with no actor yet (the expiry sweep's has no
    /// caller); without the session's id, one with no event.
    static func sessionDeletion(userID: String, sessionID: String?, time: Int64) -> ChangeRecord {
        ChangeRecord(
            time: time, event: sessionID.map { deletionEvent(userID: userID, sessionID: $0) } ?? "",
            auditEvent: "session.delete", resource: "user/\(userID)", userID: userID)
    }

    private static func deletionEvent(userID: String, sessionID: String) -> String {
        "users.\(userID).sessions.\(sessionID).delete"
    }
}

/// The Account API: what end users do with their own account (spec section 3).
public final class Accounts: Sendable {
    let directory: Directory

    public init(directory: Directory) {
        self.directory = directory
    }

    /// `Account/Create`: a new user with email and password; does not sign in.
    public func create(
        userID userIDParameter: String, email rawEmail: String, password: String, name: String?, call: Call
    ) async throws -> UserRecord {
        let now = directory.clock.now()
        let settings = try directory.settings()
        try directory.requireMethod("email-password", call: call, settings: settings)
        let userID = try Identifiers.customID(userIDParameter, name: "userId", nowMicroseconds: now * 1000)
        let email = try FieldValidation.email(rawEmail)
        if let name { try FieldValidation.name(name) }
        // The sign-up's count is stored with the new account, or on its own if the sign-up fails.
        return try await directory.rateLimiter.counted(.createAccount, keys: [Directory.ipKey(call)], call: call) { storeCount in
            // As in Appwrite, the personal-data check sees the raw id parameter.
            try PasswordPolicy.check(
                password, settings: settings,
                personal: .init(userID: userIDParameter, email: email, name: name ?? "", phone: ""))
            // Cheap look-ups before the expensive hash; the write transaction checks again.
            let (taken, users) = try directory.store.read { r in
                (try r.user(id: userID) != nil || r.userID(email: email) != nil, try r.userCount())
            }
            if taken { throw AuthdError.userAlreadyExists }
            // Before the expensive hash; `insert` checks again inside the write.
            if settings.userLimit > 0 && users >= settings.userLimit { throw AuthdError.userCountExceeded }

            var user = UserRecord(id: userID, createdAt: now)
            user.email = email
            user.name = name ?? ""
            user.passwordHash = try await directory.hash(password, for: call)
            user.hashAlgorithm = PasswordHasher.algorithm
            user.passwordUpdate = now
            user.passwordHistory = Directory.history([], adding: user.passwordHash, settings: settings)
            try await directory.insert(user, call: call, userLimit: settings.userLimit, inSameWrite: storeCount)
            return user
        }
    }

    /// `Account/Get`: the caller's own account, as the signed-in caller, so that a transport can
    /// keep its encoding of the answer with the session cache entry. Lent to `body`, not
    /// returned (`Call.withSignedInCaller`).
    public func get(call: borrowing Call, _ body: (SignedIn) throws -> Void) throws {
        try call.withSignedInCaller(body)
    }
}
