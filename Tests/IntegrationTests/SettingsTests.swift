import AuthdClient
import AuthdProto
import Foundation
import XCTest

/// Project auth settings: stored, changed over RPC and by authctl, and enforced.
final class SettingsTests: XCTestCase {
    var daemon: DaemonProcess!
    var client: AuthdClient!
    /// A key with the settings and users scopes: this test's connections are otherwise plain clients.
    var admin: Credentials!

    override func setUp() async throws {
        // An operator run creates the key, then authd restarts with the test's uid unmapped.
        let first = try await DaemonProcess.start(extraArguments: ["--set", "operator_uids=\(getuid())"])
        let operatorClient = try await first.connect()
        let key = try await operatorClient.createKey(
            name: "admin", scopes: ["settings.read", "settings.write", "users.read", "users.write"])
        await operatorClient.close()
        _ = try await first.stop()
        daemon = try DaemonProcess(directory: first.directory)
        try await daemon.launch()
        client = try await daemon.connect()
        admin = .apiKey(key.secret)
    }

    override func tearDown() async throws {
        await client?.close()
        await daemon?.cleanUp()
    }

    private func update(_ mask: [String], _ change: (inout Authd_V1_AuthSettings) -> Void) async throws -> Authd_V1_AuthSettings {
        var settings = Authd_V1_AuthSettings()
        change(&settings)
        return try await client.updateSettings(settings, mask: mask, credentials: admin)
    }

    func testDefaultsScopesAndValidation() async throws {
        let defaults = try await client.getSettings(credentials: admin)
        XCTAssertEqual(defaults.maxSessions, 10)
        XCTAssertEqual(defaults.duration, 31_536_000)
        XCTAssertEqual(defaults.passwordMinLength, 8)
        XCTAssertEqual(defaults.userLimit, 0)
        await assertAuthdError("general_unauthorized_scope", 401) { try await self.client.getSettings() }

        for (mask, change) in [
            (["max_sessions"], { (s: inout Authd_V1_AuthSettings) in s.maxSessions = 0 }),
            (["duration"], { $0.duration = 59 }),
            (["password_history"], { $0.passwordHistory = 21 }),
            (["password_min_length"], { $0.passwordMinLength = 7 }),
            (["disabled_methods"], { $0.disabledMethods = ["telepathy"] }),
            (["no_such_field"], { _ in }),
        ] as [([String], (inout Authd_V1_AuthSettings) -> Void)] {
            var settings = Authd_V1_AuthSettings()
            change(&settings)
            let admin = self.admin!
            let client = self.client!
            let attempt = settings
            await assertAuthdError("general_argument_invalid", 400) {
                try await client.updateSettings(attempt, mask: mask, credentials: admin)
            }
        }
        let unchanged = try await client.getSettings(credentials: admin)
        XCTAssertEqual(unchanged, defaults, "refused updates change nothing")

        let updated = try await update(["password_history", "session_alerts"]) {
            $0.passwordHistory = 3
            $0.sessionAlerts = true
            $0.maxSessions = 99  // not in the mask: ignored
        }
        XCTAssertEqual(updated.passwordHistory, 3)
        XCTAssertTrue(updated.sessionAlerts)
        XCTAssertEqual(updated.maxSessions, 10)
    }

    func testPasswordPoliciesOnEveryPath() async throws {
        _ = try await update(["password_min_length", "password_uppercase", "password_number", "password_symbols"]) {
            $0.passwordMinLength = 10
            $0.passwordUppercase = true
            $0.passwordNumber = true
            $0.passwordSymbols = true
        }
        for weak in ["Short1!", "nouppercase1!", "NoNumber!!!", "NoSymbol123"] {
            await assertAuthdError("general_argument_invalid", 400) {
                try await self.client.createAccount(email: "weak@example.com", password: weak)
            }
        }
        _ = try await client.createAccount(userID: "strong", email: "strong@example.com", password: "Str0ng€Pass")
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.createUser(email: "weak2@example.com", password: "weakpassword", credentials: self.admin)
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.updateUserPassword(userID: "strong", password: "weakpassword", credentials: self.admin)
        }

        _ = try await update(["password_min_length", "password_uppercase", "password_number", "password_symbols", "password_dictionary"]) {
            $0.passwordMinLength = 8
            $0.passwordDictionary = true
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.createAccount(email: "common@example.com", password: "password1")
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.updateUserPassword(userID: "strong", password: "12345678", credentials: self.admin)
        }
        _ = try await client.createAccount(email: "uncommon@example.com", password: "Password1", name: nil)

