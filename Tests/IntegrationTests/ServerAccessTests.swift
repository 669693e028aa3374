import AuthdClient
import AuthdStore
import Foundation
import XCTest

/// Who may call as the server: API keys with scopes, mapped peers, operators.
final class ServerAccessTests: XCTestCase {
    var cleanUps: [DaemonProcess] = []

    override func tearDown() async throws {
        for daemon in cleanUps { await daemon.cleanUp() }
    }

    private func start(_ settings: [String]) async throws -> (DaemonProcess, AuthdClient) {
        let daemon = try await DaemonProcess.start(extraArguments: settings.flatMap { ["--set", $0] })
        cleanUps.append(daemon)
        return (daemon, try await daemon.connect())
    }

    func testAnOperatorPeerManagesKeysAndKeysCarryExactlyTheirScopes() async throws {
        let (_, client) = try await start(["operator_uids=\(getuid())"])
        let reader = try await client.createKey(name: "reader", scopes: ["users.read"])
        XCTAssertTrue(reader.secret.hasPrefix("authd_"))
        let writer = try await client.createKey(name: "writer", scopes: ["users.write", "users.read"])
        let listed = try await client.listKeys()
        XCTAssertEqual(Set(listed.keys.map(\.name)), ["reader", "writer"])
        XCTAssertTrue(listed.keys.allSatisfy { $0.secret.isEmpty }, "secrets are shown once")

        let created = try await client.createUser(userID: "k1", email: "k1@example.com", credentials: .apiKey(writer.secret))
        XCTAssertEqual(created.id, "k1")
        let read = try await client.getUser(userID: "k1", credentials: .apiKey(reader.secret))
        XCTAssertEqual(read.email, "k1@example.com")
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await client.createUser(userID: "k2", credentials: .apiKey(reader.secret))
        }
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await client.listKeys(credentials: .apiKey(writer.secret))
        }
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await client.getUser(userID: "k1", credentials: .apiKey("authd_" + String(repeating: "0", count: 64)))
        }
        await assertAuthdError("general_argument_invalid", 400) {
            try await client.createKey(name: "bad", scopes: ["users.read", "root.everything"])
        }

        _ = try await client.revokeKey(id: writer.id)
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await client.getUser(userID: "k1", credentials: .apiKey(writer.secret))
        }
        let stillReadable = try await client.getUser(userID: "k1", credentials: .apiKey(reader.secret))
        XCTAssertEqual(stillReadable.id, "k1")
    }

    func testExpiredKeysAreRejected() async throws {
        let (_, client) = try await start(["operator_uids=\(getuid())"])
        let soon = Int64(Date().timeIntervalSince1970 * 1000) + 300
        let key = try await client.createKey(name: "short", scopes: ["users.read"], expire: soon)
        _ = try await client.listUsers(credentials: .apiKey(key.secret))
        try await Task.sleep(for: .milliseconds(400))
        await assertAuthdError("project_key_expired", 401) {
            try await client.listUsers(credentials: .apiKey(key.secret))
        }
    }

    func testAMappedPeerNeedsNoKeyAndAnUnmappedOneIsAClient() async throws {
        let (_, mapped) = try await start(["peer_uid.\(getuid())=users.read,users.write"])
        let user = try await mapped.createUser(userID: "peer1", email: "peer1@example.com", password: "password-1")
        XCTAssertEqual(user.hash, "argon2", "server callers see the hash algorithm")
        let listed = try await mapped.listUsers()
        XCTAssertEqual(listed.total, 1)
        await assertAuthdError("general_unauthorized_scope", 401) { try await mapped.listKeys() }

        let (_, byGroup) = try await start(["peer_gid.\(getgid())=users.read"])
        _ = try await byGroup.listUsers()
        await assertAuthdError("general_unauthorized_scope", 401) { try await byGroup.createUser(userID: "x") }

        let (_, plain) = try await start([])
        for call in [
            { _ = try await plain.listUsers() },
            { _ = try await plain.createUser(userID: "nope") },
            { _ = try await plain.listKeys() },
        ] as [@Sendable () async throws -> Void] {
            await assertAuthdError("general_unauthorized_scope", 401) { try await call() }
        }
        // A signed-in user is not the server either.
        _ = try await plain.createAccount(userID: "u", email: "u@example.com", password: "password-1")
        let session = try await plain.createEmailPasswordSession(email: "u@example.com", password: "password-1")
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await plain.getUser(userID: "u", credentials: .session(session.secret))
        }
    }

    func testAMappedPeerRelaysItsEndUsersSessions() async throws {
        // Mapped peers relay their end users' sessions: the session wins over the peer mapping.
        let (_, client) = try await start(["peer_uid.\(getuid())=users.read,users.write,sessions.write"])
        _ = try await client.createUser(userID: "relay", email: "relay@example.com", password: "password-1")
        let session = try await client.createEmailPasswordSession(email: "relay@example.com", password: "password-1")
        XCTAssertFalse(session.current, "a server-made login is nobody's current session")
        let me = try await client.getAccount(credentials: .session(session.secret))
        XCTAssertEqual(me.id, "relay")
        XCTAssertEqual(me.hash, "", "a user never sees the hash algorithm")
    }

    func testAServerHoldsExactlyItsScopes() async throws {
        let (_, client) = try await start(["peer_uid.\(getuid())=users.read,users.write"])
        _ = try await client.createUser(userID: "nosessions", email: "ns@example.com", password: "password-1")
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await client.createEmailPasswordSession(email: "ns@example.com", password: "password-1")
        }
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await client.createAccount(email: "other@example.com", password: "password-1")
        }
    }

    func testTheChangeLogRecordsThePeersUIDAndPID() async throws {
        let (daemon, client) = try await start(["peer_uid.\(getuid())=users.write"])
        _ = try await client.createUser(userID: "audited", email: "audited@example.com")
        await client.close()
        let status = try await daemon.stop()
        XCTAssertEqual(status, 0)
        let store = try LMDBStore(directory: daemon.dataPath)
        defer { store.close() }
        let changes = try store.read { try $0.changes(after: 0, limit: 10) }
        let created = try XCTUnwrap(changes.first { $0.event == "users.audited.create" })
        XCTAssertEqual(created.actorType, "peer")
        XCTAssertEqual(created.actorID, "uid:\(getuid()),pid:\(getpid())")
    }

    func testAuthctlCreatesListsAndRevokesKeys() async throws {
        let daemon = try await DaemonProcess.start(extraArguments: ["--set", "operator_uids=\(getuid())"])
        cleanUps.append(daemon)
        let run = daemon.authctl
        let created = try run(["keys", "create", "--name", "ci", "--scopes", "users.read"])
        XCTAssertEqual(created.status, 0, created.output)
        let secret = try XCTUnwrap(created.output.split(separator: "\n").first { $0.hasPrefix("secret: ") }?.dropFirst(8))
        let id = try XCTUnwrap(created.output.split(separator: "\n").first { $0.hasPrefix("id: ") }?.dropFirst(4))
        let client = try await daemon.connect()
        _ = try await client.listUsers(credentials: .apiKey(String(secret)))
        let listed = try run(["keys", "list"])
        XCTAssertTrue(listed.output.contains("\(id)\tci\tactive"), listed.output)
        XCTAssertFalse(listed.output.contains(String(secret)), "list never shows a secret")
        XCTAssertEqual(try run(["keys", "revoke", String(id)]).status, 0)
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await client.listUsers(credentials: .apiKey(String(secret)))
        }
        let refused = try run(["keys", "create", "--name", "x", "--scopes", "no.such.scope"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.output.contains("general_argument_invalid"), refused.output)
    }
}
