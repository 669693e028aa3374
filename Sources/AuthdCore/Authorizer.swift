import AuthdStore
import Synchronization

/// Resolves the credential of a call to a caller and checks the operation's scopes before
/// anything else runs (spec 1.1-1.3).
public final class Authorizer: Sendable {
    let store: any AuthStore
    let clock: any WallClock
    let peerPolicy: PeerPolicy
    let jwt: JWTIssuer?
    let sessions: SessionCache
    let apiKeys: ApiKeyCache
    /// Where the JWTs `authorize` leaves pending are verified (`verifyCredential`); nil: every
    /// check runs where `authorize` is called.
    let verificationPool: BlockingPool?
    /// Users whose `accessedAt` refresh is queued, so a burst of calls queues one write.
    private let refreshing = Mutex<Set<String>>([])

    /// `sessionCacheSize` sessions (with their users) are kept decoded in memory; 0 turns the
    /// cache off.
    public init(
        store: any AuthStore, clock: any WallClock = SystemWallClock(), peerPolicy: PeerPolicy = PeerPolicy(),
        jwt: JWTIssuer? = nil, sessionCacheSize: Int = 100_000, apiKeyCacheSize: Int = 1024,
        verificationPool: BlockingPool? = nil
    ) {
        self.store = store
        self.verificationPool = verificationPool
        self.clock = clock
        self.peerPolicy = peerPolicy
        self.jwt = jwt
        let sessions = SessionCache(capacity: sessionCacheSize)
        self.sessions = sessions
        let apiKeys = ApiKeyCache(capacity: apiKeyCacheSize)
        self.apiKeys = apiKeys
        store.observeCommits { changes in
            sessions.invalidate(changes)
            apiKeys.invalidate(changes)
        }
    }

    /// CPU time the verification pool's threads spent on credentials, in microseconds since start.
    public var verificationMicros: UInt64 { verificationPool?.workMicros ?? 0 }
    /// JWT verifications refused since start, with the verification threads' queue full.
    public var verificationsRefusedBusy: UInt64 { verificationPool?.refused ?? 0 }

    /// Sessions held decoded in the session cache.
    public var cachedSessions: Int { sessions.count }

    /// A front of the session cache for one thread (an event loop) to pass to `authorize`, and
    /// only from that thread; nil when the cache is off.
    public func makeSessionFront(slots: Int = 4096) -> SessionCacheFront? {
        sessions.capacity > 0 ? SessionCacheFront(cache: sessions, slotCount: slots) : nil
    }

    /// How the session cache served the session checks since start.
    public var sessionCacheFigures: CacheFigures { sessions.figures }

    /// API keys held in the key cache.
    public var cachedApiKeys: Int { apiKeys.count }

    /// A front of the API key cache for one thread (an event loop) to pass to `authorize`, and
    /// only from that thread; nil when the cache is off.
    public func makeApiKeyFront() -> ApiKeyFront? {
        apiKeys.capacity > 0 ? ApiKeyFront(cache: apiKeys) : nil
    }

    /// The caller, when it holds at least one of `scopes`; `general_unauthorized_scope`
    /// otherwise, and `user_blocked` for a blocked user.
    public func authorize(_ context: RequestContext, scopes: Set<String>) throws -> Call {
        try authorize(context, requiring: ScopeMask(scopes))
    }

    /// `authorize(_:scopes:)` with the scopes as bits, computed once per operation.
    public func authorize(_ context: RequestContext, requiring required: ScopeMask) throws -> Call {
        try authorize(context, requiring: required, at: clock.now())
    }

    /// The time `authorize` checks expiry against, from this authorizer's clock.
    public func now() -> Int64 { clock.now() }

