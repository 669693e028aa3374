import AuthdStore
import Foundation
import Synchronization
import XCTest

@testable import AuthdCore

/// The session cache in front of the store: a hit must never be staler than the store.
final class SessionCacheTests: DomainTestCase {
    private let guest = Call(caller: .guest, context: RequestContext())

    private func signedInUser() async throws -> String {
        _ = try await accounts.create(userID: "u", email: "u@example.com", password: "password-1", name: "Before", call: guest)
        return try await accounts.createEmailPasswordSession(email: "u@example.com", password: "password-1", call: guest).secret
    }

    private func caller(_ secret: String) throws -> Caller {
        try authorizer.authorize(RequestContext(credential: .session(secret: secret)), scopes: [Scope.public]).caller
    }

    private func changeUser(_ change: @escaping @Sendable (inout UserRecord) -> Void) async throws {
        try await store.write { w in
            guard var user = try w.user(id: "u") else { return }
            change(&user)
            try w.updateUser(user)
        }
    }

    func testAHitReflectsEveryAcknowledgedChangeOfTheUser() async throws {
        let secret = try await signedInUser()
        guard case .user(let first) = try caller(secret) else { return XCTFail("signed in") }
        XCTAssertEqual(first.user.name, "Before")
        XCTAssertEqual(authorizer.cachedSessions, 1, "the session was cached on first use")
        guard case .user = try caller(secret) else { return XCTFail("still signed in") }

        try await changeUser { $0.name = "After" }
        XCTAssertEqual(authorizer.cachedSessions, 0, "the commit dropped the user's entries before the write returned")
        guard case .user(let second) = try caller(secret) else { return XCTFail("still signed in") }
        XCTAssertEqual(second.user.name, "After")

        try await changeUser { $0.status = false }
        XCTAssertThrowsError(try caller(secret)) { XCTAssertEqual(($0 as? AuthdError)?.type, "user_blocked") }
    }

    /// A held session's user leaves out the password fields (the cache holds one copy per
    /// session), which the store still has.
    func testAHeldSessionsUserHasNoPasswordFields() async throws {
        let secret = try await signedInUser()
        guard case .user(let signedIn) = try caller(secret) else { return XCTFail("signed in") }
        let stored = try XCTUnwrap(try store.read { try $0.user(id: "u") })
        XCTAssertFalse(stored.passwordHash.isEmpty)
        XCTAssertEqual(signedIn.user.passwordHash, "")
        XCTAssertEqual(signedIn.user.passwordHistory, [])
        var lean = stored
        lean.removePasswordFields()
        XCTAssertEqual(signedIn.user, lean)
    }

    func testADeletedSessionIsAGuestAtOnce() async throws {
        let secret = try await signedInUser()
        guard case .user(let signedIn) = try caller(secret) else { return XCTFail("signed in") }
        let sessionID = signedIn.session.id
        _ = try await store.write { w in try w.deleteSession(id: sessionID) }
        XCTAssertEqual(try caller(secret), .guest)
    }

    func testExpiryIsCheckedOnEveryHit() async throws {
        let secret = try await signedInUser()
        guard case .user = try caller(secret) else { return XCTFail("signed in") }
        clock.advance(seconds: 3601)
        XCTAssertEqual(try caller(secret), .guest, "a cached session past its expiry is a guest")
    }

    func testAnEntryReadBeforeACommitIsNotKept() {
        let cache = SessionCache(capacity: 10)
        let digest = SecretToken.digest("secret")
        let entry = SessionCache.Entry(
            user: UserRecord(id: "u", createdAt: 0),
            session: SessionRecord(id: "s", userID: "u", createdAt: 0, expire: 1, provider: "email", secretHash: digest.bytes))
        let before = cache.generation(for: digest)
        cache.invalidate(CommittedChanges(userIDs: ["someone else"]))
        cache.insert(digest, entry, readAt: before)
        XCTAssertNil(cache.lookup(digest), "a commit happened between the snapshot and the insert")
        cache.insert(digest, entry, readAt: cache.generation(for: digest))
        XCTAssertEqual(cache.lookup(digest)?.session.id, "s")
        cache.invalidate(CommittedChanges(apiKeys: true))
        XCTAssertNotNil(cache.lookup(digest), "API key changes leave sessions alone")
        cache.invalidate(CommittedChanges(userIDs: ["u"]))
        XCTAssertNil(cache.lookup(digest))
    }

