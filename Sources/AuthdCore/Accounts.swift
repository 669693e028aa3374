import AuthdStore
import Logging

/// Limits on sessions that a later issue moves into the project settings record (spec 6.4).
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

/// The Account API: what end users do with their own account (spec section 3).
public final class Accounts: Sendable {
    let store: any AuthStore
    let hasher: PasswordHasher
    let hashingPool: BlockingPool
    let clock: any WallClock
    let sessionPolicy: SessionPolicy
    let logger: Logger
    /// Verified against when a login names an unknown email, so that the answer takes as long
    /// as for a known one and does not reveal which emails have accounts.
    let decoyHash: String

    public init(
        store: any AuthStore, hasher: PasswordHasher, hashingPool: BlockingPool,
        clock: any WallClock = SystemWallClock(), sessionPolicy: SessionPolicy = SessionPolicy(),
        logger: Logger = Logger(label: "authd.accounts")
    ) throws {
        self.store = store
        self.hasher = hasher
        self.hashingPool = hashingPool
        self.clock = clock
        self.sessionPolicy = sessionPolicy
        self.logger = logger
        self.decoyHash = try hasher.hash(SecretToken.generate())
    }

    // MARK: Account

    /// `Account/Create`: a new user with email and password; does not sign in.
    public func create(
        userID userIDParameter: String, email rawEmail: String, password: String, name: String?,
        context: RequestContext
    ) async throws -> UserRecord {
        let now = clock.now()
        let userID = try Identifiers.customID(userIDParameter, name: "userId", nowMicroseconds: now * 1000)
        let email = try FieldValidation.email(rawEmail)
        try FieldValidation.newPassword(password)
        if let name { try FieldValidation.name(name) }
        // Cheap look-ups before the expensive hash; the write transaction checks again.
        let taken = try store.read { r in try r.user(id: userID) != nil || r.userID(email: email) != nil }
        if taken { throw AuthdError.userAlreadyExists }

        let hash = try await hashingPool.run { [hasher] in try hasher.hash(password) }
        var user = UserRecord(id: userID, createdAt: now)
        user.email = email
        user.name = name ?? ""
        user.passwordHash = hash
        user.hashAlgorithm = PasswordHasher.algorithm
        user.passwordUpdate = now
        let caller = try store.read { try authenticate(context, in: $0) }
        let change = changeRecord(
            event: "users.\(userID).create", audit: "user.create", resource: "user/\(userID)",
            userID: userID, caller: caller, context: context, time: now)
        let newUser = user
        do {
            try await store.write { w in
                try w.insertUser(newUser)
                try w.appendChange(change)
            }
        } catch let error as StoreError where error.kind == .duplicate {
            throw AuthdError.userAlreadyExists
        }
        logger.info("account created", metadata: ["user": "\(userID)"])
        return user
    }

    /// `Account/Get`: the caller's own account.
    public func get(context: RequestContext) throws -> UserRecord {
        try store.read { r in try signedIn(context, in: r).user }
    }

    // MARK: Caller

    /// Resolves the presented credential. A missing, unknown or expired session is a guest, as
    /// in Appwrite; the scope check of each operation then decides.
    public func authenticate(_ context: RequestContext, in reader: any StoreReader) throws -> Caller {
        switch context.credential {
        case .none:
            return .guest
        case .session(let secret):
            let presented = SecretToken.hash(secret)
            guard let sessionID = try reader.sessionID(secretHash: presented),
                let session = try reader.session(id: sessionID),
                SecretToken.constantTimeEquals(session.secretHash, presented),
                session.expire >= clock.now(),
                let user = try reader.user(id: session.userID)
            else { return .guest }
            return .user(user, session: session)
        case .jwt:
            throw AuthdError(
                type: "user_auth_method_unsupported", code: 501,
                message: "JWT credentials are not supported by this authd yet.")
        case .apiKey:
            throw AuthdError(
                type: "user_auth_method_unsupported", code: 501,
                message: "API key credentials are not supported by this authd yet.")
        }
    }

    /// The signed-in caller of an operation with scope `account`: a guest lacks the scope, a
    /// blocked user is refused.
    func signedIn(_ context: RequestContext, in reader: any StoreReader) throws -> (user: UserRecord, session: SessionRecord) {
        guard case .user(let user, let session) = try authenticate(context, in: reader) else {
            throw AuthdError.unauthorizedScope("account")
        }
        guard user.status else { throw AuthdError.userBlocked }
        return (user, session)
    }

    func changeRecord(
        event: String, audit: String, resource: String, userID: String, caller: Caller,
        context: RequestContext, time: Int64
    ) -> ChangeRecord {
        var change = ChangeRecord(time: time, event: event, auditEvent: audit, resource: resource, userID: userID)
        change.actorType = caller.actorType
        change.actorID = caller.actorID
        change.ip = context.client.ip
        change.userAgent = context.client.userAgent
        return change
    }
}
