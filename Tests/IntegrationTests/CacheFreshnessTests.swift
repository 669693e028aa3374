import AuthdClient
import XCTest

/// Each event loop keeps its own front of the session cache: a change acknowledged on one
/// connection shows at once on every other, whichever loop serves it.
final class CacheFreshnessTests: ClientTestCase {
    override var daemonArguments: [String] { ["--set", "event_loop_threads=2"] }

    func testAnAcknowledgedChangeShowsOnEveryLoop() async throws {
        _ = try await client.createAccount(userID: "ada", email: "ada@example.com", password: "password-1")
        let me = Credentials.session(
            try await client.createEmailPasswordSession(email: "ada@example.com", password: "password-1").secret)
        // Connections go to the loops in turn, so four of them reach both.
        var others: [AuthdClient] = []
        for _ in 0..<4 { others.append(try await daemon.connect()) }
        for round in 0..<5 {
            // Twice on every connection, so that each loop's front holds the session.
            for other in others {
                for _ in 0..<2 { _ = try await other.getAccount(credentials: me) }
            }
            let name = "Name \(round)"
            _ = try await client.updateName(name, credentials: me)
            for (index, other) in others.enumerated() {
                let seen = try await other.getAccount(credentials: me).name
                XCTAssertEqual(seen, name, "connection \(index), round \(round)")
            }
        }
        for other in others { await other.close() }
    }
}
