import AuthdClient
import AuthdProto
import Foundation
import XCTest

/// The Users API end to end, called as a mapped peer with users.read and users.write.
final class UsersAPITests: ClientTestCase {
    override var daemonArguments: [String] { ["--set", "peer_uid.\(getuid())=users.read,users.write,sessions.write,settings.read"] }

    func testCreateWithAnyCombinationOfFields() async throws {
        let bare = try await client.createUser(userID: "bare")
        XCTAssertEqual(bare.email, "")
        XCTAssertEqual(bare.passwordUpdate, 0)
        XCTAssertTrue(bare.status)
        XCTAssertEqual(bare.prefs, "{}")
        let full = try await client.createUser(
            userID: "full", email: "Full@Example.com", phone: "+14155550100", password: "password-1", name: "Full")
        XCTAssertEqual(full.email, "full@example.com")
        XCTAssertEqual(full.phone, "+14155550100")
        XCTAssertGreaterThan(full.passwordUpdate, 0)
        let session = try await client.createEmailPasswordSession(email: "full@example.com", password: "password-1")
        XCTAssertEqual(session.userID, "full")
        let phoneOnly = try await client.createUser(phone: "+447700900123")
        XCTAssertEqual(phoneOnly.id.count, 20)

        await assertAuthdError("user_already_exists", 409) { try await self.client.createUser(userID: "full") }
        await assertAuthdError("user_already_exists", 409) { try await self.client.createUser(email: "FULL@example.com") }
        await assertAuthdError("user_already_exists", 409) { try await self.client.createUser(phone: "+14155550100") }
        let client = self.client!
        for bad in [
            { _ = try await client.createUser(userID: "-x") },
            { _ = try await client.createUser(email: "nope") },
            { _ = try await client.createUser(phone: "4155550100") },
            { _ = try await client.createUser(phone: "+0155550100") },
            { _ = try await client.createUser(password: "short") },
            { _ = try await client.createUser(name: "") },
        ] as [@Sendable () async throws -> Void] {
            await assertAuthdError("general_argument_invalid", 400) { try await bad() }
        }
        let all = try await client.listUsers()
        XCTAssertEqual(all.total, 3, "no invalid call created anything")
    }

    func testUpdatesAndTheirErrors() async throws {
        _ = try await client.createUser(userID: "u", email: "u@example.com", password: "password-1")
        _ = try await client.createUser(userID: "v", email: "v@example.com", phone: "+14155550101")

        var labels = Authd_V1_UpdateUserLabelsRequest()
        labels.userID = "u"
        labels.labels = ["vip", "beta", "vip"]
        let observed1 = try await client.updateUser("UpdateLabels", labels).labels
        XCTAssertEqual(observed1, ["vip", "beta"])
        labels.labels = ["not-alnum"]
        await assertAuthdError("general_argument_invalid", 400) { try await self.client.updateUser("UpdateLabels", labels) }

        var name = Authd_V1_UpdateUserNameRequest()
        name.userID = "u"
        name.name = "New Name"
        let observed2 = try await client.updateUser("UpdateName", name).name
        XCTAssertEqual(observed2, "New Name")

        var verify = Authd_V1_UpdateUserEmailVerificationRequest()
        verify.userID = "u"
        verify.emailVerification = true
        let observed3 = try await client.updateUser("UpdateEmailVerification", verify).emailVerification
        XCTAssertTrue(observed3)

        var email = Authd_V1_UpdateUserEmailRequest()
        email.userID = "u"
        email.email = "V@example.com"
        await assertAuthdError("user_email_already_exists", 409) { try await self.client.updateUser("UpdateEmail", email) }
        email.email = "u2@example.com"
        let moved = try await client.updateUser("UpdateEmail", email)
        XCTAssertEqual(moved.email, "u2@example.com")
        XCTAssertFalse(moved.emailVerification, "a new email is unverified")
        _ = try await client.createEmailPasswordSession(email: "u2@example.com", password: "password-1")
        await assertAuthdError("user_invalid_credentials", 401) {
            try await self.client.createEmailPasswordSession(email: "u@example.com", password: "password-1")
        }

        var phone = Authd_V1_UpdateUserPhoneRequest()
        phone.userID = "u"
        phone.number = "+14155550101"
        await assertAuthdError("user_phone_already_exists", 409) { try await self.client.updateUser("UpdatePhone", phone) }
        phone.number = ""
        let observed4 = try await client.updateUser("UpdatePhone", phone).phone
        XCTAssertEqual(observed4, "")

        var impersonator = Authd_V1_UpdateUserImpersonatorRequest()
        impersonator.userID = "u"
        impersonator.impersonator = true
        let observed5 = try await client.updateUser("UpdateImpersonator", impersonator).impersonator
        XCTAssertTrue(observed5)
        var mfa = Authd_V1_UpdateUserMfaRequest()
        mfa.userID = "u"
        mfa.mfa = true
        let observed6 = try await client.updateUser("UpdateMfa", mfa).mfa
        XCTAssertTrue(observed6)

        var missing = Authd_V1_UpdateUserNameRequest()
        missing.userID = "ghost"
        missing.name = "x"
        await assertAuthdError("user_not_found", 404) { try await self.client.updateUser("UpdateName", missing) }
        missing.userID = "$bad"
        await assertAuthdError("general_argument_invalid", 400) { try await self.client.updateUser("UpdateName", missing) }
    }