    /// `authorize(_:requiring:)` at a time the caller read from `now()`: the transport reads it
    /// once for all the calls of one read from a connection (they arrived together), instead of
    /// once per call (the clock was 3 % of a session check).
    /// The context is consumed: it moves into the call instead of being copied (perf).
    /// `front` and `keyFront`: the calling thread's fronts of the session cache
    /// (`makeSessionFront`) and of the API key cache (`makeApiKeyFront`), if it has them.
    /// `leavingSlowChecks`: a JWT not verified lately is not verified here: `authorize` throws
    /// `CredentialVerificationPending`, for the caller (an event loop) to await
    /// `verifyCredential` and call again.
    public func authorize(
        _ context: consuming RequestContext, requiring required: ScopeMask, at now: Int64, front: SessionCacheFront? = nil,
        keyFront: ApiKeyFront? = nil, leavingSlowChecks: Bool = false
    ) throws -> Call {
        // A session's user is checked as the `SignedIn` the cache holds, which then moves into
        // the call: going through `Caller` for the scope mask and again for the status copied
        // the reference twice more (two retains and releases per session check, perf).
        switch context.credential {
        case .session(let digest):
            guard let signedIn = try sessionUser(digest, now: now, front: front) else {
                try require(required, of: .guest)
                return Call(caller: .guest, context: context)
            }
            try require(required, of: signedIn.scopeMask)
            try checkUser(signedIn, now: now)
            return Call(caller: .user(signedIn), context: context)
        // Server callers are resolved without a read transaction: a mapped peer from the
        // policy alone, an API key from the key cache.
        case .none:
            let caller = peerCaller(context.peer)
            try require(required, of: caller.scopeMask)
            return Call(caller: caller, context: context)
        case .apiKey(let digest):
            let identity = try apiKeyIdentity(digest, now: now, front: keyFront)
            try require(required, of: identity.scopeMask)
            return Call(caller: .server(identity), context: context)
        case .jwt(let token):
            // As a session's, spelled out again: a helper taking the `SignedIn` for both costs
            // the session check a retain and a release more (uprobes: 14 more a batch of 16).
            guard let jwt else { throw AuthdError(type: "user_jwt_invalid", code: 401, message: "This authd issues no JWTs.") }
            guard let signedIn = try jwtUser(token, jwt: jwt, now: now, front: front, leavingSlowChecks: leavingSlowChecks) else {
                try require(required, of: .guest)
                return Call(caller: .guest, context: context)
            }
            try require(required, of: signedIn.scopeMask)
            try checkUser(signedIn, now: now)
            return Call(caller: .user(signedIn), context: context)
        }
    }

    private func require(_ required: ScopeMask, of held: ScopeMask) throws {
        guard !held.isDisjoint(with: required) else {
            throw AuthdError.unauthorizedScope(required.names.joined(separator: " or "))
        }
    }

    /// A blocked user is refused; a user last seen a day ago or more is seen again now.
    private func checkUser(_ signedIn: SignedIn, now: Int64) throws {
        guard signedIn.user.status else { throw AuthdError.userBlocked }
        if now - signedIn.user.accessedAt >= Self.accessRefreshMilliseconds {
            // The user's id is read only when a refresh is due: on every other call that
            // would be a retain of a string the other event loops share.
            refreshAccessedAt(userID: signedIn.user.id, accessedAt: signedIn.user.accessedAt)
        }
    }

    /// `accessedAt` moves at most once a day (spec 1.3), in a write the call does not wait for.
    func refreshAccessedAt(userID: String, accessedAt: Int64) {
        let now = clock.now()
        guard now - accessedAt >= Self.accessRefreshMilliseconds else { return }
        guard refreshing.withLock({ $0.insert(userID).inserted }) else { return }
        store.writeInBackground { [self] w in
            defer { _ = refreshing.withLock { $0.remove(userID) } }
            guard var current = try w.user(id: userID), now - current.accessedAt >= Self.accessRefreshMilliseconds else { return }
            current.accessedAt = now
            try w.updateUser(current)
        }
    }