    /// Puts a session of `userID` straight into `cache`, as a miss read from the store would.
    private func cacheSession(_ sessionID: String, of userID: String, secret: String, in cache: SessionCache) -> SecretDigest {
        let digest = SecretToken.digest(secret)
        cache.insert(
            digest,
            SessionCache.Entry(
                user: UserRecord(id: userID, createdAt: 0),
                session: SessionRecord(id: sessionID, userID: userID, createdAt: 0, expire: 1, provider: "email", secretHash: digest.bytes)),
            readAt: cache.generation(for: digest))
        return digest
    }

    func testInvalidationReachesEveryShard() {
        let cache = SessionCache(capacity: 100_000)
        var digests: [SecretDigest] = []
        for i in 0..<64 {
            digests.append(cacheSession("s\(i)", of: i % 2 == 0 ? "even" : "odd", secret: "secret-\(i)", in: cache))
        }
        XCTAssertEqual(cache.count, 64)
        cache.invalidate(CommittedChanges(userIDs: ["even"]))
        XCTAssertEqual(cache.count, 32)
        for (i, digest) in digests.enumerated() {
            XCTAssertEqual(cache.lookup(digest) == nil, i % 2 == 0, "secret-\(i)")
        }
    }

    func testACommitNamingMoreUsersThanAreCachedDropsOnlyTheirs() {
        let cache = SessionCache(capacity: 100_000)
        let cachedUsers = ["a", "b", "c"]
        var digests: [String: SecretDigest] = [:]
        for userID in cachedUsers {
            digests[userID] = cacheSession("s-\(userID)", of: userID, secret: "secret-\(userID)", in: cache)
        }
        // 200 users named, one of them cached: the cache looks up its own three users instead.
        let named = Set((0..<199).map { "other-\($0)" } + ["b"])
        cache.invalidate(CommittedChanges(userIDs: named))
        XCTAssertEqual(cache.count, 2)
        XCTAssertNil(cache.lookup(digests["b"]!))
        XCTAssertNotNil(cache.lookup(digests["a"]!))
        XCTAssertNotNil(cache.lookup(digests["c"]!))
        // And a commit naming fewer users than are cached.
        cache.invalidate(CommittedChanges(userIDs: ["c"]))
        XCTAssertEqual(cache.count, 1)
        XCTAssertNotNil(cache.lookup(digests["a"]!))
    }

    func testTheCacheStaysWithinItsCapacity() {
        let cache = SessionCache(capacity: 4)
        func insert(_ i: Int) -> Bool {
            let digest = SecretToken.digest("secret-\(i)")
            return cache.insert(
                digest,
                SessionCache.Entry(
                    user: UserRecord(id: "u\(i)", createdAt: 0),
                    session: SessionRecord(id: "s\(i)", userID: "u\(i)", createdAt: 0, expire: 1, provider: "email", secretHash: digest.bytes)),
                readAt: cache.generation(for: digest))
        }
        for i in 0..<4 { XCTAssertTrue(insert(i), "room: kept at once") }
        for i in 4..<10 {
            // Full: a new session is kept on its second miss, in the place of the oldest.
            XCTAssertFalse(insert(i), "first miss of \(i)")
            XCTAssertEqual(cache.count, 4)
            XCTAssertNil(cache.lookup(SecretToken.digest("secret-\(i)")))
            XCTAssertTrue(insert(i), "second miss of \(i)")
            XCTAssertEqual(cache.count, 4)
        }
        XCTAssertNotNil(cache.lookup(SecretToken.digest("secret-9")), "the newest entry is kept")
        XCTAssertEqual((0..<10).filter { cache.lookup(SecretToken.digest("secret-\($0)")) != nil }, [6, 7, 8, 9],
            "the oldest go first")
        XCTAssertTrue(insert(9), "a session held is replaced whatever the room")
        XCTAssertEqual(cache.count, 4)
        XCTAssertEqual(SessionCache(capacity: 0).count, 0)
    }

    /// More sessions in use than places, checked in turn over and over (what a scan over many
    /// sessions does): a cache that let every miss in would drop each session just before its
    /// turn came again and never hit; let in on their second miss, most stay.
    func testACacheTooSmallForTheSessionsInUseStillHitsMostOfThem() {
        let cache = SessionCache(capacity: 1000)
        let digests = (0..<1100).map { SecretToken.digest("secret-\($0)") }
        var hits = 0
        var kept = 0
        for round in 0..<6 {
            hits = 0
            kept = 0
            for (i, digest) in digests.enumerated() {
                if cache.lookup(digest) != nil {
                    hits += 1
                } else if cache.insert(digest, entry(i, digest), readAt: cache.generation(for: digest)) {
                    kept += 1
                }
            }
            XCTAssertLessThanOrEqual(cache.count, 1000, "round \(round)")
        }
        XCTAssertGreaterThan(hits, 800, "hits in the last round, of 1,100 checks (\(kept) sessions let in)")
        XCTAssertLessThan(kept, 300, "sessions let in during the last round")
    }