    func testPrefsAreAJSONObjectOfAtMost64KB() async throws {
        _ = try await client.createUser(userID: "p")
        let observed7 = try await client.updateUserPrefs(userID: "p", prefs: #"{"theme":"dark","n":1}"#)
        XCTAssertEqual(observed7, #"{"theme":"dark","n":1}"#)
        let big = #"{"blob":""# + String(repeating: "x", count: 65_535) + #""}"#
        await assertAuthdError("general_argument_invalid", 400) { try await self.client.updateUserPrefs(userID: "p", prefs: big) }
        await assertAuthdError("general_argument_invalid", 400) { try await self.client.updateUserPrefs(userID: "p", prefs: "[1,2]") }
        await assertAuthdError("general_argument_invalid", 400) { try await self.client.updateUserPrefs(userID: "p", prefs: "not json") }
        let observed8 = try await client.getUserPrefs(userID: "p")
        XCTAssertEqual(observed8, #"{"theme":"dark","n":1}"#, "nothing stored by a refused update")
    }

    func testBlockingAndPasswordChangesEndSessionsAsAsked() async throws {
        _ = try await client.createUser(userID: "b", email: "b@example.com", password: "password-1")
        let session = try await client.createEmailPasswordSession(email: "b@example.com", password: "password-1")
        _ = try await client.updateUserStatus(userID: "b", status: false)
        await assertAuthdError("user_blocked", 403) { try await self.client.getAccount(credentials: .session(session.secret)) }
        await assertAuthdError("user_blocked", 403) {
            try await self.client.createEmailPasswordSession(email: "b@example.com", password: "password-1")
        }
        _ = try await client.updateUserStatus(userID: "b", status: true)
        let observed9 = try await client.getAccount(credentials: .session(session.secret)).id
        XCTAssertEqual(observed9, "b")

        _ = try await client.updateUserPassword(userID: "b", password: "password-2", invalidateSessions: false)
        let observed10 = try await client.getAccount(credentials: .session(session.secret)).id
        XCTAssertEqual(observed10, "b")
        await assertAuthdError("user_invalid_credentials", 401) {
            try await self.client.createEmailPasswordSession(email: "b@example.com", password: "password-1")
        }
        _ = try await client.updateUserPassword(userID: "b", password: "password-3", invalidateSessions: true)
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await self.client.getAccount(credentials: .session(session.secret))
        }
        _ = try await client.updateUserPassword(userID: "b", password: "")
        await assertAuthdError("user_invalid_credentials", 401) {
            try await self.client.createEmailPasswordSession(email: "b@example.com", password: "password-3")
        }
    }

    func testServerSessionsTokensAndDeleteCascade() async throws {
        _ = try await client.createUser(userID: "s", email: "s@example.com")
        let server = try await client.createUserSession(userID: "s")
        XCTAssertEqual(server.provider, "server")
        XCTAssertEqual(server.factors, ["server"])
        XCTAssertFalse(server.secret.isEmpty)
        let observed11 = try await client.getAccount(credentials: .session(server.secret)).id
        XCTAssertEqual(observed11, "s")

        let token = try await client.createUserToken(userID: "s", length: 12, expire: 120)
        XCTAssertEqual(token.secret.count, 12)
        XCTAssertTrue(token.secret.allSatisfy(\.isHexDigit))
        XCTAssertEqual(token.expire - token.createdAt, 120_000)
        let defaults = try await client.createUserToken(userID: "s")
        XCTAssertEqual(defaults.secret.count, 6)
        XCTAssertEqual(defaults.expire - defaults.createdAt, 900_000)
        await assertAuthdError("general_argument_invalid", 400) { try await self.client.createUserToken(userID: "s", length: 3) }
        await assertAuthdError("general_argument_invalid", 400) { try await self.client.createUserToken(userID: "s", expire: 59) }
        await assertAuthdError("user_not_found", 404) { try await self.client.createUserToken(userID: "ghost") }

        let guest = try await daemon.connect()
        // Guests redeem tokens: a fresh connection from an unmapped peer is simulated by the
        // same uid here, so redeem over the plain client with no credential.
        await assertAuthdError("user_invalid_token", 401) { try await guest.createSession(userID: "s", secret: "ffffffffffff") }
        let redeemed = try await guest.createSession(userID: "s", secret: token.secret)
        XCTAssertEqual(redeemed.provider, "token")
        XCTAssertEqual(redeemed.factors, ["token"])
        await assertAuthdError("user_invalid_token", 401) { try await guest.createSession(userID: "s", secret: token.secret) }
        let observed12 = try await client.getAccount(credentials: .session(redeemed.secret)).id
        XCTAssertEqual(observed12, "s")
        // The tokens' creations are in the user's history, before the sign-in that redeemed one
        // (the store keeps their part of the history apart until that sign-in).
        let history = try await client.listLogs(limit: 3, credentials: .session(redeemed.secret))
        XCTAssertEqual(history.logs.map(\.event), ["session.create", "tokens.create", "tokens.create"])
        XCTAssertEqual(history.logs.map(\.fullEvent), [
            "users.s.sessions.\(redeemed.id).create", "users.s.tokens.\(defaults.id).create", "users.s.tokens.\(token.id).create",
        ])
        let sequences = history.logs.map(\.sequence)
        XCTAssertEqual(sequences, sequences.sorted(by: >))
        await guest.close()

        let sessions = try await client.listUserSessions(userID: "s")
        XCTAssertEqual(sessions.total, 2)
        XCTAssertTrue(sessions.sessions.allSatisfy { !$0.current })
        try await client.deleteUserSession(userID: "s", sessionID: server.id)
        await assertAuthdError("user_session_not_found", 404) {
            try await self.client.deleteUserSession(userID: "s", sessionID: server.id)
        }
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await self.client.getAccount(credentials: .session(server.secret))
        }

        try await client.deleteUser(userID: "s")
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await self.client.getAccount(credentials: .session(redeemed.secret))
        }
        await assertAuthdError("user_invalid_token", 401) {
            try await self.client.createSession(userID: "s", secret: defaults.secret)
        }
        await assertAuthdError("user_not_found", 404) { try await self.client.deleteUser(userID: "s") }
        await assertAuthdError("user_not_found", 404) { try await self.client.getUser(userID: "s") }
        // The email is free again.
        _ = try await client.createUser(userID: "s2", email: "s@example.com")
    }

