import AuthdStore
import Synchronization

/// Scope names (spec 1.2, plus authd's own operator scopes). Every operation requires one.
public enum Scope {
    public static let account = "account"
    public static let sessionsWrite = "sessions.write"
    public static let usersRead = "users.read"
    public static let usersWrite = "users.write"
    public static let teamsRead = "teams.read"
    public static let teamsWrite = "teams.write"
    /// authd's project settings (`authctl settings`).
    public static let settingsRead = "settings.read"
    public static let settingsWrite = "settings.write"
    /// API key management (`authctl keys`): operators only.
    public static let keysRead = "keys.read"
    public static let keysWrite = "keys.write"
    /// Always granted; for operations anyone may call (health).
    public static let `public` = "public"

    /// What a guest holds.
    public static let guest: Set<String> = [`public`, sessionsWrite]
    /// What any signed-in user holds.
    public static let user: Set<String> = [`public`, sessionsWrite, account, teamsRead, teamsWrite]
    /// Scopes an API key may be given.
    public static let grantable: Set<String> = [
        sessionsWrite, usersRead, usersWrite, teamsRead, teamsWrite, settingsRead, settingsWrite,
    ]
    /// What an operator peer (root, or the daemon's own user) holds: everything.
    public static let operatorScopes: Set<String> = grantable.union([`public`, keysRead, keysWrite])

    /// Every scope, in the order of their bits in a `ScopeMask`.
    static let all: [String] = [
        `public`, account, sessionsWrite, usersRead, usersWrite, teamsRead, teamsWrite, settingsRead, settingsWrite,
        keysRead, keysWrite,
    ]
}

/// A set of scopes as bits: the check every call makes is one AND, with no string hashed and no
/// shared set retained on the hot path.
public struct ScopeMask: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// The mask of `names`; names that are no scope grant nothing.
    public init(_ names: some Sequence<String>) {
        var raw: UInt32 = 0
        for name in names {
            if let bit = Scope.all.firstIndex(of: name) { raw |= 1 << UInt32(bit) }
        }
        rawValue = raw
    }

    /// The scope names of the set bits, sorted.
    var names: [String] {
        Scope.all.indices.filter { rawValue & (1 << UInt32($0)) != 0 }.map { Scope.all[$0] }.sorted()
    }

    static let guest = ScopeMask(Scope.guest)
    static let user = ScopeMask(Scope.user)
    static let impersonator = ScopeMask(Scope.user.union([Scope.usersRead]))
    static let `public` = ScopeMask([Scope.public])

    /// What a server with `scopes` holds: exactly those, plus `public`.
    static func server(_ scopes: some Sequence<String>) -> ScopeMask {
        ScopeMask(scopes).union(.public)
    }
}

/// A caller with server rights: an API key, or a process mapped by its Unix credentials.
public struct ServerIdentity: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case apiKey(id: String)
        case peer(PeerCredentials)
    }

    public let kind: Kind
    public let scopes: Set<String>
    /// `scopes` as bits, plus `public`, worked out once: a server's every call checks them, and
    /// each check went through every name (perf).
    let scopeMask: ScopeMask

    public init(kind: Kind, scopes: Set<String>) {
        self.kind = kind
        self.scopes = scopes
        // Exactly its scopes (plus `public`): signing end users in needs `sessions.write`.
        scopeMask = .server(scopes)
    }

    /// With the mask already worked out (`ScopeMask.server(_:)` of `scopes`).
    init(kind: Kind, scopes: Set<String>, scopeMask: ScopeMask) {
        self.kind = kind
        self.scopes = scopes
        self.scopeMask = scopeMask
    }

    /// The same identity in storage of its own (`ApiKeyFront`): its strings and set are new, so
    /// that the calls of one event loop retain and release them on that loop's core only.
    func loopCopy() -> ServerIdentity {
        let kind: Kind =
            switch self.kind {
            case .apiKey(let id): .apiKey(id: String(decoding: Array(id.utf8), as: UTF8.self))
            case .peer(let peer): .peer(peer)
            }
        return ServerIdentity(
            kind: kind, scopes: Set(scopes.map { String(decoding: Array($0.utf8), as: UTF8.self) }), scopeMask: scopeMask)
    }
}

