import AuthdClient
import Foundation
import NIOPosix
import XCTest

/// Email/password accounts end to end: the real binary, the real store, the real client.
final class AccountFlowTests: ClientTestCase {
    func testCreateLoginGetListAndSignOut() async throws {
        let info = ClientInfo(ip: "203.0.113.7", userAgent: "TestAgent/1.0", locale: "en-US")
        let user = try await client.createAccount(
            userID: "ada", email: "  Ada@Example.COM ", password: "correct horse", name: "Ada Lovelace", client: info)
        XCTAssertEqual(user.id, "ada")
        XCTAssertEqual(user.email, "ada@example.com", "emails are trimmed and lower-cased")
        XCTAssertEqual(user.name, "Ada Lovelace")
        XCTAssertTrue(user.status)
        XCTAssertFalse(user.emailVerification)
        XCTAssertEqual(user.prefs, "{}")
        XCTAssertGreaterThan(user.passwordUpdate, 0)

        let session = try await client.createEmailPasswordSession(
            email: "ADA@example.com", password: "correct horse", client: info)
        XCTAssertEqual(session.userID, "ada")
        XCTAssertEqual(session.provider, "email")
        XCTAssertEqual(session.providerUid, "ada@example.com")
        XCTAssertEqual(session.factors, ["password"])
        XCTAssertEqual(session.ip, "203.0.113.7")
        XCTAssertEqual(session.userAgent, "TestAgent/1.0")
        XCTAssertTrue(session.current)
        XCTAssertEqual(session.secret.count, 54, "an 8-byte locator, then 32 random bytes, in base64url")
        let oneYear: Int64 = 31_536_000_000
        XCTAssertEqual(session.expire - session.createdAt, oneYear)

        let me = try await client.getAccount(credentials: .session(session.secret))
        XCTAssertEqual(me.id, "ada")
        XCTAssertEqual(me.email, "ada@example.com")

        let second = try await client.createEmailPasswordSession(email: "ada@example.com", password: "correct horse")
        let list = try await client.listSessions(credentials: .session(session.secret))
        XCTAssertEqual(list.total, 2)
        XCTAssertEqual(list.sessions.map(\.id), [session.id, second.id], "oldest first")
        XCTAssertEqual(list.sessions.map(\.current), [true, false])
        XCTAssertTrue(list.sessions.allSatisfy { $0.secret.isEmpty }, "secrets are returned only at creation")

        let current = try await client.getSession(sessionID: "current", credentials: .session(session.secret))
        XCTAssertEqual(current.id, session.id)
        XCTAssertTrue(current.secret.isEmpty)
        let other = try await client.getSession(sessionID: second.id, credentials: .session(session.secret))
        XCTAssertEqual(other.id, second.id)
        XCTAssertFalse(other.current)

        try await client.deleteSession(sessionID: "current", credentials: .session(session.secret))
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await self.client.getAccount(credentials: .session(session.secret))
        }
        let stillThere = try await client.getAccount(credentials: .session(second.secret))
        XCTAssertEqual(stillThere.id, "ada")