        _ = try await update(["personal_data_check"]) { $0.personalDataCheck = true }
        await assertAuthdError("password_personal_data", 400) {
            try await self.client.createAccount(email: "maryjones@example.com", password: "my-maryjones-pw")
        }
        await assertAuthdError("password_personal_data", 400) {
            try await self.client.createUser(userID: "pd", phone: "+14155550199", password: "x14155550199x", credentials: self.admin)
        }

        _ = try await update(["password_history"]) { $0.passwordHistory = 2 }
        _ = try await client.createUser(userID: "hist", password: "first-pass-1", credentials: admin)
        _ = try await client.updateUserPassword(userID: "hist", password: "second-pass-2", credentials: admin)
        await assertAuthdError("password_recently_used", 400) {
            try await self.client.updateUserPassword(userID: "hist", password: "first-pass-1", credentials: self.admin)
        }
        _ = try await client.updateUserPassword(userID: "hist", password: "third-pass-3", credentials: admin)
        // Only the last two are remembered.
        _ = try await client.updateUserPassword(userID: "hist", password: "first-pass-1", credentials: admin)

        // The same through Account/UpdatePassword, with the session held by the session cache,
        // whose copy of the user has no password fields: the history is read from the store.
        _ = try await client.createAccount(email: "own-hist@example.com", password: "first-pass-1")
        let me = Credentials.session(
            try await client.createEmailPasswordSession(email: "own-hist@example.com", password: "first-pass-1").secret)
        _ = try await client.getAccount(credentials: me)
        _ = try await client.updatePassword("second-pass-2", oldPassword: "first-pass-1", credentials: me)
        await assertAuthdError("password_recently_used", 400) {
            try await self.client.updatePassword("first-pass-1", oldPassword: "second-pass-2", credentials: me)
        }
        await assertAuthdError("user_invalid_credentials", 401) {
            try await self.client.updatePassword("third-pass-3", oldPassword: "first-pass-1", credentials: me)
        }
    }

    func testMethodToggleSessionLimitsAndUserLimit() async throws {
        _ = try await update(["disabled_methods"]) { $0.disabledMethods = ["email-password"] }
        await assertAuthdError("user_auth_method_unsupported", 501) {
            try await self.client.createAccount(email: "off@example.com", password: "password-1")
        }
        _ = try await client.createUser(userID: "srv", email: "srv@example.com", password: "password-1", credentials: admin)
        await assertAuthdError("user_auth_method_unsupported", 501) {
            try await self.client.createEmailPasswordSession(email: "srv@example.com", password: "password-1")
        }
        _ = try await update(["disabled_methods", "max_sessions", "duration", "user_limit"]) {
            $0.disabledMethods = []
            $0.maxSessions = 2
            $0.duration = 60
            $0.userLimit = 2
        }
        var secrets: [String] = []
        for _ in 0..<3 {
            let session = try await client.createEmailPasswordSession(email: "srv@example.com", password: "password-1")
            XCTAssertEqual(session.expire - session.createdAt, 60_000)
            secrets.append(session.secret)
        }
        await assertAuthdError("general_unauthorized_scope", 401) { try await self.client.getAccount(credentials: .session(secrets[0])) }
        let kept = try await client.getAccount(credentials: .session(secrets[2]))
        XCTAssertEqual(kept.id, "srv")

        _ = try await client.createAccount(email: "second@example.com", password: "password-1")
        await assertAuthdError("user_count_exceeded", 400) {
            try await self.client.createAccount(email: "third@example.com", password: "password-1")
        }
        // The limit binds the Account API, not the server (spec 4.1).
        _ = try await client.createUser(email: "third@example.com", credentials: admin)
    }

    func testAuthctlSettings() async throws {
        let run = daemon.authctl
        // This test's uid is no operator here: authctl is refused.
        let refused = try run(["settings", "get"])
        XCTAssertNotEqual(refused.0, 0)
        XCTAssertTrue(refused.1.contains("general_unauthorized_scope"), refused.1)

        let operatorDaemon = try await DaemonProcess.start(extraArguments: ["--set", "operator_uids=\(getuid())"])
        addTeardownBlock { await operatorDaemon.cleanUp() }
        let runOn = operatorDaemon.authctl
        let set = try runOn(["settings", "set", "password_history=4", "disabled_methods=anonymous,phone", "mock_numbers=+14155550100:123456"])
        XCTAssertEqual(set.0, 0, set.1)
        let got = try runOn(["settings", "get"])
        XCTAssertTrue(got.1.contains("\"password_history\": 4") || got.1.contains("\"password_history\":4"), got.1)
        XCTAssertTrue(got.1.contains("anonymous"), got.1)
        XCTAssertTrue(got.1.contains("123456"), got.1)
        let bad = try runOn(["settings", "set", "max_sessions=1000"])
        XCTAssertNotEqual(bad.0, 0)
        XCTAssertTrue(bad.1.contains("general_argument_invalid"), bad.1)
    }
}
