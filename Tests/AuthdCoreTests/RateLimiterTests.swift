import AuthdCore
import AuthdStore
import Foundation
import XCTest

/// Rate limits against the real store, with a clock the test moves.
final class RateLimiterTests: XCTestCase {
    var directory: String!
    var store: LMDBStore!
    var pool: BlockingPool!
    var clock: ManualClock!
    var accounts: Accounts!
    var users: Users!

    override func setUp() async throws {
        directory = "/tmp/authd-rate-test-\(UUID().uuidString.prefix(8))"
        store = try LMDBStore(directory: directory)
        pool = BlockingPool(threads: 2)
        clock = ManualClock(1_800_000_000_000)  // on a window boundary: 1_800_000_000 % 3600 == 0
        try await reopen()
    }

    func reopen() async throws {
        let d = try Directory(store: store, hasher: PasswordHasher(parameters: .testing), hashingPool: pool, clock: clock)
        accounts = Accounts(directory: d)
        users = Users(directory: d)
    }

    override func tearDown() async throws {
        pool?.shutdown()
        store?.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    let guest = Call(caller: .guest, context: RequestContext(client: ClientInfo(ip: "203.0.113.1")))

    private func expect(_ password: String, _ outcome: String, _ message: String = "", line: UInt = #line) async {
        let result = await login(password)
        XCTAssertEqual(result, outcome, message, line: line)
    }

    private func login(_ password: String) async -> String {
        await Self.login(accounts, password, guest)
    }

    static func login(_ accounts: Accounts, _ password: String, _ call: Call) async -> String {
        do {
            _ = try await accounts.createEmailPasswordSession(email: "r@example.com", password: password, call: call)
            return "ok"
        } catch let error as AuthdError {
            return error.type
        } catch {
            return "\(error)"
        }
    }

    /// Runs `body` and checks that it throws an `AuthdError` of `type`.
    private func expectRefusal(
        _ type: String, _ message: String, line: UInt = #line, _ body: () async throws -> Void
    ) async {
        do {
            try await body()
            XCTFail(message, line: line)
        } catch let error as AuthdError {
            XCTAssertEqual(error.type, type, line: line)
        } catch {
            XCTFail("\(error)", line: line)
        }
    }

    func testFailuresAreLimitedSuccessResetsAndTheWindowRolls() async throws {
        _ = try await accounts.create(userID: "r", email: "r@example.com", password: "password-1", name: nil, call: guest)
        for _ in 0..<20 { await expect("password-1", "ok", "successes reset the counter") }
        for _ in 0..<10 { await expect("wrong-password", "user_invalid_credentials") }
        await expect("wrong-password", "general_rate_limit_exceeded")
        await expect("password-1", "general_rate_limit_exceeded", "even the right password waits for the window")

        // A restart (a new limiter on the same store) keeps the count.
        try await reopen()
        await expect("password-1", "general_rate_limit_exceeded")

        clock.advance(seconds: 3600)
        await expect("password-1", "ok")
    }

    /// A guest's successful sign-in is one write: the session, with the counter's reset in the
    /// same commit (its slot, taken in memory, is not stored: the reset would clear it). The
    /// reset is stored: after a restart the guest has all ten attempts again.
    func testASuccessResetsTheCounterInTheSessionsOwnCommit() async throws {
        _ = try await accounts.create(userID: "r", email: "r@example.com", password: "password-1", name: nil, call: guest)
        for _ in 0..<9 { await expect("wrong-password", "user_invalid_credentials") }
        let before = try store.statistics().writes
        await expect("password-1", "ok")
        XCTAssertEqual(try store.statistics().writes - before, 1, "the session and the reset together")
        try await reopen()
        for _ in 0..<10 { await expect("wrong-password", "user_invalid_credentials", "the reset was stored") }
        await expect("wrong-password", "general_rate_limit_exceeded")
    }

    /// A failed attempt's count is stored before it is answered, whatever failed: a restart
    /// right after the answer keeps it.
    func testAFailedSignInIsStoredBeforeItsAnswer() async throws {
        _ = try await accounts.create(userID: "r", email: "r@example.com", password: "password-1", name: nil, call: guest)
        _ = try await users.updateStatus(
            userID: "r", status: false,
            call: Call(caller: .server(ServerIdentity(kind: .apiKey(id: "k"), scopes: [Scope.usersWrite])), context: RequestContext()))
        for attempt in 0..<5 {
            let before = try store.statistics().writes
            await expect(attempt % 2 == 0 ? "wrong-password" : "password-1", attempt % 2 == 0 ? "user_invalid_credentials" : "user_blocked")
            XCTAssertEqual(try store.statistics().writes - before, 1, "the count, stored before the answer")
            try await reopen()
        }
        for _ in 0..<5 { await expect("wrong-password", "user_invalid_credentials") }
        await expect("wrong-password", "general_rate_limit_exceeded", "five attempts across five restarts, five since")
    }

    func testParallelWrongPasswordsCannotSlipPastTheLimit() async throws {
        _ = try await accounts.create(userID: "r", email: "r@example.com", password: "password-1", name: nil, call: guest)
        let results = await withTaskGroup(of: String.self) { group in
            let accounts = self.accounts!
            let guest = self.guest
            for _ in 0..<60 { group.addTask { await Self.login(accounts, "wrong-password", guest) } }
            return await group.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
        }
        XCTAssertEqual(results["user_invalid_credentials"], 10)
        XCTAssertEqual(results["general_rate_limit_exceeded"], 50)
    }

    func testServerCallersAreExempt() async throws {
        _ = try await accounts.create(userID: "r", email: "r@example.com", password: "password-1", name: nil, call: guest)
        let server = Call(caller: .server(ServerIdentity(kind: .apiKey(id: "k"), scopes: [Scope.sessionsWrite])), context: RequestContext())
        for _ in 0..<15 {
            do {
                _ = try await accounts.createEmailPasswordSession(email: "r@example.com", password: "wrong-password", call: server)
            } catch let error as AuthdError {
                XCTAssertEqual(error.type, "user_invalid_credentials")
            }
        }
    }

    /// A guest's sign-up stores its count with the new account (one write), and a failed one
    /// on its own before its answer; the counts survive a restart either way.
    func testASignUpStoresItsCountWithTheAccount() async throws {
        for i in 0..<8 {
            let before = try store.statistics().writes
            _ = try await accounts.create(userID: "s\(i)", email: "s\(i)@example.com", password: "password-1", name: nil, call: guest)
            XCTAssertEqual(try store.statistics().writes - before, 1, "the count and the account together")
        }
        let before = try store.statistics().writes
        await expectRefusal("user_already_exists", "a taken email signed up") {
            _ = try await accounts.create(userID: "s8", email: "s0@example.com", password: "password-1", name: nil, call: guest)
        }
        XCTAssertEqual(try store.statistics().writes - before, 1, "the failed sign-up's count, on its own")
        try await reopen()
        _ = try await accounts.create(userID: "s9", email: "s9@example.com", password: "password-1", name: nil, call: guest)
        await expectRefusal("general_rate_limit_exceeded", "an 11th sign-up from one address passed after a restart") {
            _ = try await accounts.create(userID: "s10", email: "s10@example.com", password: "password-1", name: nil, call: guest)
        }
    }

    /// A guest's anonymous sign-in is one write: its count, the new user and the session.
    func testAnAnonymousSignInIsOneWrite() async throws {
        for _ in 0..<49 { _ = try await accounts.createAnonymousSession(call: guest) }
        let before = try store.statistics().writes
        let session = try await accounts.createAnonymousSession(call: guest)
        XCTAssertEqual(try store.statistics().writes - before, 1, "the count, the user and the session together")
        XCTAssertNotNil(try store.read { try $0.user(id: session.record.userID) }, "the user was stored")
        XCTAssertNotNil(try store.read { try $0.session(id: session.record.id) }, "the session was stored")
        try await reopen()
        await expectRefusal("general_rate_limit_exceeded", "a 51st anonymous sign-in from one address passed after a restart") {
            _ = try await accounts.createAnonymousSession(call: guest)
        }
    }

    /// A signed-in user's session update, password change and sign-out each store their count in
    /// their own write: one durable write each, and the stored count is the number of calls.
    func testASignedInUsersLimitedCallsAreOneWriteEach() async throws {
        let created = try await accounts.create(userID: "r", email: "r@example.com", password: "password-1", name: nil, call: guest)
        _ = try await accounts.createEmailPasswordSession(email: "r@example.com", password: "password-1", call: guest)
        let signedIn = try await accounts.createEmailPasswordSession(email: "r@example.com", password: "password-1", call: guest)
        let user = Call(caller: .user(created, session: signedIn.record), context: guest.context)
        let stored = { (rule: String) in try self.store.read { try $0.rateCounter("\(rule)|ip:203.0.113.1") }?.count }

        var before = try store.statistics().writes
        _ = try await accounts.updateSession(id: "current", call: user)
        XCTAssertEqual(try store.statistics().writes - before, 1, "the count and the session's new expiry together")
        XCTAssertEqual(try stored("account.sessions.update"), 1)

        before = try store.statistics().writes
        _ = try await accounts.updatePassword("password-2", oldPassword: "password-1", invalidateSessions: false, call: user)
        XCTAssertEqual(try store.statistics().writes - before, 1, "the count and the new password together")
        await expectRefusal("user_invalid_credentials", "a wrong old password was taken") {
            _ = try await accounts.updatePassword("password-3", oldPassword: "wrong-password", invalidateSessions: false, call: user)
        }
        XCTAssertEqual(try stored("account.password"), 2, "the failed change counts too")

        before = try store.statistics().writes
        try await accounts.deleteSessions(call: user)
        XCTAssertEqual(try store.statistics().writes - before, 1, "the count and the sign-out together")
        XCTAssertEqual(try stored("account.sessions.delete"), 1)
        XCTAssertEqual(try store.read { try $0.sessions(userID: "r") }.count, 0)
    }

    func testSignUpsAreLimitedPerAddress() async throws {
        for i in 0..<10 {
            _ = try await accounts.create(userID: "s\(i)", email: "s\(i)@example.com", password: "password-1", name: nil, call: guest)
        }
        do {
            _ = try await accounts.create(userID: "s10", email: "s10@example.com", password: "password-1", name: nil, call: guest)
            XCTFail("an 11th sign-up from one address passed")
        } catch let error as AuthdError {
            XCTAssertEqual(error.type, "general_rate_limit_exceeded")
            XCTAssertEqual(error.code, 429)
            XCTAssertTrue(error.message.contains("reset at 1800003600"), error.message)
        }
        let other = Call(caller: .guest, context: RequestContext(client: ClientInfo(ip: "203.0.113.2")))
        _ = try await accounts.create(userID: "s10", email: "s10@example.com", password: "password-1", name: nil, call: other)
    }
}