        try await client.deleteSessions(credentials: .session(second.secret))
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await self.client.getAccount(credentials: .session(second.secret))
        }
    }

    func testUniqueIDAndOptionalName() async throws {
        let user = try await client.createAccount(email: "grace@example.com", password: "password-123")
        XCTAssertEqual(user.id.count, 20)
        XCTAssertTrue(user.id.allSatisfy { $0.isHexDigit })
        XCTAssertEqual(user.name, "")
        let another = try await client.createAccount(email: "linus@example.com", password: "password-123")
        XCTAssertNotEqual(user.id, another.id)
    }

    func testAccountErrors() async throws {
        _ = try await client.createAccount(userID: "u1", email: "u1@example.com", password: "password-1")
        await assertAuthdError("user_already_exists", 409) {
            try await self.client.createAccount(userID: "u1", email: "other@example.com", password: "password-1")
        }
        await assertAuthdError("user_already_exists", 409) {
            try await self.client.createAccount(userID: "u2", email: "U1@example.com", password: "password-1")
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.createAccount(userID: "_bad", email: "x@example.com", password: "password-1")
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.createAccount(userID: String(repeating: "a", count: 37), email: "x@example.com", password: "password-1")
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.createAccount(userID: "", email: "x@example.com", password: "password-1")
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.createAccount(userID: "u3", email: "not-an-email", password: "password-1")
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.createAccount(userID: "u3", email: "", password: "password-1")
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.createAccount(userID: "u3", email: "u3@example.com", password: "short")
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.createAccount(
                userID: "u3", email: "u3@example.com", password: String(repeating: "p", count: 257))
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.createAccount(userID: "u3", email: "u3@example.com", password: "password-1", name: "")
        }
        // None of the failures above created anything.
        await assertAuthdError("user_invalid_credentials", 401) {
            try await self.client.createEmailPasswordSession(email: "u3@example.com", password: "password-1")
        }

        await assertAuthdError("user_invalid_credentials", 401) {
            try await self.client.createEmailPasswordSession(email: "u1@example.com", password: "wrong-password")
        }
        await assertAuthdError("user_invalid_credentials", 401) {
            try await self.client.createEmailPasswordSession(email: "nobody@example.com", password: "password-1")
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.createEmailPasswordSession(email: "u1@example.com", password: "short")
        }
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await self.client.getAccount(credentials: .none)
        }
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await self.client.getAccount(credentials: .session(String(repeating: "0", count: 64)))
        }
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await self.client.listSessions(credentials: .none)
        }

        let session = try await client.createEmailPasswordSession(email: "u1@example.com", password: "password-1")
        await assertAuthdError("user_session_already_exists", 401) {
            try await self.client.createEmailPasswordSession(
                email: "u1@example.com", password: "password-1", credentials: .session(session.secret))
        }
        await assertAuthdError("user_session_not_found", 404) {
            try await self.client.getSession(sessionID: "nosuchsession", credentials: .session(session.secret))
        }
        await assertAuthdError("user_session_not_found", 404) {
            try await self.client.deleteSession(sessionID: "nosuchsession", credentials: .session(session.secret))
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.getSession(sessionID: "-bad-", credentials: .session(session.secret))
        }

        // Another user's session is not found, never disclosed.
        _ = try await client.createAccount(userID: "u4", email: "u4@example.com", password: "password-4")
        let theirs = try await client.createEmailPasswordSession(email: "u4@example.com", password: "password-4")
        await assertAuthdError("user_session_not_found", 404) {
            try await self.client.getSession(sessionID: theirs.id, credentials: .session(session.secret))
        }
        await assertAuthdError("user_session_not_found", 404) {
            try await self.client.deleteSession(sessionID: theirs.id, credentials: .session(session.secret))
        }
        let stillMine = try await client.getAccount(credentials: .session(theirs.secret))
        XCTAssertEqual(stillMine.id, "u4")
    }

    func testSessionLimitEvictsTheOldest() async throws {
        _ = try await client.createAccount(userID: "many", email: "many@example.com", password: "password-1")
        var secrets: [String] = []
        for _ in 0..<12 {
            secrets.append(try await client.createEmailPasswordSession(email: "many@example.com", password: "password-1").secret)
        }
        for secret in secrets.prefix(2) {
            await assertAuthdError("general_unauthorized_scope", 401) {
                try await self.client.getAccount(credentials: .session(secret))
            }
        }
        for secret in secrets.dropFirst(2) {
            let me = try await client.getAccount(credentials: .session(secret))
            XCTAssertEqual(me.id, "many")
        }
        let list = try await client.listSessions(credentials: .session(secrets[11]))
        XCTAssertEqual(list.total, 10)
    }

    func testPipelinedCallsOnOneConnectionEachGetTheirOwnAnswer() async throws {
        var secrets: [String: String] = [:]
        for i in 0..<4 {
            _ = try await client.createAccount(userID: "p\(i)", email: "p\(i)@example.com", password: "password-1")
            secrets["p\(i)"] = try await client.createEmailPasswordSession(
                email: "p\(i)@example.com", password: "password-1").secret
        }
        let client = self.client!
        let secretsCopy = secrets
        let mismatches = try await withThrowingTaskGroup(of: Bool.self) { group in
            for n in 0..<400 {
                let userID = "p\(n % 4)"
                let secret = secretsCopy[userID]!
                group.addTask { try await client.getAccount(credentials: .session(secret)).id != userID }
            }
            var count = 0
            for try await mismatch in group where mismatch { count += 1 }
            return count
        }
        XCTAssertEqual(mismatches, 0)
    }

    func testTasksOnTheConnectionsExecutorRunOnItsLoopAndGetTheirOwnAnswers() async throws {
        var secrets: [String] = []
        for i in 0..<4 {
            _ = try await client.createAccount(userID: "l\(i)", email: "l\(i)@example.com", password: "password-1")
            secrets.append(try await client.createEmailPasswordSession(email: "l\(i)@example.com", password: "password-1").secret)
        }
        let client = self.client!
        let all = secrets
        // Each call reports whether it resumed on an event loop (the connection's executor runs
        // jobs nowhere else) and whether it got its own user.
        let outcomes = try await withThrowingTaskGroup(of: (onLoop: Bool, own: Bool).self) { group in
            for n in 0..<400 {
                group.addTask(executorPreference: client.taskExecutor) {
                    let me = try await client.getAccount(credentials: .session(all[n % 4]))
                    return (MultiThreadedEventLoopGroup.currentEventLoop != nil, me.id == "l\(n % 4)")
                }
            }
            var outcomes: [(onLoop: Bool, own: Bool)] = []
            for try await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
        XCTAssertEqual(outcomes.count, 400)
        XCTAssertEqual(outcomes.filter(\.onLoop).count, 400)
        XCTAssertEqual(outcomes.filter(\.own).count, 400)
        // The README's form: a preference for the calls of one block.
        let blockOnLoop = try await withTaskExecutorPreference(client.taskExecutor) {
            _ = try await client.getAccount(credentials: .session(all[1]))
            return MultiThreadedEventLoopGroup.currentEventLoop != nil
        }
        XCTAssertTrue(blockOnLoop)
        // Without the preference, a call resumes on the cooperative pool.
        let onPool = try await Task {
            _ = try await client.getAccount(credentials: .session(all[0]))
            return MultiThreadedEventLoopGroup.currentEventLoop == nil
        }.value
        XCTAssertTrue(onPool)
    }

    func testConcurrentSignUpsAllLand() async throws {
        let client = self.client!
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<50 {
                group.addTask {
                    // Each from its own address: sign-ups are limited to 10 an hour per IP.
                    _ = try await client.createAccount(
                        userID: "c\(i)", email: "c\(i)@example.com", password: "password-1",
                        client: ClientInfo(ip: "198.51.100.\(i)"))
                }
            }
            try await group.waitForAll()
        }
        for i in [0, 17, 49] {
            let session = try await client.createEmailPasswordSession(email: "c\(i)@example.com", password: "password-1")
            XCTAssertEqual(session.userID, "c\(i)")
        }
    }
}
