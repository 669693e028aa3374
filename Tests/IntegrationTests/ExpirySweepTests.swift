import AuthdClient
import AuthdStore
import Foundation
import XCTest

/// The daemon's expiry sweep: sessions and tokens whose expiry passed are deleted while it
/// runs, and the rest stay. Sessions last at least a minute, so the test moves expiries into
/// the past in the stored records while the daemon is stopped.
final class ExpirySweepTests: XCTestCase {
    var daemon: DaemonProcess?

    override func tearDown() async throws {
        await daemon?.cleanUp()
    }

    func testTheDaemonDeletesWhatExpiredAndKeepsTheRest() async throws {
        let daemon = try await DaemonProcess.start(extraArguments: [
            "--set", "operator_uids=\(getuid())", "--set", "expiry_sweep_interval=1",
        ])
        self.daemon = daemon
        var client = try await daemon.connect()
        _ = try await client.createUser(userID: "stale", email: "stale@example.com")
        _ = try await client.createUser(userID: "fresh", email: "fresh@example.com")
        let staleSession = try await client.createUserSession(userID: "stale")
        let freshSession = try await client.createUserSession(userID: "fresh")
        let staleToken = try await client.createUserToken(userID: "stale", expire: 60)
        let freshToken = try await client.createUserToken(userID: "fresh", expire: 600)
        // A second of sweeps over nothing expired deletes nothing.
        try await Task.sleep(for: .milliseconds(1500))
        let before = try await client.listUserSessions(userID: "stale").sessions.map(\.id)
        XCTAssertEqual(before, [staleSession.id])
        await client.close()
        try await daemon.stop()

        let store = try LMDBStore(directory: daemon.dataPath)
        try await store.write { w in
            var session = try XCTUnwrap(try w.session(id: staleSession.id))
            session.expire = 1_000
            try w.updateSession(session)
            // A token's expiry never changes through the API: this stands in for its time passing.
            var token = try XCTUnwrap(try w.token(id: staleToken.id))
            _ = try w.deleteToken(token)
            token.expire = 1_000
            try w.insertToken(token)
        }
        store.close()

        try await daemon.launch()
        client = try await daemon.connect()
        let deadline = Date().addingTimeInterval(15)
        while try await !client.listUserSessions(userID: "stale").sessions.isEmpty, Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let stale = try await client.listUserSessions(userID: "stale").sessions.map(\.id)
        XCTAssertEqual(stale, [], "the expired session went")
        let fresh = try await client.listUserSessions(userID: "fresh").sessions.map(\.id)
        XCTAssertEqual(fresh, [freshSession.id])
        // The token goes after the sessions, in the same sweep. The sweep counts as finished
        // later, after the rest that follows each part and after its change-log part: reading
        // the count as soon as the token went failed now and then (0 sweeps).
        var stats = try await client.stats()
        while stats.expiredTokensDeleted == 0 || stats.sweeps == 0, Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
            stats = try await client.stats()
        }
        XCTAssertEqual(stats.expiredSessionsDeleted, 1)
        XCTAssertEqual(stats.expiredTokensDeleted, 1)
        XCTAssertGreaterThanOrEqual(stats.sweeps, 1)
        XCTAssertEqual(stats.changesPruned, 0, "nothing is 14 days old")
        await client.close()
        let status = try await daemon.stop()
        XCTAssertEqual(status, 0, "the sweep stops with the daemon")

        let reopened = try LMDBStore(directory: daemon.dataPath)
        defer { reopened.close() }
        try reopened.read { r in
            XCTAssertNil(try r.token(id: staleToken.id), "the expired token went")
            XCTAssertNotNil(try r.token(id: freshToken.id))
        }
    }

    func testTheDaemonPrunesTheChangeLogPastItsRetention() async throws {
        let daemon = try await DaemonProcess.start(extraArguments: [
            "--set", "operator_uids=\(getuid())", "--set", "expiry_sweep_interval=1", "--set", "change_log_retention=1",
        ])
        self.daemon = daemon
        let client = try await daemon.connect()
        _ = try await client.createUser(userID: "early", email: "early@example.com")
        let session = try await client.createUserSession(userID: "early")
        let me = Credentials.session(session.secret)
        let before = try await client.listLogs(credentials: me)
        XCTAssertEqual(before.logs.map(\.event), ["session.create", "user.create"])
        // The log's newest entry stays whatever its age: this one is someone else's.
        _ = try await client.createUser(userID: "later", email: "later@example.com")
        let deadline = Date().addingTimeInterval(15)
        var after = before
        while !after.logs.isEmpty, Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
            after = try await client.listLogs(credentials: me)
        }
        XCTAssertEqual(after.logs.map(\.event), [], "entries older than a second went")
        XCTAssertEqual(after.total, 0)
        let stats = try await client.stats()
        XCTAssertGreaterThanOrEqual(stats.changesPruned, 2, "at least the user's two")
        _ = try await client.updateName("Early", credentials: me)
        let renamed = try await client.listLogs(credentials: me)
        XCTAssertEqual(renamed.logs.map(\.event), ["user.update"], "a new chain starts")
        await client.close()
    }
}
