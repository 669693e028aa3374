import AuthdCore
import AuthdStore
import XCTest

/// A user holding far more sessions than the limit (made by the server, which the limit does
/// not trim): the calls that end many of them do it in writes of at most 512 sessions, so that
/// the writes beside them never wait for one long write, and still end every one they name.
final class ManySessionsTests: DomainTestCase {
    private let guest = Call(caller: .guest, context: RequestContext(client: ClientInfo(ip: "203.0.113.9")))
    /// Server-made sessions per test: enough for three parts of 512.
    private let made = 1_300

    override func setUp() async throws {
        try await super.setUp()
        _ = try await accounts.create(userID: "many", email: "many@example.com", password: "password-1", name: nil, call: guest)
    }

    /// `count` server-made sessions of the user, made a second before the clock's now.
    private func makeServerSessions(_ count: Int) async throws -> [SessionView] {
        let (users, server) = (users!, server)
        let all = try await withThrowingTaskGroup(of: [SessionView].self) { group in
            for worker in 0..<16 {
                group.addTask {
                    var views: [SessionView] = []
                    for _ in stride(from: worker, to: count, by: 16) {
                        views.append(try await users.createSession(userID: "many", call: server))
                    }
                    return views
                }
            }
            var all: [SessionView] = []
            for try await part in group { all += part }
            return all
        }
        clock.advance(seconds: 1)
        return all
    }

    private func liveSessionIDs() throws -> [String] { try store.read { try $0.sessionIDs(userID: "many") } }

    private func writes() throws -> UInt64 { try store.statistics().writes }

    private func deletionEntries() throws -> [ChangeRecord] {
        try store.read { try $0.changes(after: 0, limit: 10_000) }.filter { $0.auditEvent == "session.delete" }
    }

    func testASignInFarPastTheLimitTrimsEveryExtraSessionInPartsOf512() async throws {
        let server = try await makeServerSessions(made)
        let before = try writes()
        let signedIn = try await accounts.createEmailPasswordSession(email: "many@example.com", password: "password-1", call: guest)
        // 1,301 sessions at a limit of 3: 1,298 trimmed, 512 + 512 + 274.
        XCTAssertEqual(try writes() - before, 3, "the sign-in's own write with the first part, then two more parts")
        let left = try liveSessionIDs()
        XCTAssertEqual(left.count, 3)
        XCTAssertEqual(left.last, signedIn.record.id, "the new session is kept")
        let deleted = try deletionEntries()
        XCTAssertEqual(deleted.count, made - 2, "each trimmed session has its entry")
        XCTAssertEqual(Set(deleted.map(\.event)).count, made - 2, "each names its own session")
        let kept = Set(left)
        let trimmed = server.filter { !kept.contains($0.record.id) }
        XCTAssertEqual(trimmed.count, made - 2)
        for view in trimmed.prefix(20) {
            XCTAssertNil(try store.read { try $0.session(secretHash: view.record.secretHash, locator: view.record.secretLocator) })
        }
    }

    func testEndingEveryOtherSessionTakesPartsAndKeepsTheCurrentOne() async throws {
        let user = try XCTUnwrap(try store.read { try $0.user(id: "many") })
        let current = try await accounts.createEmailPasswordSession(email: "many@example.com", password: "password-1", call: guest)
        clock.advance(seconds: 1)
        _ = try await makeServerSessions(made)
        let call = Call(caller: .user(user, session: current.record), context: guest.context)
        let before = try writes()
        _ = try await accounts.updatePassword("password-2", oldPassword: "password-1", invalidateSessions: true, call: call)
        // 1,301 sessions: the oldest 512 of those past the newest 512 (all but the current one,
        // the oldest, which stays), the other 277 past them, then the password's write ends the
        // last 512 with the change.
        XCTAssertEqual(try writes() - before, 3)
        XCTAssertEqual(try liveSessionIDs(), [current.record.id])
        XCTAssertEqual(try deletionEntries().count, made)
        XCTAssertEqual(
            try store.read { try $0.rateCounter("account.password|ip:203.0.113.9") }?.count, 1,
            "the rate limit's count stored once, however many writes carry it")
    }

    func testDeletingAllSessionsOrTheUserEndsEveryOne() async throws {
        _ = try await makeServerSessions(made)
        var before = try writes()
        try await users.deleteSessions(userID: "many", call: server)
        XCTAssertEqual(try writes() - before, 3, "two parts (512 and 276), then the last 512")
        XCTAssertEqual(try liveSessionIDs(), [])
        XCTAssertEqual(try deletionEntries().count, made)

        _ = try await makeServerSessions(made)
        before = try writes()
        try await users.delete(userID: "many", call: server)
        XCTAssertEqual(try writes() - before, 3)
        XCTAssertNil(try store.read { try $0.user(id: "many") })
        XCTAssertEqual(try liveSessionIDs(), [])
        XCTAssertEqual(try deletionEntries().count, made, "a deleted user's sessions end without an entry each")
        XCTAssertEqual(try store.statistics().sessions, 0)
    }

    func testDeletingAUserWithManyTokensTakesPartsAndLeavesNone() async throws {
        var tokens: [TokenRecord] = []
        for _ in 0..<made { tokens.append(try await users.createToken(userID: "many", length: nil, expire: nil, call: server).0) }
        let before = try writes()
        try await users.delete(userID: "many", call: server)
        XCTAssertEqual(try writes() - before, 4, "parts of 512, 512 and 276 tokens, then the user")
        for token in [tokens[0], tokens[700], tokens[made - 1]] {
            XCTAssertNil(try store.read { try $0.token(id: token.id) })
        }
        XCTAssertEqual(try store.read { try $0.tokens(userID: "many") }, [])
    }

    func testAUserWithFewSessionsIsEndedInOneWriteAsBefore() async throws {
        _ = try await makeServerSessions(500)
        let before = try writes()
        try await users.deleteSessions(userID: "many", call: server)
        XCTAssertEqual(try writes() - before, 1)
        XCTAssertEqual(try liveSessionIDs(), [])
    }
}