    private func entry(_ i: Int, _ digest: SecretDigest) -> SessionCache.Entry {
        SessionCache.Entry(
            user: UserRecord(id: "u\(i % 1000)", createdAt: 0),
            session: SessionRecord(id: "s\(i)", userID: "u\(i % 1000)", createdAt: 0, expire: 1, provider: "email", secretHash: digest.bytes))
    }

    func testAWorkingSetOfTheCachesSizeStaysCached() {
        // 16 shards; each gets its share of the sessions give or take a few dozen.
        let cache = SessionCache(capacity: 100_000)
        let digests = (0..<100_000).map { SecretToken.digest("secret-\($0)") }
        for (i, digest) in digests.enumerated() { cache.insert(digest, entry(i, digest), readAt: cache.generation(for: digest)) }
        XCTAssertGreaterThan(cache.count, 98_000, "a full shard drops its oldest entry, not all of them")
        XCTAssertLessThanOrEqual(cache.count, 100_000)
        // Dropped entries leave their user's index too: invalidating every user empties the cache.
        cache.invalidate(CommittedChanges(userIDs: Set((0..<1000).map { "u\($0)" })))
        XCTAssertEqual(cache.count, 0)
    }

    func testSessionsSignedInAgainAndAgainDoNotGrowTheCache() {
        // Each round invalidates and re-adds the same sessions; what the cache remembers of the
        // order stays bounded and eviction still finds the oldest.
        let cache = SessionCache(capacity: 100)
        let digests = (0..<50).map { SecretToken.digest("secret-\($0)") }
        for _ in 0..<100 {
            for (i, digest) in digests.enumerated() { cache.insert(digest, entry(i, digest), readAt: cache.generation(for: digest)) }
            cache.invalidate(CommittedChanges(userIDs: Set((0..<50).map { "u\($0)" })))
        }
        XCTAssertEqual(cache.count, 0)
        for i in 0..<150 {
            // Past 100, each is let in on its second miss.
            let digest = SecretToken.digest("other-\(i)")
            for _ in 0..<(i < 100 ? 1 : 2) { cache.insert(digest, entry(i, digest), readAt: cache.generation(for: digest)) }
        }
        XCTAssertEqual(cache.count, 100)
        XCTAssertNil(cache.lookup(SecretToken.digest("other-49")))
        XCTAssertNotNil(cache.lookup(SecretToken.digest("other-50")))
    }

    func testAMemoIsMadeOnceAndDiesWithItsEntry() async throws {
        let secret = try await signedInUser()
        guard case .user(let first) = try caller(secret) else { return XCTFail("signed in") }
        let made = Mutex(0)
        let make = { () -> [UInt8] in
            made.withLock { $0 += 1 }
            return Array(first.user.name.utf8)
        }
        XCTAssertEqual(first.encodedUser.withValue(orMake: make) { $0 }, Array("Before".utf8))
        guard case .user(let again) = try caller(secret) else { return XCTFail("signed in") }
        XCTAssertEqual(again.encodedUser.withValue(orMake: make) { $0 }, Array("Before".utf8))
        XCTAssertEqual(made.withLock { $0 }, 1, "the second call found the first one's encoding")

        try await changeUser { $0.name = "After" }
        guard case .user(let changed) = try caller(secret) else { return XCTFail("signed in") }
        XCTAssertEqual(changed.encodedUser.withValue(orMake: { Array(changed.user.name.utf8) }) { $0 }, Array("After".utf8))
    }

    // MARK: An event loop's front of the cache

    private func caller(_ secret: String, through front: SessionCacheFront) throws -> Caller {
        try authorizer.authorize(
            RequestContext(credential: .session(secret: secret)), requiring: ScopeMask([Scope.public]), at: clock.now(), front: front
        ).caller
    }

