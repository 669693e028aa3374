/// The records authd keeps. Plain values: the store encodes them (as protobuf, for schema
/// evolution) and the domain works with them without knowing the encoding.
///
/// Times are Unix time in milliseconds; 0 means "never" or "not set".
public struct UserRecord: Sendable, Equatable {
    public var id: String
    public var createdAt: Int64
    public var updatedAt: Int64
    public var name: String = ""
    /// Lower-cased; empty when the user has none.
    public var email: String = ""
    public var phone: String = ""
    public var status: Bool = true
    public var labels: [String] = []
    /// PHC string of the password hash; empty when the user has no password.
    public var passwordHash: String = ""
    /// The algorithm of `passwordHash`, `argon2` for every hash authd makes itself.
    public var hashAlgorithm: String = ""
    public var passwordUpdate: Int64 = 0
    public var registration: Int64 = 0
    public var emailVerification: Bool = false
    public var phoneVerification: Bool = false
    public var mfa: Bool = false
    /// A JSON object.
    public var prefs: String = "{}"
    public var accessedAt: Int64 = 0
    public var passwordHistory: [String] = []
    public var reset: Bool = false
    public var impersonator: Bool = false
    /// Parameters of an imported hash (a JSON object); empty for authd's own Argon2id hashes.
    public var hashOptions: String = ""

    public init(id: String, createdAt: Int64) {
        self.id = id
        self.createdAt = createdAt
        self.updatedAt = createdAt
        self.registration = createdAt
        self.accessedAt = createdAt
    }

    /// Empties the password's hash, the history of hashes and an imported hash's options: what
    /// a signed-in caller's copy does without (see `SignedIn`). Not a record to write after.
    public mutating func removePasswordFields() {
        passwordHash = ""
        passwordHistory = []
        hashOptions = ""
    }
}

public struct SessionRecord: Sendable, Equatable {
    public var id: String
    public var userID: String
    public var createdAt: Int64
    public var updatedAt: Int64
    public var expire: Int64
    public var provider: String
    public var providerUID: String = ""
    /// SHA-256 of the session secret; the secret itself is never stored.
    public var secretHash: [UInt8]
    /// The number the secret begins with (the time it was made, in microseconds), which leads
    /// the session's key in the secret index; 0 for a secret indexed by its hash alone.
    public var secretLocator: UInt64 = 0
    public var ip: String = ""
    public var userAgent: String = ""
    public var countryCode: String = "--"
    public var factors: [String] = []
    public var mfaUpdatedAt: Int64 = 0

    public init(
        id: String, userID: String, createdAt: Int64, expire: Int64, provider: String,
        secretHash: [UInt8]
    ) {
        self.id = id
        self.userID = userID
        self.createdAt = createdAt
        self.updatedAt = createdAt
        self.expire = expire
        self.provider = provider
        self.secretHash = secretHash
    }
}

/// The fields of a stored user that a list can filter on, read off the record's bytes without
/// decoding it: what a scan looks at first. The text fields are the store's UTF-8, lent for
/// the one call that gets them; the others are as `UserRecord` holds them.
public struct UserFields {
    public var id = UnsafeRawBufferPointer(start: nil, count: 0)
    public var name = UnsafeRawBufferPointer(start: nil, count: 0)
    public var email = UnsafeRawBufferPointer(start: nil, count: 0)
    public var phone = UnsafeRawBufferPointer(start: nil, count: 0)
    /// Each label, in order (no array is made for a user without labels).
    public var labels: [UnsafeRawBufferPointer] = []
    public var createdAt: Int64 = 0
    public var updatedAt: Int64 = 0
    public var status = false
    public var passwordUpdate: Int64 = 0
    public var registration: Int64 = 0
    public var emailVerification = false
    public var phoneVerification = false
    public var accessedAt: Int64 = 0
    public var impersonator = false

    public init() {}
}

/// What places a session in the store's indexes, and so all it takes to end one: its id, its
/// user, when it was made, and its secret's hash and locator. A sign-in past the session limit
/// reads only these of the sessions it trims, not their whole records.
public struct SessionKeys: Sendable, Equatable {
    public let id: String
    public let userID: String
    public let createdAt: Int64
    public let secretHash: [UInt8]
    public let secretLocator: UInt64
}

extension SessionRecord {
    public var keys: SessionKeys {
        SessionKeys(id: id, userID: userID, createdAt: createdAt, secretHash: secretHash, secretLocator: secretLocator)
    }
}

/// One entry of the ordered change log. Every mutation appends one in the same transaction, so
/// the audit log, event streams and replication all read one consistent history.
public struct ChangeRecord: Sendable, Equatable {
    /// Assigned by the store when the entry is appended; strictly increasing.
    public var sequence: UInt64 = 0
    public var time: Int64
    /// Appwrite event name (e.g. `users.U.sessions.S.create`).
    public var event: String
    /// Appwrite audit event name (e.g. `session.create`).
    public var auditEvent: String
    /// The resource changed, e.g. `user/U`.
    public var resource: String
    public var userID: String
    public var actorType: String = ""
    public var actorID: String = ""
    public var ip: String = ""
    public var userAgent: String = ""
    /// The same user's previous entry, 0 for their first; assigned by the store on append.
    public var userPreviousSequence: UInt64 = 0

