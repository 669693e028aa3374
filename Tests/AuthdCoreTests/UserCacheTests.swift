import AuthdStore
import XCTest

@testable import AuthdCore

/// The user cache behind `Users/Get`: a hit must never be staler than the store.
final class UserCacheTests: DomainTestCase {
    private func makeUser() async throws -> String {
        try await accounts.create(userID: "u", email: "u@example.com", password: "password-1", name: "Before", call: server).id
    }

    func testALookupIsCachedAndReflectsEveryAcknowledgedChange() async throws {
        let id = try await makeUser()
        let first = try users.lookUp(userID: id, call: server)
        XCTAssertEqual(first.user.name, "Before")
        XCTAssertEqual(directory.cachedUsers, 1, "the user was cached on first use")
        XCTAssertTrue(try users.lookUp(userID: id, call: server) === first, "the second lookup is a hit")

        _ = try await users.updateName(userID: id, name: "After", call: server)
        XCTAssertEqual(directory.cachedUsers, 0, "the commit dropped the user before the write returned")
        XCTAssertEqual(try users.lookUp(userID: id, call: server).user.name, "After")

        // A change that reaches the user only through a session (a sign-in) drops it too.
        _ = try await accounts.createEmailPasswordSession(email: "u@example.com", password: "password-1", call: server)
        XCTAssertEqual(directory.cachedUsers, 0)
    }

    func testADeletedUserIsNotFoundAtOnceAndUnknownUsersAreNotRemembered() async throws {
        let id = try await makeUser()
        _ = try users.lookUp(userID: id, call: server)
        try await users.delete(userID: id, call: server)
        XCTAssertThrowsError(try users.lookUp(userID: id, call: server)) {
            XCTAssertEqual(($0 as? AuthdError)?.type, "user_not_found")
        }
        XCTAssertThrowsError(try users.lookUp(userID: "nobody", call: server))
        XCTAssertEqual(directory.cachedUsers, 0)
    }

    func testAnEntryReadBeforeACommitIsNotKept() async throws {
        let id = try await makeUser()
        let cache = UserCache(capacity: 8)
        store.observeCommits { cache.invalidate($0) }
        let stale = CachedUser(try XCTUnwrap(try store.read { try $0.user(id: id) }))
        let generation = cache.generation
        _ = try await users.updateName(userID: id, name: "After", call: server)
        cache.insert(stale, readAt: generation)
        XCTAssertNil(cache.lookup(id), "read before the commit, so possibly stale")
        cache.insert(stale, readAt: cache.generation)
        XCTAssertNotNil(cache.lookup(id))
    }

    func testTheCacheStaysWithinItsCapacityOldestFirst() {
        let cache = UserCache(capacity: 3)
        for index in 0..<5 {
            cache.insert(CachedUser(UserRecord(id: "u\(index)", createdAt: 0)), readAt: cache.generation)
        }
        XCTAssertEqual(cache.count, 3)
        XCTAssertNil(cache.lookup("u0"))
        XCTAssertNil(cache.lookup("u1"))
        XCTAssertNotNil(cache.lookup("u4"))
        let none = UserCache(capacity: 0)
        none.insert(CachedUser(UserRecord(id: "u", createdAt: 0)), readAt: none.generation)
        XCTAssertEqual(none.count, 0)
    }

    /// The figures an operator sizes `user_cache_size` by: a lookup hits or misses; a full cache
    /// evicting its oldest for a newer user counts an eviction; a commit's drop does not.
    func testTheFiguresCountHitsMissesAndEvictions() async throws {
        let id = try await makeUser()
        let start = directory.userCacheFigures
        _ = try users.lookUp(userID: id, call: server)
        _ = try users.lookUp(userID: id, call: server)
        XCTAssertThrowsError(try users.lookUp(userID: "nobody", call: server))
        var figures = directory.userCacheFigures
        XCTAssertEqual(figures.hits - start.hits, 1)
        XCTAssertEqual(figures.misses - start.misses, 2, "the first lookup and the unknown user read the store")
        _ = try await users.updateName(userID: id, name: "After", call: server)
        figures = directory.userCacheFigures
        XCTAssertEqual(figures.evictions, start.evictions, "dropped by a commit, not evicted")

        let cache = UserCache(capacity: 2)
        for index in 0..<5 {
            XCTAssertNil(cache.lookup("u\(index)"))
            cache.insert(CachedUser(UserRecord(id: "u\(index)", createdAt: 0)), readAt: cache.generation)
        }
        XCTAssertNotNil(cache.lookup("u4"))
        XCTAssertEqual(cache.figures, CacheFigures(hits: 1, misses: 5, evictions: 3))
    }

    func testEachKindOfCallerHasItsOwnEncodingMadeOnce() {
        let entry = CachedUser(UserRecord(id: "u", createdAt: 0))
        let impersonator = Call(caller: .user(entry.user, session: SessionRecord(id: "s", userID: "u", createdAt: 0, expire: 0, provider: "", secretHash: [])), context: RequestContext())
        var made = 0
        XCTAssertEqual(entry.withEncoded(for: server, orMake: { made += 1; return [1] }) { $0 }, [1])
        XCTAssertEqual(entry.withEncoded(for: server, orMake: { made += 1; return [2] }) { $0 }, [1])
        XCTAssertEqual(entry.withEncoded(for: impersonator, orMake: { made += 1; return [3] }) { $0 }, [3], "a user's answer is not the server's")
        XCTAssertEqual(entry.withEncoded(for: impersonator, orMake: { made += 1; return [4] }) { $0 }, [3])
        XCTAssertEqual(made, 2)
    }
}