    func testAFrontHitReflectsEveryAcknowledgedChangeOfTheUser() async throws {
        let secret = try await signedInUser()
        let front = try XCTUnwrap(authorizer.makeSessionFront(slots: 16))
        guard case .user(let first) = try caller(secret, through: front) else { return XCTFail("signed in") }
        XCTAssertEqual(front.count, 0, "a session is let in on its second miss")
        guard case .user(let again) = try caller(secret, through: front) else { return XCTFail("still signed in") }
        XCTAssertEqual(front.count, 1, "the cache's entry, let in")
        XCTAssertTrue(again === first)
        guard case .user(let third) = try caller(secret, through: front) else { return XCTFail("still signed in") }
        XCTAssertTrue(third.isLoopCopy(of: first), "the front's own copy of the cache's entry")

        try await changeUser { $0.name = "After" }
        XCTAssertTrue(first.isDropped, "the commit marked the entry before the write returned")
        guard case .user(let second) = try caller(secret, through: front) else { return XCTFail("still signed in") }
        XCTAssertEqual(second.user.name, "After")
        XCTAssertFalse(second === first)

        try await changeUser { $0.status = false }
        XCTAssertThrowsError(try caller(secret, through: front)) { XCTAssertEqual(($0 as? AuthdError)?.type, "user_blocked") }
    }

    func testThroughAFrontADeletedSessionIsAGuestAtOnceAndExpiryIsCheckedOnEveryHit() async throws {
        let secret = try await signedInUser()
        let front = try XCTUnwrap(authorizer.makeSessionFront())
        for _ in 0..<2 { guard case .user = try caller(secret, through: front) else { return XCTFail("signed in") } }
        XCTAssertEqual(front.count, 1)
        clock.advance(seconds: 3601)
        XCTAssertEqual(try caller(secret, through: front), .guest, "a session past its expiry is a guest from the front too")
        clock.advance(seconds: -3601)
        guard case .user(let signedIn) = try caller(secret, through: front) else { return XCTFail("signed in") }
        let sessionID = signedIn.session.id
        _ = try await store.write { w in try w.deleteSession(id: sessionID) }
        XCTAssertEqual(try caller(secret, through: front), .guest)
        XCTAssertEqual(front.count, 0, "the dropped entry was let go")
    }

    func testAFrontLetsGoOfWhatTheCacheDropsOrReplaces() {
        let cache = SessionCache(capacity: 1)
        let front = SessionCacheFront(cache: cache, slotCount: 8)
        let first = SecretToken.digest("secret-0")
        let firstEntry = entry(0, first)
        XCTAssertTrue(cache.insert(first, firstEntry, readAt: cache.generation(for: first)))
        front.offer(first, firstEntry)
        XCTAssertNil(front.lookup(first), "not on its first miss")
        front.offer(first, firstEntry)
        XCTAssertTrue(front.lookup(first)?.isLoopCopy(of: firstEntry) == true, "on its second miss in a row")

        // Room made for another session (on its second miss, the cache being full): the first
        // is no longer in the cache, so not in front.
        let second = SecretToken.digest("secret-1")
        XCTAssertFalse(cache.insert(second, entry(1, second), readAt: cache.generation(for: second)))
        XCTAssertTrue(front.lookup(first)?.isLoopCopy(of: firstEntry) == true, "a session not let in leaves the others alone")
        XCTAssertTrue(cache.insert(second, entry(1, second), readAt: cache.generation(for: second)))
        XCTAssertNil(cache.lookup(first))
        XCTAssertNil(front.lookup(first), "an entry the cache evicted could miss a later change of its user")

        // The same session read again replaces the cache's entry: the old one is dropped.
        let reread = entry(1, second)
        let held = cache.lookup(second)!
        for _ in 0..<2 { front.offer(second, held) }
        XCTAssertTrue(front.lookup(second)?.isLoopCopy(of: held) == true)
        XCTAssertTrue(cache.insert(second, reread, readAt: cache.generation(for: second)))
        XCTAssertTrue(held.isDropped)
        XCTAssertNil(front.lookup(second))

        // An entry read before a commit is not kept, so a caller must not keep it in front.
        let third = SecretToken.digest("secret-2")
        let before = cache.generation(for: third)
        cache.invalidate(CommittedChanges(userIDs: ["someone else"]))
        XCTAssertFalse(cache.insert(third, entry(2, third), readAt: before))
    }

    /// A front holds its own copy of each entry, so that the count of the object a call holds is
    /// moved on one core only; the copy is the entry in all but identity, and dropped with it.
    func testAFrontsCopyOfAnEntrySharesItsAnswerAndIsDroppedWithIt() throws {
        let cache = SessionCache(capacity: 4)
        let front = SessionCacheFront(cache: cache, slotCount: 8)
        let digest = SecretToken.digest("secret-0")
        let held = entry(0, digest)
        XCTAssertEqual(held.encodedUser.withValue(orMake: { [1, 2, 3] }) { $0 }, [1, 2, 3])
        XCTAssertTrue(cache.insert(digest, held, readAt: cache.generation(for: digest)))
        for _ in 0..<2 { front.offer(digest, held) }

        let copy = try XCTUnwrap(front.lookup(digest))
        XCTAssertFalse(copy === held)
        XCTAssertTrue(copy.isLoopCopy(of: held))
        XCTAssertEqual(copy, held, "the same user and session")
        let answer = copy.encodedUser.withValue(orMake: { XCTFail("the answer made again"); return [] }) { $0 }
        XCTAssertEqual(answer, [1, 2, 3], "the entry's encoded answer, shared")

        cache.invalidate(CommittedChanges(userIDs: [held.user.id]))
        XCTAssertTrue(held.isDropped)
        XCTAssertTrue(copy.isDropped, "dropped with the cache's entry")
        XCTAssertNil(front.lookup(digest))
    }