    public init(
        time: Int64, event: String, auditEvent: String, resource: String, userID: String
    ) {
        self.time = time
        self.event = event
        self.auditEvent = auditEvent
        self.resource = resource
        self.userID = userID
    }
}

/// A change-log entry encoded ahead of its write, on the caller's thread: the writer, which
/// every write waits for, only puts the two numbers the log assigns in front and behind.
public struct PreparedChange: Sendable {
    let userID: String
    /// Every field but `sequence` and `userPreviousSequence`.
    let unnumbered: [UInt8]

    public init(_ change: ChangeRecord) throws {
        var entry = change
        entry.sequence = 0
        entry.userPreviousSequence = 0
        userID = change.userID
        unnumbered = try RecordCodec.encode(entry)
    }

    private init(userID: String, unnumbered: [UInt8]) {
        self.userID = userID
        self.unnumbered = unnumbered
    }

    /// This entry with `event` as its event name, for an entry prepared without one (whose
    /// event is known only in the write, such as the id of a session a sign-in trims): the
    /// field is added behind the others, as protobuf takes fields in any order.
    public func withEvent(_ event: String) -> PreparedChange {
        var bytes = unnumbered
        bytes.reserveCapacity(bytes.count + 2 + 10 + event.utf8.count)
        bytes.append(3 << 3 | 2)  // field 3 (event), length-delimited
        RecordCodec.appendVarint(UInt64(event.utf8.count), to: &bytes)
        bytes.append(contentsOf: event.utf8)
        return PreparedChange(userID: userID, unnumbered: bytes)
    }
}

/// A record encoded ahead of its insertion, on the caller's thread rather than the writer's
/// (see `PreparedChange`).
public struct Encoded<Record: Sendable>: Sendable {
    public let record: Record
    let bytes: [UInt8]
}

extension Encoded where Record == SessionRecord {
    public init(_ record: SessionRecord) throws {
        self.record = record
        bytes = try RecordCodec.encode(record)
    }
}

extension Encoded where Record == TokenRecord {
    public init(_ record: TokenRecord) throws {
        self.record = record
        bytes = try RecordCodec.encode(record)
    }
}

/// A one-time secret of a user, kept only as a hash.
public struct TokenRecord: Sendable, Equatable {
    public var id: String
    public var userID: String
    /// Appwrite's token type codes (spec section 2): 8 is a generic, server-made token.
    public var type: UInt32
    public var secretHash: [UInt8]
    public var createdAt: Int64
    public var expire: Int64
    public var ip: String = ""
    public var userAgent: String = ""

    public init(id: String, userID: String, type: UInt32, secretHash: [UInt8], createdAt: Int64, expire: Int64) {
        self.id = id
        self.userID = userID
        self.type = type
        self.secretHash = secretHash
        self.createdAt = createdAt
        self.expire = expire
    }
}

/// A server API key, kept only as the hash of its secret.
public struct ApiKeyRecord: Sendable, Equatable {
    public var id: String
    public var name: String
    public var scopes: [String]
    public var secretHash: [UInt8]
    public var createdAt: Int64
    /// 0: never expires.
    public var expire: Int64 = 0
    /// 0 while the key is in force.
    public var revokedAt: Int64 = 0
    public var accessedAt: Int64 = 0

    public init(id: String, name: String, scopes: [String], secretHash: [UInt8], createdAt: Int64) {
        self.id = id
        self.name = name
        self.scopes = scopes
        self.secretHash = secretHash
        self.createdAt = createdAt
    }
}

/// The project's auth settings (spec 14), one record read by every operation.
public struct AuthSettings: Sendable, Equatable {
    public struct MockNumber: Sendable, Equatable {
        public var phone: String
        public var otp: String
        public init(phone: String, otp: String) {
            self.phone = phone
            self.otp = otp
        }
    }

    /// 0: no limit.
    public var userLimit = 0
    public var maxSessions = 10
    /// Seconds.
    public var duration: Int64 = 31_536_000
    public var invalidateSessions = true
    public var sessionAlerts = false
    /// 0: off.
    public var passwordHistory = 0
    public var passwordDictionary = false
    public var personalDataCheck = false
    public var passwordMinLength = 8
    public var passwordUppercase = false
    public var passwordLowercase = false
    public var passwordNumber = false
    public var passwordSymbols = false
    public var membershipsUserID = false
    public var membershipsUserEmail = false
    public var membershipsUserPhone = false
    public var membershipsUserName = false
    public var membershipsMFA = false
    public var membershipsUserAccessedAt = false
    public var mockNumbers: [MockNumber] = []
    public var disabledMethods: Set<String> = []

    public init() {}
}

/// A JWT signing key (Ed25519). The data folder is private to the daemon's user.
public struct JWTKeyRecord: Sendable, Equatable {
    public var kid: String
    public var privateKey: [UInt8]
    public var createdAt: Int64
    /// 0 while the key signs.
    public var retiredAt: Int64 = 0

    public init(kid: String, privateKey: [UInt8], createdAt: Int64) {
        self.kid = kid
        self.privateKey = privateKey
        self.createdAt = createdAt
    }
}
