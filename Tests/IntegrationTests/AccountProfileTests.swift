import AuthdClient
import AuthdProto
import Foundation
import XCTest

/// The signed-in user's own account: profile updates, anonymous upgrade, sessions, audit log.
final class AccountProfileTests: ClientTestCase {
    private func signUp(_ id: String) async throws -> Credentials {
        _ = try await client.createAccount(userID: id, email: "\(id)@example.com", password: "password-1")
        return .session(try await client.createEmailPasswordSession(email: "\(id)@example.com", password: "password-1").secret)
    }

    func testNamePrefsAndPassword() async throws {
        let me = try await signUp("ada")
        // Twice: cached with its encoded answer, then let into the event loop's front of the cache.
        _ = try await client.getAccount(credentials: me)
        let before = try await client.getAccount(credentials: me)
        let renamed = try await client.updateName("Ada L.", credentials: me)
        XCTAssertEqual(renamed.name, "Ada L.")
        let after = try await client.getAccount(credentials: me)
        XCTAssertEqual(after.name, "Ada L.", "the acknowledged rename shows in the next Account/Get (was \(before.name))")
        await assertAuthdError("general_argument_invalid", 400) { try await self.client.updateName("", credentials: me) }

        let prefs = try await client.updatePrefs(#"{"lang":"en"}"#, credentials: me)
        XCTAssertEqual(prefs, #"{"lang":"en"}"#)
        await assertAuthdError("general_argument_invalid", 400) { try await self.client.updatePrefs("[]", credentials: me) }
        let storedPrefs = try await client.getPrefs(credentials: me)
        XCTAssertEqual(storedPrefs, #"{"lang":"en"}"#)

        let other = try await client.createEmailPasswordSession(email: "ada@example.com", password: "password-1")
        await assertAuthdError("user_invalid_credentials", 401) {
            try await self.client.updatePassword("password-2", oldPassword: "wrong-one", credentials: me)
        }
        _ = try await client.updatePassword("password-2", oldPassword: "password-1", credentials: me)
        // invalidate_sessions is on by default: the other session ended, the current one lives.
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await self.client.getAccount(credentials: .session(other.secret))
        }
        let stillMe = try await client.getAccount(credentials: me)
        XCTAssertEqual(stillMe.id, "ada")
        _ = try await client.createEmailPasswordSession(email: "ada@example.com", password: "password-2")
    }

    func testEmailAndPhoneNeedThePasswordAndResetVerification() async throws {
        let me = try await signUp("bob")
        _ = try await signUp("eve")
        await assertAuthdError("user_invalid_credentials", 401) {
            try await self.client.updateEmail("bob2@example.com", password: "not-the-password", credentials: me)
        }
        await assertAuthdError("general_bad_request", 400) {
            try await self.client.updateEmail("eve@example.com", password: "password-1", credentials: me)
        }
        let same = try await client.updateEmail("BOB@example.com", password: "password-1", credentials: me)
        XCTAssertEqual(same.email, "bob@example.com", "setting one's own email again is no error")
        let moved = try await client.updateEmail("bob2@example.com", password: "password-1", credentials: me)
        XCTAssertEqual(moved.email, "bob2@example.com")
        XCTAssertFalse(moved.emailVerification)
        let phoned = try await client.updatePhone("+14155550123", password: "password-1", credentials: me)
        XCTAssertEqual(phoned.phone, "+14155550123")
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.updatePhone("12345", password: "password-1", credentials: me)
        }
    }

    func testAnonymousUsersBecomeFullAccounts() async throws {
        let anonymous = try await client.createAnonymousSession()
        XCTAssertEqual(anonymous.provider, "anonymous")
        XCTAssertEqual(anonymous.factors, ["anonymous"])
        let me = Credentials.session(anonymous.secret)
        let before = try await client.getAccount(credentials: me)
        XCTAssertEqual(before.email, "")
        XCTAssertEqual(before.passwordUpdate, 0)
        await assertAuthdError("user_session_already_exists", 401) { try await self.client.createAnonymousSessionAs(me) }

        let upgraded = try await client.updateEmail("anon@example.com", password: "chosen-password", credentials: me)
        XCTAssertEqual(upgraded.email, "anon@example.com")
        XCTAssertGreaterThan(upgraded.passwordUpdate, 0)
        let login = try await client.createEmailPasswordSession(email: "anon@example.com", password: "chosen-password")
        XCTAssertEqual(login.userID, anonymous.userID)
    }

    func testExtendBlockAndDelete() async throws {
        let me = try await signUp("cid")
        let original = try await client.getSession(credentials: me)
        try await Task.sleep(for: .milliseconds(20))
        let extended = try await client.updateSession(credentials: me)
        XCTAssertGreaterThan(extended.expire, original.expire)
        await assertAuthdError("user_session_not_found", 404) {
            try await self.client.updateSession(sessionID: "nosuchsession", credentials: me)
        }

        let blocked = try await client.blockAccount(credentials: me)
        XCTAssertFalse(blocked.status)
        await assertAuthdError("general_unauthorized_scope", 401) { try await self.client.getAccount(credentials: me) }
        await assertAuthdError("user_blocked", 403) {
            try await self.client.createEmailPasswordSession(email: "cid@example.com", password: "password-1")
        }

        let dee = try await signUp("dee")
        try await client.deleteAccount(credentials: dee)
        await assertAuthdError("general_unauthorized_scope", 401) { try await self.client.getAccount(credentials: dee) }
        await assertAuthdError("user_invalid_credentials", 401) {
            try await self.client.createEmailPasswordSession(email: "dee@example.com", password: "password-1")
        }
        _ = try await client.createAccount(userID: "dee", email: "dee@example.com", password: "password-1")
    }

    func testAuditLogPagesNewestFirst() async throws {
        let me = try await signUp("log")
        for i in 0..<5 { _ = try await client.updateName("Name \(i)", credentials: me) }
        let first = try await client.listLogs(limit: 3, credentials: me)
        XCTAssertEqual(first.total, 7, "create, session, five renames")
        XCTAssertEqual(first.logs.map(\.event), ["user.update", "user.update", "user.update"])
        XCTAssertEqual(first.logs.map(\.fullEvent).first, "users.log.update.name")
        XCTAssertTrue(first.logs.allSatisfy { $0.userType == "user" && $0.actorID == "log" })
        let sequences = first.logs.map(\.sequence)
        XCTAssertEqual(sequences, sequences.sorted(by: >))
        let next = try await client.listLogs(limit: 10, beforeSequence: sequences.last!, credentials: me)
        XCTAssertEqual(next.logs.map(\.event), ["user.update", "user.update", "session.create", "user.create"])
        let offset = try await client.listLogs(limit: 2, offset: 5, credentials: me)
        XCTAssertEqual(offset.logs.map(\.event), ["session.create", "user.create"])
        _ = try await signUp("other")
        let mine = try await client.listLogs(limit: 100, credentials: me)
        XCTAssertEqual(mine.logs.count, 7, "another user's records are not mine")
        await assertAuthdError("general_argument_invalid", 400) { try await self.client.listLogs(limit: 101, credentials: me) }
    }

    func testANewUserUnderADeletedUsersIDStartsWithNoHistory() async throws {
        let first = try await signUp("reused")
        _ = try await client.updateName("First owner", credentials: first)
        try await client.deleteAccount(credentials: first, client: ClientInfo(ip: "192.0.2.7", userAgent: "first-owner"))
        let second = try await signUp("reused")
        let logs = try await client.listLogs(limit: 100, credentials: second)
        XCTAssertEqual(logs.total, 2)
        XCTAssertEqual(logs.logs.map(\.event), ["session.create", "user.create"])
        XCTAssertFalse(logs.logs.contains { $0.ip == "192.0.2.7" || $0.userAgent == "first-owner" })
    }
}

extension AuthdClient {
    /// CreateAnonymousSession presenting a credential, to test `user_session_already_exists`.
    func createAnonymousSessionAs(_ credentials: Credentials) async throws -> Session {
        try await call(
            "authd.v1.Account/CreateAnonymousSession", Authd_V1_CreateAnonymousSessionRequest(), credentials: credentials,
            returning: Session.self)
    }
}

final class RolesTests: XCTestCase {
    func testRolesOfGuestsUsersAndLabels() async throws {
        let daemon = try await DaemonProcess.start(extraArguments: ["--set", "peer_gid.\(getgid())=users.write"])
        addTeardownBlock { await daemon.cleanUp() }
        let client = try await daemon.connect()
        addTeardownBlock { await client.close() }
        let server = try await client.getRoles()
        XCTAssertEqual(server, ["any", "keys"])
        _ = try await client.createUser(userID: "r", email: "r@example.com", password: "password-1")
        let session = try await client.createUserSession(userID: "r")
        var roles = try await client.getRoles(credentials: .session(session.secret))
        XCTAssertEqual(roles, ["any", "users", "user:r", "user:r/unverified", "users/unverified"])
        var labels = Authd_V1_UpdateUserLabelsRequest()
        labels.userID = "r"
        labels.labels = ["vip"]
        _ = try await client.updateUser("UpdateLabels", labels)
        var verify = Authd_V1_UpdateUserEmailVerificationRequest()
        verify.userID = "r"
        verify.emailVerification = true
        _ = try await client.updateUser("UpdateEmailVerification", verify)
        roles = try await client.getRoles(credentials: .session(session.secret))
        XCTAssertEqual(roles, ["any", "users", "user:r", "user:r/verified", "users/verified", "label:vip"])
        let guest = try await client.getRoles(credentials: .session("unknown"))
        XCTAssertEqual(guest, ["any", "guests"], "an unknown session is a guest, even from a mapped peer")
    }
}