    func testAFrontLetsInASessionOnlyOnItsSecondMissInARowAtItsSlot() {
        let cache = SessionCache(capacity: 100)
        let front = SessionCacheFront(cache: cache, slotCount: 1)
        let digests = (0..<2).map { SecretToken.digest("secret-\($0)") }
        let entries = digests.enumerated().map { entry($0.offset, $0.element) }
        // Two sessions missing in turn at the one slot: neither is let in, nothing churns.
        for _ in 0..<3 {
            for (digest, entry) in zip(digests, entries) { front.offer(digest, entry) }
        }
        XCTAssertEqual(front.count, 0)
        front.offer(digests[1], entries[1])
        XCTAssertTrue(front.lookup(digests[1])?.isLoopCopy(of: entries[1]) == true)
        XCTAssertNil(front.lookup(digests[0]))
    }

    /// The figures an operator sizes `session_cache_size` by: a check the cache or a front
    /// answered is a hit, one that reads the store a miss; a full cache giving an entry's place
    /// to a newer session counts an eviction, a commit dropping entries does not.
    func testTheFiguresCountHitsMissesAndEvictions() {
        let cache = SessionCache(capacity: 1)
        let front = SessionCacheFront(cache: cache, slotCount: 8)
        let first = SecretToken.digest("secret-0")
        let second = SecretToken.digest("secret-1")
        XCTAssertNil(cache.lookup(first))
        XCTAssertTrue(cache.insert(first, entry(0, first), readAt: cache.generation(for: first)))
        let held = cache.lookup(first)!
        for _ in 0..<2 { front.offer(first, held) }
        XCTAssertNotNil(front.lookup(first))
        XCTAssertNotNil(front.lookup(first))
        XCTAssertNil(front.lookup(second), "a front's miss goes on to the cache, which counts it there")
        XCTAssertEqual(cache.figures, CacheFigures(hits: 3, misses: 1, evictions: 0))

        XCTAssertFalse(cache.insert(second, entry(1, second), readAt: cache.generation(for: second)))
        XCTAssertEqual(cache.figures.evictions, 0, "a session not let in evicts nothing")
        XCTAssertTrue(cache.insert(second, entry(1, second), readAt: cache.generation(for: second)))
        XCTAssertEqual(cache.figures.evictions, 1)
        cache.invalidate(CommittedChanges(userIDs: ["u1"]))
        XCTAssertEqual(cache.count, 0)
        XCTAssertEqual(cache.figures.evictions, 1, "dropped by a commit, not evicted")
    }

    /// Through the authorizer: a session's first check reads the store, the next ones hit; with
    /// the cache off every check is a miss.
    func testSessionChecksCountAsHitsOrMisses() async throws {
        let secret = try await signedInUser()
        let start = authorizer.sessionCacheFigures
        for _ in 0..<3 { _ = try caller(secret) }
        let figures = authorizer.sessionCacheFigures
        XCTAssertEqual(figures.misses - start.misses, 1)
        XCTAssertEqual(figures.hits - start.hits, 2)

        let uncached = Authorizer(store: store, sessionCacheSize: 0)
        for _ in 0..<3 {
            _ = try uncached.authorize(RequestContext(credential: .session(secret: secret)), scopes: [Scope.public])
        }
        XCTAssertEqual(uncached.sessionCacheFigures, CacheFigures(hits: 0, misses: 3, evictions: 0))
    }

    func testAFrontIsMadeOnlyWhenTheCacheIsOn() {
        XCTAssertNil(Authorizer(store: store, sessionCacheSize: 0).makeSessionFront())
        XCTAssertNotNil(authorizer.makeSessionFront())
    }

    func testDigestBytesAreTheSHA256OfTheSecret() {
        XCTAssertEqual(
            SecretToken.hexEncode(SecretToken.digest("abc").bytes),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SecretToken.randomBytes(48).count, 48)
        XCTAssertNotEqual(SecretToken.randomBytes(32), SecretToken.randomBytes(32))
    }
}