    /// The user and session of a session secret (by its digest); nil for an unknown or expired
    /// session.
    func sessionUser(_ digest: SecretDigest, now: Int64, front: SessionCacheFront? = nil) throws -> SignedIn? {
        precondition(front == nil || front!.cache === sessions, "a session cache front of another authorizer")
        let entry: SignedIn
        if let held = heldSignIn(digest, front: front) {
            entry = held
        } else {
            let generation = sessions.generation(for: digest)
            let found = try store.read { reader -> SignedIn? in
                // The digest's bytes are lent where they lie, not copied into an array.
                try digest.withUnsafeBytes { presented in
                    guard let session = try reader.session(secretHash: presented, locator: digest.locator),
                        session.secretHash.withUnsafeBytes({ ConstantTime.equals($0, presented) }),
                        let user = try reader.user(id: session.userID)
                    else { return nil }
                    return SignedIn(user: user, session: session)
                }
            }
            guard let found else { return nil }
            keep(found, under: digest, readAt: generation, front: front)
            entry = found
        }
        guard entry.session.expire >= now else { return nil }
        return entry
    }

    /// The sign-in held under `key` by the thread's front or by the session cache; one the
    /// cache holds is offered to the front.
    private func heldSignIn(_ key: SecretDigest, front: SessionCacheFront?) -> SignedIn? {
        if let hit = front?.lookup(key) { return hit }
        guard let hit = sessions.lookup(key) else { return nil }
        front?.offer(key, hit)
        return hit
    }

    /// Keeps `found`, read from a snapshot opened after `generation` was read, in the session
    /// cache under `key`, and offers it to the thread's front if the cache kept it.
    private func keep(_ found: SignedIn, under key: SecretDigest, readAt generation: UInt64, front: SessionCacheFront?) {
        if sessions.insert(key, found, readAt: generation) { front?.offer(key, found) }
    }

    static let accessRefreshMilliseconds: Int64 = 86_400_000

    /// The user (and session) a JWT signs in; nil, a guest, when its user or session is gone or
    /// the session has expired (spec 10: deleting a session revokes its tokens). The token is
    /// checked on every call, expiry included (`JWTIssuer.keptClaims`, `verifyAndKeep`); `user_jwt_invalid` when it
    /// fails.
    ///
    /// A token bound to a session is resolved as a session secret is, through the session
    /// cache, under a key of the token's own (`SecretDigest.jwtSessionKey`): its entry is dropped
    /// with its user's or session's every change, as a session's is. Reading both from the store
    /// on every call cost 6.2 µs of CPU a call, where a cached session costs 0.6 (issue 5). A
    /// token a server made for a user with no session (`Users/CreateJWT`) reads the user.
    ///
    /// A token not verified lately is verified here, unless `leavingSlowChecks`: then
    /// `CredentialVerificationPending` is thrown, when a pool can verify it and keep it.
    func jwtUser(
        _ token: String, jwt: JWTIssuer, now: Int64, front: SessionCacheFront?, leavingSlowChecks: Bool = false
    ) throws -> SignedIn? {
        precondition(front == nil || front!.cache === sessions, "a session cache front of another authorizer")
        let digest = SecretToken.digest(token)
        let claims: JWTIssuer.Claims
        if let kept = try jwt.keptClaims(digest, at: now / 1000) {
            claims = kept
        } else if leavingSlowChecks, verificationPool != nil, jwt.keepsVerifiedTokens {
            throw CredentialVerificationPending(token: token, digest: digest)
        } else {
            claims = try jwt.verifyAndKeep(token, digest: digest)
        }
        guard !claims.sessionID.isEmpty else {
            guard let user = try store.read({ try $0.user(id: claims.userID) }) else { return nil }
            return SignedIn(
                user: user, session: SessionRecord(id: "", userID: user.id, createdAt: 0, expire: 0, provider: "jwt", secretHash: []))
        }
        let key = digest.jwtSessionKey
        var entry = heldSignIn(key, front: front)
        // Held under a key that only this token's digest makes, an entry is this token's; the
        // ids are compared all the same, as the store path compares them.
        if let held = entry, held.session.id != claims.sessionID || held.user.id != claims.userID { entry = nil }
        if entry == nil {
            let generation = sessions.generation(for: key)
            let found = try store.read { reader -> SignedIn? in
                guard let user = try reader.user(id: claims.userID), let session = try reader.session(id: claims.sessionID),
                    session.userID == user.id
                else { return nil }
                return SignedIn(user: user, session: session)
            }
            guard let found else { return nil }
            keep(found, under: key, readAt: generation, front: front)
            entry = found
        }
        guard let entry, entry.session.expire >= now else { return nil }
        return entry
    }