    func testListQueriesAndCursorPaginationOverThousandsOfUsers() async throws {
        let count = 2_000
        let client = self.client!
        try await withThrowingTaskGroup(of: Void.self) { group in
            for batch in 0..<20 {
                group.addTask {
                    for i in stride(from: batch, to: count, by: 20) {
                        _ = try await client.createUser(
                            userID: String(format: "user%05d", i), email: "user\(i)@example.com",
                            name: i % 10 == 0 ? "Tenth \(i)" : "User \(i)")
                    }
                }
            }
            try await group.waitForAll()
        }

        let firstPage = try await client.listUsers()
        XCTAssertEqual(firstPage.total, 2000)
        XCTAssertEqual(firstPage.users.count, 25, "default page size")

        var seen: [String] = []
        var cursor: String?
        while true {
            var queries = [query("limit", nil, [300])]
            if let cursor { queries.append(query("cursorAfter", nil, [cursor])) }
            let page = try await client.listUsers(queries: queries)
            if page.users.isEmpty { break }
            seen += page.users.map(\.id)
            cursor = page.users.last?.id
        }
        XCTAssertEqual(seen.count, count)
        XCTAssertEqual(seen, seen.sorted())
        XCTAssertEqual(Set(seen).count, count)

        let backwards = try await client.listUsers(queries: [query("limit", nil, [3]), query("cursorBefore", nil, ["user00010"])])
        XCTAssertEqual(backwards.users.map(\.id), ["user00007", "user00008", "user00009"])

        let equal = try await client.listUsers(queries: [query("equal", "email", ["user42@example.com"])])
        XCTAssertEqual(equal.users.map(\.id), ["user00042"])
        let tenths = try await client.listUsers(queries: [query("startsWith", "name", ["Tenth"]), query("limit", nil, [500])])
        XCTAssertEqual(tenths.total, 200)
        let ordered = try await client.listUsers(queries: [query("orderDesc", "$id"), query("limit", nil, [2]), query("offset", nil, [1])])
        XCTAssertEqual(ordered.users.map(\.id), ["user01998", "user01997"])
        let searched = try await client.listUsers(search: "user1999@example.com")
        XCTAssertEqual(searched.users.map(\.id), ["user01999"])

        await assertAuthdError("general_query_invalid", 400) {
            try await self.client.listUsers(queries: [self.query("equal", "password", ["x"])])
        }
        await assertAuthdError("general_query_invalid", 400) { try await self.client.listUsers(queries: ["not json"]) }
        await assertAuthdError("general_query_invalid", 400) {
            try await self.client.listUsers(queries: [self.query("select", nil, ["email"])])
        }
        await assertAuthdError("general_query_invalid", 400) {
            try await self.client.listUsers(queries: [self.query("equal", "labels", ["vip"])])
        }
        await assertAuthdError("general_cursor_not_found", 400) {
            try await self.client.listUsers(queries: [self.query("cursorAfter", nil, ["nobody"])])
        }
    }