/// A signed-in user with the session that authenticated the call. A reference, shared with
/// the session cache: handing a call around costs one retain, not one per field of the records.
public final class SignedIn: Sendable, Equatable {
    /// The user, without the password fields (`UserRecord.removePasswordFields`): the session
    /// cache holds one such copy per session, and the hash and its history were 100-200 bytes
    /// of each (more with `password_history`) that only a change of password, email or phone
    /// needs; those read the user's stored record.
    public let user: UserRecord
    public let session: SessionRecord
    /// The user as a transport last encoded it for this caller (the answer to `Account/Get`).
    /// It lives and dies with this entry of the session cache, so it is never staler than it.
    public let encodedUser = Memo<[UInt8]>()
    /// Set when the session cache lets go of this entry (a change to its user or sessions, or
    /// room made for others): a `SessionCacheFront` that still holds it then looks again.
    private let dropped = Atomic<Bool>(false)
    /// For an event loop's own copy (`init(loopCopyOf:)`), the entry the session cache holds.
    private let origin: SignedIn?

    /// `user` is consumed: its password fields are emptied in place, not in a copy of every field.
    public init(user: consuming UserRecord, session: SessionRecord) {
        user.removePasswordFields()
        self.user = user
        self.session = session
        origin = nil
    }

    /// A copy of `entry` for one event loop's `SessionCacheFront`, dropped when `entry` is.
    ///
    /// Every call retains and releases the caller it holds. Were the loops' fronts to share the
    /// cache's entry, a session checked from two loops would move that count's cache line
    /// between their cores on every call (perf, issue 5); each loop's copy is counted on its
    /// own core. The copy shares the entry's strings and, once made, its encoded answer.
    init(loopCopyOf entry: SignedIn) {
        user = entry.user
        session = entry.session
        origin = entry.origin ?? entry
        encodedUser.adopt(entry.encodedUser)
    }

    var isDropped: Bool { (origin ?? self).dropped.load(ordering: .acquiring) }

    /// Whether this is an event loop's copy of `entry` (for tests).
    func isLoopCopy(of entry: SignedIn) -> Bool { origin === entry }

    func markDropped() { dropped.store(true, ordering: .releasing) }

    /// What a signed-in user holds, as bits.
    var scopeMask: ScopeMask { user.impersonator ? .impersonator : .user }

    public static func == (a: SignedIn, b: SignedIn) -> Bool {
        a === b || (a.user == b.user && a.session == b.session)
    }
}

/// A value computed at most once per owner, on first use, by whichever thread gets there first.
/// Inlinable, so that callers in other modules get it specialized (no generic metadata lookup
/// per call on the hot path).
///
/// Once made, the value is read with one load and lent to the reader, with no lock and no
/// retain: a lock taken and the value retained and released on every session check were four
/// atomic read-modify-writes, on memory the event loops share (perf, issue 5). The value lives
/// in a box the memo owns from the moment it is published until the memo ends.
public struct Memo<Value: Sendable>: ~Copyable, Sendable {
    @usableFromInline final class Box: Sendable {
        @usableFromInline let value: Value
        @usableFromInline init(_ value: Value) { self.value = value }
    }

    /// The published box's address, retained once by the memo; 0 until the value is made.
    @usableFromInline let published = Atomic<UInt>(0)

    @inlinable public init() {}

    deinit {
        if let box = Self.box(at: published.load(ordering: .acquiring)) { box.release() }
    }

    /// Takes `other`'s value as this memo's, if it has one and this memo none yet.
    func adopt(_ other: borrowing Memo) {
        guard let box = Self.box(at: other.published.load(ordering: .acquiring)) else { return }
        let retained = box.retain()
        let (won, _) = published.compareExchange(
            expected: 0, desired: UInt(bitPattern: retained.toOpaque()), ordering: .acquiringAndReleasing)
        if !won { retained.release() }
    }

    @inlinable static func box(at address: UInt) -> Unmanaged<Box>? {
        UnsafeRawPointer(bitPattern: address).map { Unmanaged<Box>.fromOpaque($0) }
    }

    /// Runs `body` with the value, made by `make` the first time. When two threads make it at
    /// once, the first to publish wins and both use its value.
    @inlinable
    public func withValue<R>(orMake make: () throws -> Value, _ body: (Value) throws -> R) rethrows -> R {
        if let box = Self.box(at: published.load(ordering: .acquiring)) {
            return try box._withUnsafeGuaranteedRef { try body($0.value) }
        }
        let made = Unmanaged.passRetained(Box(try make()))
        let address = UInt(bitPattern: made.toOpaque())
        let (won, current) = published.compareExchange(expected: 0, desired: address, ordering: .acquiringAndReleasing)
        if !won { made.release() }
        return try Self.box(at: won ? address : current)!._withUnsafeGuaranteedRef { try body($0.value) }
    }
}

