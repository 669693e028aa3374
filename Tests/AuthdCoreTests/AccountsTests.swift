import AuthdCore
import AuthdStore
import Foundation
import XCTest

/// A clock the test moves by hand.
final class ManualClock: WallClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Int64

    init(_ start: Int64 = 1_800_000_000_000) { current = start }

    func now() -> Int64 { lock.withLock { current } }
    func advance(seconds: Int64) { lock.withLock { current += seconds * 1000 } }
}

/// The domain against the real LMDB store and real (cheap) Argon2: a fresh store, hashing pool,
/// hand-moved clock, Accounts, Users and Authorizer for every test (sessions last an hour, three per user).
class DomainTestCase: XCTestCase {
    var folder: String!
    var store: LMDBStore!
    var pool: BlockingPool!
    var clock: ManualClock!
    var directory: Directory!
    var accounts: Accounts!
    var users: Users!
    var authorizer: Authorizer!
    /// An operator's call: root over the socket, with every operator scope.
    let server = Call(
        caller: .server(ServerIdentity(kind: .peer(PeerCredentials(uid: 0, gid: 0, pid: 1)), scopes: Scope.operatorScopes)),
        context: RequestContext())

    override func setUp() async throws {
        folder = "/tmp/authd-core-test-\(UUID().uuidString.prefix(8))"
        store = try LMDBStore(directory: folder)
        pool = BlockingPool(threads: 2)
        clock = ManualClock()
        directory = try Directory(
            store: store, hasher: PasswordHasher(parameters: .testing), hashingPool: pool, clock: clock,
            sessionPolicy: SessionPolicy(durationSeconds: 3600, limit: 3))
        accounts = Accounts(directory: directory)
        users = Users(directory: directory)
        authorizer = Authorizer(store: store, clock: clock)
    }

    override func tearDown() async throws {
        pool?.shutdown()
        store?.close()
        try? FileManager.default.removeItem(atPath: folder)
    }
}

final class AccountsTests: DomainTestCase {
    private let guest = Call(caller: .guest, context: RequestContext())

    /// `Account/Get` as the server runs it: authorise, then call.
    private func get(_ secret: String) throws -> UserRecord {
        var user: UserRecord?
        try accounts.get(call: authorizer.authorize(RequestContext(credential: .session(secret: secret)), scopes: [Scope.account])) {
            user = $0.user
        }
        return try XCTUnwrap(user)
    }

    private func signIn(_ email: String, _ password: String = "password-1") async throws -> SessionView {
        try await accounts.createEmailPasswordSession(email: email, password: password, call: guest)
    }

    private func assertError<T>(_ type: String, file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> T) async {
        do {
            _ = try await body()
            XCTFail("expected \(type)", file: file, line: line)
        } catch let error as AuthdError {
            XCTAssertEqual(error.type, type, file: file, line: line)
        } catch {
            XCTFail("expected \(type), got \(error)", file: file, line: line)
        }
    }

    func testCreateStoresAnArgon2HashNeverThePassword() async throws {
        let user = try await accounts.create(
            userID: "ada", email: "Ada@Example.com", password: "password-1", name: "Ada", call: guest)
        XCTAssertEqual(user.email, "ada@example.com")
        let stored = try XCTUnwrap(try store.read { try $0.user(id: "ada") })
        XCTAssertTrue(stored.passwordHash.hasPrefix("$argon2id$"))
        XCTAssertFalse(stored.passwordHash.contains("password-1"))
        XCTAssertEqual(stored.hashAlgorithm, "argon2")
        XCTAssertEqual(stored.passwordUpdate, clock.now())
        let changes = try store.read { try $0.changes(after: 0, limit: 10) }
        XCTAssertEqual(changes.map(\.event), ["users.ada.create"])
        XCTAssertEqual(changes.first?.auditEvent, "user.create")
        XCTAssertEqual(changes.first?.resource, "user/ada")
        XCTAssertEqual(changes.first?.actorType, "guest")
    }

    /// The daemon lets a sign-in's session write wait for the write of a hash about to end
    /// (`commit_wait_us`): here the pool's other thread holds a call past the calls' mean time,
    /// so its end is due at once, and the sign-in's write waits for it (a millisecond, as the
    /// call never ends while held). A sign-up's write, or a sign-in with nothing hashing, does not.
    func testASignInsSessionWriteWaitsForAHashAboutToEndAndNothingElseDoes() async throws {
        let pool = self.pool!
        store.letLoneWritesWait(upTo: .milliseconds(100)) { pool.nextEndExpected() }
        _ = try await accounts.create(userID: "u", email: "u@example.com", password: "password-1", name: nil, call: guest)
        _ = try await signIn("u@example.com")
        XCTAssertEqual(try store.statistics().commitsWaitedForCompany, 0, "nothing else was hashing")
        let (gate, held) = try await holdOneThread(of: pool)
        _ = try await signIn("u@example.com")
        XCTAssertEqual(try store.statistics().commitsWaitedForCompany, 1, "the sign-in's write waited for the held call's")
        _ = try await accounts.create(userID: "v", email: "v@example.com", password: "password-1", name: nil, call: guest)
        XCTAssertEqual(try store.statistics().commitsWaitedForCompany, 1, "a sign-up's write commits at once")
        gate.signal()
        try await held.value
    }

