import AuthdStore
import XCTest

@testable import AuthdCore

/// Server callers, resolved without a read transaction: API keys through the key cache, which
/// must never be staler than the store, and mapped peers from the policy alone.
final class ServerCallerTests: DomainTestCase {
    private func makeKey(scopes: [String] = [Scope.usersRead], expire: Int64 = 0) async throws -> (id: String, secret: String) {
        let (key, secret) = try await ApiKeys(directory: directory).create(name: "backend", scopes: scopes, expire: expire, call: server)
        return (key.id, secret)
    }

    private func call(_ secret: String, requiring scope: String = Scope.usersRead) throws -> Call {
        try authorizer.authorize(RequestContext(credential: .apiKey(secret: secret)), scopes: [scope])
    }

    private func assertRefused(_ type: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Call) {
        XCTAssertThrowsError(try body(), file: file, line: line) {
            XCTAssertEqual(($0 as? AuthdError)?.type, type, file: file, line: line)
        }
    }

    func testAKeyIsReadOnceThenServedFromTheCacheWithExactlyItsScopes() async throws {
        let key = try await makeKey(scopes: [Scope.usersRead, Scope.teamsRead])
        XCTAssertEqual(authorizer.cachedApiKeys, 0)
        let first = try call(key.secret)
        XCTAssertEqual(authorizer.cachedApiKeys, 1, "the key was cached on first use")
        let second = try call(key.secret, requiring: Scope.teamsRead)
        XCTAssertEqual(first.caller, second.caller)
        guard case .server(let identity) = second.caller else { return XCTFail("a server caller") }
        XCTAssertEqual(identity.kind, .apiKey(id: key.id))
        XCTAssertEqual(identity.scopes, [Scope.usersRead, Scope.teamsRead])
        assertRefused("general_unauthorized_scope") { try call(key.secret, requiring: Scope.usersWrite) }
        XCTAssertEqual(authorizer.cachedApiKeys, 1)
    }

    func testARevokedKeyIsRefusedAsSoonAsTheRevocationReturns() async throws {
        let key = try await makeKey()
        _ = try call(key.secret)
        XCTAssertEqual(authorizer.cachedApiKeys, 1)
        _ = try await ApiKeys(directory: directory).revoke(id: key.id, call: server)
        XCTAssertEqual(authorizer.cachedApiKeys, 0, "the commit emptied the cache before the revocation returned")
        assertRefused("general_unauthorized_scope") { try call(key.secret) }
        XCTAssertEqual(authorizer.cachedApiKeys, 0, "a revoked key is not cached")
    }

    func testExpiryIsCheckedOnEveryHit() async throws {
        let key = try await makeKey(expire: clock.now() + 3_600_000)
        _ = try call(key.secret)
        XCTAssertEqual(authorizer.cachedApiKeys, 1)
        clock.advance(seconds: 3601)
        assertRefused("project_key_expired") { try call(key.secret) }
    }

    // MARK: An event loop's front of the key cache

    private func call(_ secret: String, requiring scope: String = Scope.usersRead, through front: ApiKeyFront) throws -> Call {
        try authorizer.authorize(
            RequestContext(credential: .apiKey(secret: secret)), requiring: ScopeMask([scope]), at: clock.now(), keyFront: front)
    }

    func testAFrontServesAKeyWithItsScopesAndChecksExpiryOnEveryHit() async throws {
        let front = try XCTUnwrap(authorizer.makeApiKeyFront())
        let key = try await makeKey(scopes: [Scope.usersRead, Scope.teamsRead], expire: clock.now() + 3_600_000)
        let first = try call(key.secret, through: front)
        XCTAssertEqual(front.count, 1, "kept on first use")
        let lookups = authorizer.apiKeys.figures
        let second = try call(key.secret, requiring: Scope.teamsRead, through: front)
        XCTAssertEqual(authorizer.apiKeys.figures, lookups, "answered by the front, without the cache")
        XCTAssertEqual(second.caller, first.caller, "the front's copy is the same identity")
        assertRefused("general_unauthorized_scope") { try call(key.secret, requiring: Scope.usersWrite, through: front) }
        clock.advance(seconds: 3601)
        assertRefused("project_key_expired") { try call(key.secret, through: front) }
    }

    func testThroughAFrontARevokedKeyIsRefusedAsSoonAsTheRevocationReturns() async throws {
        let front = try XCTUnwrap(authorizer.makeApiKeyFront())
        let key = try await makeKey()
        let other = try await makeKey()
        for secret in [key.secret, other.secret] { _ = try call(secret, through: front) }
        _ = try await ApiKeys(directory: directory).revoke(id: key.id, call: server)
        assertRefused("general_unauthorized_scope") { try call(key.secret, through: front) }
        // Any key commit empties the cache and so every front: the other key is read again.
        let lookups = authorizer.apiKeys.figures
        guard case .server(let identity) = try call(other.secret, through: front).caller else { return XCTFail("a server") }
        XCTAssertEqual(identity.kind, .apiKey(id: other.id))
        XCTAssertEqual(authorizer.apiKeys.figures.misses, lookups.misses + 1)
    }