/// Who is calling, once the credential has been checked.
public enum Caller: Sendable, Equatable {
    case guest
    /// A signed-in user, with the session that authenticated the call.
    case user(SignedIn)
    case server(ServerIdentity)

    public static func user(_ user: UserRecord, session: SessionRecord) -> Caller {
        .user(SignedIn(user: user, session: session))
    }

    /// What the caller holds, as bits.
    public var scopeMask: ScopeMask {
        switch self {
        case .guest: .guest
        case .user(let signedIn): signedIn.scopeMask
        case .server(let identity): identity.scopeMask
        }
    }

    public var isServer: Bool {
        if case .server = self { return true }
        return false
    }

    /// Spec 13.2 actor types; a mapped peer is recorded as `peer`.
    var actorType: String {
        switch self {
        case .guest: "guest"
        case .user: "user"
        case .server(let identity):
            switch identity.kind {
            case .apiKey: "keyProject"
            case .peer: "peer"
            }
        }
    }

    var actorID: String {
        switch self {
        case .guest: ""
        case .user(let signedIn): signedIn.user.id
        case .server(let identity):
            switch identity.kind {
            case .apiKey(let id): "key:\(id)"
            case .peer(let peer): "uid:\(peer.uid),pid:\(peer.pid)"
            }
        }
    }
}

/// An authorised call: the caller, checked against the operation's scopes, and its context.
/// A value: passed borrowed down the call, it costs no allocation per call (a reference did:
/// its allocation, release and deinit were 4-5 % of a session check).
public struct Call: Sendable, Equatable {
    public let caller: Caller
    public let context: RequestContext

    public init(caller: Caller, context: RequestContext) {
        self.caller = caller
        self.context = context
    }

    /// The signed-in caller; a guest or server caller lacks the `account` scope.
    func signedInCaller() throws -> SignedIn {
        try withSignedInCaller { $0 }
    }

    /// Runs `body` with the signed-in caller, lent: switching over the borrowed `caller` binds
    /// it without a retain, where returning it retains and releases it once more (perf, the
    /// session check's `Account/Get`).
    func withSignedInCaller<R>(_ body: (SignedIn) throws -> R) throws -> R {
        switch caller {
        case .user(let signedIn): try body(signedIn)
        default: throw AuthdError.unauthorizedScope(Scope.account)
        }
    }

    /// The signed-in user and session, as `signedInCaller` finds them.
    func signedIn() throws -> (user: UserRecord, session: SessionRecord) {
        let signedIn = try signedInCaller()
        return (signedIn.user, signedIn.session)
    }
}

/// Which Unix users and groups get server scopes without a key.
public struct PeerPolicy: Sendable, Equatable {
    /// What a mapped peer holds: its scopes and, worked out once, their mask, which a mapped
    /// peer's every call is checked against (a backend connected as one makes all its calls so).
    struct Grant: Sendable, Equatable {
        let scopes: Set<String>
        let mask: ScopeMask

        init(_ scopes: Set<String>) {
            self.scopes = scopes
            mask = .server(scopes)
        }

        /// Both grants; the mask of the scopes' union is the union of the masks.
        func union(_ other: Grant) -> Grant {
            Grant(scopes: scopes.union(other.scopes), mask: mask.union(other.mask))
        }

        private init(scopes: Set<String>, mask: ScopeMask) {
            self.scopes = scopes
            self.mask = mask
        }

        static let operators = Grant(Scope.operatorScopes)
    }

    /// uids with every scope, API key management included.
    public let operatorUIDs: Set<UInt32>
    private let uidGrants: [UInt32: Grant]
    private let gidGrants: [UInt32: Grant]

    public init(operatorUIDs: Set<UInt32> = [], uidScopes: [UInt32: Set<String>] = [:], gidScopes: [UInt32: Set<String>] = [:]) {
        self.operatorUIDs = operatorUIDs
        uidGrants = uidScopes.mapValues(Grant.init)
        gidGrants = gidScopes.mapValues(Grant.init)
    }

    /// What a peer holds, or nil when it is not mapped (a plain client). A uid's and a gid's
    /// grants add up.
    func grant(for peer: PeerCredentials) -> Grant? {
        if operatorUIDs.contains(peer.uid) { return .operators }
        switch (uidGrants[peer.uid], gidGrants[peer.gid]) {
        case (nil, nil): return nil
        case (let byUID?, nil): return byUID
        case (nil, let byGID?): return byGID
        case (let byUID?, let byGID?): return byUID.union(byGID)
        }
    }
}