    func testSessionSecretsAreStoredOnlyAsHashes() async throws {
        _ = try await accounts.create(userID: "u", email: "u@example.com", password: "password-1", name: nil, call: guest)
        let session = try await signIn("u@example.com")
        let stored = try XCTUnwrap(try store.read { try $0.session(id: session.record.id) })
        XCTAssertEqual(stored.secretHash, SecretToken.hash(session.secret))
        XCTAssertFalse(stored.secretHash.isEmpty)
        XCTAssertEqual(try get(session.secret).id, "u")
        let changes = try store.read { try $0.changes(after: 0, limit: 10) }
        XCTAssertEqual(changes.last?.event, "users.u.sessions.\(session.record.id).create")
    }

    func testSessionsExpire() async throws {
        _ = try await accounts.create(userID: "u", email: "u@example.com", password: "password-1", name: nil, call: guest)
        let session = try await signIn("u@example.com")
        clock.advance(seconds: 3600)
        XCTAssertEqual(try get(session.secret).id, "u", "valid up to and including its expiry")
        clock.advance(seconds: 1)
        await assertError("general_unauthorized_scope") { try self.get(session.secret) }
    }

    func testAccessedAtMovesAtMostOnceADay() async throws {
        _ = try await accounts.create(userID: "u", email: "u@example.com", password: "password-1", name: nil, call: guest)
        let created = clock.now()
        let session = try await signIn("u@example.com")
        clock.advance(seconds: 3000)
        _ = try get(session.secret)
        try await store.write { _ in }  // the background write, if any, is ahead of this one
        XCTAssertEqual(try store.read { try $0.user(id: "u")?.accessedAt }, created, "not within a day")
        clock.advance(seconds: 86_400)
        let later = try await signIn("u@example.com")  // sessions here last an hour
        _ = try get(later.secret)
        try await store.write { _ in }
        XCTAssertEqual(try store.read { try $0.user(id: "u")?.accessedAt }, clock.now())
    }

    func testBlockedUsersCannotSignInOrUseSessions() async throws {
        _ = try await accounts.create(userID: "u", email: "u@example.com", password: "password-1", name: nil, call: guest)
        let session = try await signIn("u@example.com")
        try await store.write { w in
            guard var user = try w.user(id: "u") else { return }
            user.status = false
            try w.updateUser(user)
        }
        await assertError("user_blocked") { try await self.signIn("u@example.com") }
        await assertError("user_blocked") { try self.get(session.secret) }
        await assertError("user_invalid_credentials") { try await self.signIn("u@example.com", "wrong-password") }
    }

    func testSessionLimitDeletesTheOldestInTheSameWrite() async throws {
        _ = try await accounts.create(userID: "u", email: "u@example.com", password: "password-1", name: nil, call: guest)
        var sessions: [SessionView] = []
        for _ in 0..<5 {
            clock.advance(seconds: 1)
            sessions.append(try await signIn("u@example.com"))
        }
        let remaining = try store.read { try $0.sessions(userID: "u").map(\.id) }
        XCTAssertEqual(remaining, sessions.suffix(3).map(\.record.id))
        for evicted in sessions.prefix(2) {
            await assertError("general_unauthorized_scope") { try self.get(evicted.secret) }
        }
        let deletions = try store.read { try $0.changes(after: 0, limit: 100) }.filter { $0.auditEvent == "session.delete" }
        XCTAssertEqual(deletions.map(\.event), sessions.prefix(2).map { "users.u.sessions.\($0.record.id).delete" })
        XCTAssertEqual(Set(deletions.map(\.resource)), ["user/u"])
        XCTAssertEqual(Set(deletions.map(\.userID)), ["u"])
    }

    func testAUserWithoutAPasswordCannotSignIn() async throws {
        try await store.write { w in
            var user = UserRecord(id: "anon", createdAt: 1)
            user.email = "anon@example.com"
            try w.insertUser(user)
        }
        await assertError("user_invalid_credentials") { try await self.signIn("anon@example.com") }
    }

    func testJWTsAreRefusedWhenNoIssuerIsConfigured() async throws {
        await assertError("user_jwt_invalid") {
            try self.authorizer.authorize(RequestContext(credential: .jwt("a.b.c")), scopes: [Scope.account])
        }
    }
}