    /// Verifies, on the verification pool, the credential `authorize` left pending, and keeps it
    /// verified: called again, `authorize` finds it so (or, should a change of keys have
    /// emptied what was kept meanwhile, verifies it where it is called). Throws the
    /// credential's refusal, `user_jwt_invalid`.
    public func verifyCredential(_ pending: CredentialVerificationPending) async throws {
        guard let jwt else { return }
        // Calls pipelined with the same token leave it pending together: once one of them has
        // verified it, the others find it kept (`verify` looks first).
        let verify = { @Sendable in _ = try jwt.verify(pending.token, digest: pending.digest) }
        guard let pool = verificationPool else { return try verify() }
        try await pool.run(verify)
    }

    /// A mapped peer is a server with its grant; anyone else with no credential is a guest.
    private func peerCaller(_ peer: PeerCredentials?) -> Caller {
        guard let peer, let grant = peerPolicy.grant(for: peer) else { return .guest }
        return .server(ServerIdentity(kind: .peer(peer), scopes: grant.scopes, scopeMask: grant.mask))
    }

    /// The server an API key (by the digest of its secret) makes the caller, from the key cache
    /// when it holds the key. An expired key is refused on every use, cached or not.
    func apiKeyIdentity(_ digest: SecretDigest, now: Int64, front: ApiKeyFront? = nil) throws -> ServerIdentity {
        precondition(front == nil || front!.cache === apiKeys, "an API key front of another authorizer")
        if let hit = front?.lookup(digest) { return try usable(hit, now: now) }
        // Read before the lookup: a front keeps what was found only until the generation moves.
        let generation = apiKeys.generation
        let entry: ApiKeyCache.Entry
        if let hit = apiKeys.lookup(digest) {
            entry = hit
        } else {
            let presented = digest.bytes
            entry = try store.read { try apiKeyEntry(presented, in: $0) }
            apiKeys.insert(digest, entry, readAt: generation)
        }
        front?.keep(digest, entry, readAt: generation)
        return try usable(entry, now: now)
    }

    /// The key whose secret hashes to `presented`; unknown and revoked keys are refused.
    private func apiKeyEntry(_ presented: [UInt8], in reader: any StoreReader) throws -> ApiKeyCache.Entry {
        guard let keyID = try reader.apiKeyID(secretHash: presented), let key = try reader.apiKey(id: keyID),
            SecretToken.constantTimeEquals(key.secretHash, presented), key.revokedAt == 0
        else {
            throw AuthdError(
                type: "general_unauthorized_scope", code: 401,
                message: "The API key is unknown or revoked: create one with `authctl keys create`.")
        }
        return ApiKeyCache.Entry(identity: ServerIdentity(kind: .apiKey(id: key.id), scopes: Set(key.scopes)), expire: key.expire)
    }

    private func usable(_ key: ApiKeyCache.Entry, now: Int64) throws -> ServerIdentity {
        if key.expire != 0 && key.expire < now {
            throw AuthdError(
                type: "project_key_expired", code: 401, message: "The API key has expired: create a new one.")
        }
        return key.identity
    }
}

/// Thrown by `Authorizer.authorize` when asked to leave slow checks: the call's JWT has not been
/// verified lately, and verifying it would hold the calling event loop for about 90 µs.
public struct CredentialVerificationPending: Error, Sendable, CustomStringConvertible {
    let token: String
    let digest: SecretDigest

    /// Without the token, which is a credential and is never logged.
    public var description: String { "a JWT awaiting verification" }
}