    func testAFrontDoesNotKeepAKeyLookedUpBeforeTheCacheWasEmptied() async throws {
        let cache = ApiKeyCache(capacity: 8)
        let front = ApiKeyFront(cache: cache)
        let digest = SecretToken.digest("secret-0")
        let entry = ApiKeyCache.Entry(identity: ServerIdentity(kind: .apiKey(id: "k"), scopes: [Scope.usersRead]), expire: 0)
        let before = cache.generation
        cache.invalidate(CommittedChanges(apiKeys: true))
        front.keep(digest, entry, readAt: before)
        XCTAssertNil(front.lookup(digest), "found before a key commit: perhaps stale")
        front.keep(digest, entry, readAt: cache.generation)
        XCTAssertEqual(front.lookup(digest)?.identity, entry.identity)
        cache.invalidate(CommittedChanges(userIDs: ["someone"]))
        XCTAssertNotNil(front.lookup(digest), "a commit that touches no key leaves it")
    }

    func testUnknownSecretsAreRefusedAndNotRemembered() async throws {
        _ = try await makeKey()
        for attempt in 0..<5 {
            assertRefused("general_unauthorized_scope") { try call("authd_" + SecretToken.generate() + "\(attempt)") }
        }
        XCTAssertEqual(authorizer.cachedApiKeys, 0)
    }

    func testAKeyReadBeforeAKeyCommitIsNotKept() async throws {
        let cache = ApiKeyCache(capacity: 8)
        store.observeCommits { cache.invalidate($0) }
        let key = try await makeKey()
        let digest = SecretToken.digest(key.secret)
        let entry = ApiKeyCache.Entry(identity: ServerIdentity(kind: .apiKey(id: key.id), scopes: [Scope.usersRead]), expire: 0)
        let generation = cache.generation
        // A key commit lands between the read and the insert: what was read may be stale.
        _ = try await ApiKeys(directory: directory).revoke(id: key.id, call: server)
        cache.insert(digest, entry, readAt: generation)
        XCTAssertNil(cache.lookup(digest))
        cache.insert(digest, entry, readAt: cache.generation)
        XCTAssertNotNil(cache.lookup(digest))
        // A commit that touches no key leaves the cache alone.
        try await store.write { w in try w.putRateCounter("unrelated", windowStart: 0, count: 1) }
        XCTAssertNotNil(cache.lookup(digest))
    }

    func testAFullCacheLetsItsOldestKeyGoAndAZeroSizedOneKeepsNothing() {
        let full = ApiKeyCache(capacity: 2)
        let entry = ApiKeyCache.Entry(identity: ServerIdentity(kind: .apiKey(id: "k"), scopes: []), expire: 0)
        let digests = (0..<3).map { SecretToken.digest("secret-\($0)") }
        for digest in digests { full.insert(digest, entry, readAt: full.generation) }
        XCTAssertEqual(full.count, 2)
        XCTAssertNil(full.lookup(digests[0]))
        XCTAssertNotNil(full.lookup(digests[1]))
        XCTAssertNotNil(full.lookup(digests[2]))
        let none = ApiKeyCache(capacity: 0)
        none.insert(digests[0], entry, readAt: none.generation)
        XCTAssertEqual(none.count, 0)
    }

    func testAMappedPeerHoldsItsGrantAndAnUnmappedOneIsAGuest() throws {
        let policy = PeerPolicy(
            operatorUIDs: [0], uidScopes: [1000: [Scope.usersRead]], gidScopes: [2000: [Scope.teamsWrite]])
        let authorizer = Authorizer(store: store, clock: clock, peerPolicy: policy)
        func caller(uid: UInt32, gid: UInt32, requiring scope: String) throws -> Caller {
            try authorizer.authorize(RequestContext(peer: PeerCredentials(uid: uid, gid: gid, pid: 42)), scopes: [scope]).caller
        }
        func scopes(of caller: Caller) -> Set<String>? {
            guard case .server(let identity) = caller else { return nil }
            XCTAssertEqual(identity.scopeMask, .server(identity.scopes), "the mask is the scopes'")
            return identity.scopes
        }
        XCTAssertEqual(scopes(of: try caller(uid: 0, gid: 0, requiring: Scope.keysWrite)), Scope.operatorScopes)
        XCTAssertEqual(scopes(of: try caller(uid: 1000, gid: 1, requiring: Scope.usersRead)), [Scope.usersRead])
        XCTAssertEqual(scopes(of: try caller(uid: 1, gid: 2000, requiring: Scope.teamsWrite)), [Scope.teamsWrite])
        XCTAssertEqual(
            scopes(of: try caller(uid: 1000, gid: 2000, requiring: Scope.teamsWrite)), [Scope.usersRead, Scope.teamsWrite],
            "a uid and a gid grant add up")
        XCTAssertThrowsError(try caller(uid: 1000, gid: 1, requiring: Scope.usersWrite))
        XCTAssertEqual(try caller(uid: 1, gid: 1, requiring: Scope.public), .guest)
        XCTAssertThrowsError(try caller(uid: 1, gid: 1, requiring: Scope.usersRead)) {
            XCTAssertEqual(($0 as? AuthdError)?.type, "general_unauthorized_scope")
        }
    }
}