    /// Lists and change-log pages are read on a thread of their own: calls pipelined behind
    /// them on the same connection are answered first, where they waited for the reads before.
    func testListsDoNotHoldUpTheCallsBehindThem() async throws {
        _ = try await client.createUser(userID: "listed")
        let before = try await client.stats()
        func request(_ id: UInt64, _ method: String, _ body: Data = Data()) -> Authd_V1_Request {
            var request = Authd_V1_Request()
            request.id = id
            request.method = "authd.v1." + method
            request.body = body
            return request
        }
        let calls = [
            request(1, "Users/List", try Authd_V1_ListUsersRequest.with { $0.search = "nobody" }.serializedData()),
            request(2, "Health/Check"),
            request(3, "Users/ListLogs", try Authd_V1_ListUserLogsRequest.with { $0.userID = "listed" }.serializedData()),
            request(4, "Health/Check"),
        ]
        let raw = try RawConnection(socketPath: daemon.socketPath)
        try raw.send(RawConnection.frames(calls))
        var answers: [UInt64: Authd_V1_Response] = [:]
        var order: [UInt64] = []
        for _ in calls {
            let answer = try XCTUnwrap(try raw.receiveResponse())
            XCTAssertFalse(answer.hasError, "call \(answer.id): \(answer.error.message)")
            answers[answer.id] = answer
            order.append(answer.id)
        }
        XCTAssertEqual(Set(order.prefix(2)), [2, 4], "the checks answered while the reads ran")
        XCTAssertEqual(try Authd_V1_UserList(serializedBytes: answers[1]!.body).total, 0)
        XCTAssertEqual(try Authd_V1_LogList(serializedBytes: answers[3]!.body).logs.map(\.event), ["user.create"])
        let after = try await client.stats()
        XCTAssertGreaterThan(after.queryCpuMicros, before.queryCpuMicros, "the reads' CPU counted on the query thread")
    }

    /// Sessions made by the server are not trimmed, so a user may have any number; a list
    /// shows the oldest 1000, as Appwrite's does (its cap on a user's sessions).
    func testAListOfSessionsShowsTheOldestThousand() async throws {
        _ = try await client.createUser(userID: "many")
        let client = self.client!
        var made: [Authd_V1_Session] = []
        try await withThrowingTaskGroup(of: Authd_V1_Session.self) { group in
            for _ in 0..<1003 { group.addTask { try await client.createUserSession(userID: "many") } }
            for try await session in group { made.append(session) }
        }
        let listed = try await client.listUserSessions(userID: "many")
        XCTAssertEqual(listed.total, 1000)
        XCTAssertEqual(listed.sessions.count, 1000)
        let oldestFirst = made.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
        XCTAssertEqual(Set(listed.sessions.map(\.id)), Set(oldestFirst.prefix(1000).map(\.id)), "the oldest ones")
    }

    private func query(_ method: String, _ attribute: String? = nil, _ values: [Any] = []) -> String {
        var object: [String: Any] = ["method": method, "values": values]
        if let attribute { object["attribute"] = attribute }
        return String(decoding: (try? JSONSerialization.data(withJSONObject: object)) ?? Data(), as: UTF8.self)
    }
}
