import AuthdStore
import XCTest

@testable import AuthdCore

/// The expiry sweep against the real store, with a clock the test moves (sessions last an hour).
final class ExpirySweepTests: DomainTestCase {
    private func makeUser(_ id: String) async throws {
        _ = try await users.create(
            userID: id, email: "\(id)@example.com", phone: nil, password: nil, name: nil, call: server)
    }

    private func newSession(_ userID: String) async throws -> String {
        try await users.createSession(userID: userID, call: server).record.id
    }

    private func newToken(_ userID: String, seconds: Int) async throws -> String {
        try await users.createToken(userID: userID, length: nil, expire: seconds, call: server).0.id
    }

    /// As `Account/UpdateSession` extends a session: to now + the duration (an hour).
    private func extend(_ sessionID: String) async throws {
        let until = clock.now() + 3_600_000
        try await store.write { w in
            var session = try XCTUnwrap(try w.session(id: sessionID))
            session.expire = until
            try w.updateSession(session)
        }
    }

    func testExpiredSessionsAndTokensGoAndTheRestStay() async throws {
        try await makeUser("ann")
        try await makeUser("bob")
        let extended = try await newSession("ann")
        let expired = try await newSession("ann")
        let shortToken = try await newToken("ann", seconds: 60)
        clock.advance(seconds: 1800)
        let younger = try await newSession("ann")
        let bobs = try await newSession("bob")
        let longToken = try await newToken("bob", seconds: 7200)
        try await extend(extended)
        clock.advance(seconds: 1801)

        // One record per read: the walk goes on across parts of both tables.
        let sweep = ExpirySweep(directory: directory, readPool: pool, recordsPerRead: 1)
        let outcome = try await sweep.run()
        XCTAssertEqual(sweep.totals.sweeps, 1)
        XCTAssertEqual(sweep.totals.deleted, outcome, "the totals add up each part's")

        XCTAssertEqual(outcome, ExpirySweep.Outcome(sessions: 1, tokens: 1))
        XCTAssertEqual(try store.read { try $0.sessionIDs(userID: "ann") }, [extended, younger])
        XCTAssertEqual(try store.read { try $0.sessionIDs(userID: "bob") }, [bobs])
        XCTAssertNil(try store.read { try $0.session(id: expired) })
        XCTAssertNil(try store.read { try $0.token(id: shortToken) })
        XCTAssertNotNil(try store.read { try $0.token(id: longToken) })
        let logged = try store.read { try $0.changes(userID: "ann", before: nil, offset: 0, limit: 1) }.entries
        XCTAssertEqual(logged.first?.event, "users.ann.sessions.\(expired).delete")
        XCTAssertEqual(logged.first?.auditEvent, "session.delete")
        XCTAssertEqual(logged.first?.actorType, "system")

        let again = try await ExpirySweep(directory: directory, readPool: pool).run()
        XCTAssertEqual(again, ExpirySweep.Outcome(), "nothing left to delete")
    }

    func testASessionGoesByItsOwnExpiryNotItsCreationTime() async throws {
        // Appwrite's maintenance purges by creation time, so an extended session dies early
        // (spec quirk 14).
        try await makeUser("cy")
        let session = try await newSession("cy")
        clock.advance(seconds: 3000)
        try await extend(session)
        clock.advance(seconds: 3000)
        let early = try await ExpirySweep(directory: directory, readPool: pool).run()
        XCTAssertEqual(early, ExpirySweep.Outcome())
        XCTAssertEqual(try store.read { try $0.sessionIDs(userID: "cy") }, [session])
        clock.advance(seconds: 601)
        let late = try await ExpirySweep(directory: directory, readPool: pool).run()
        XCTAssertEqual(late, ExpirySweep.Outcome(sessions: 1))
        XCTAssertEqual(try store.read { try $0.sessionIDs(userID: "cy") }, [])
    }

    func testTheChangeLogKeepsEntriesForItsRetention() async throws {
        try await makeUser("eve")
        _ = try await newSession("eve")
        clock.advance(seconds: 14 * 86_400 + 1)
        _ = try await newSession("eve")
        let before = try store.read { try $0.changes(userID: "eve", before: nil, offset: 0, limit: 10) }
        XCTAssertEqual(before.total, 3)

        // The first session expired (it lasted an hour): its deletion adds an entry.
        let kept = try await ExpirySweep(directory: directory, readPool: pool).run()
        XCTAssertEqual(kept, ExpirySweep.Outcome(sessions: 1), "no retention: every entry stays")
        XCTAssertEqual(try store.read { try $0.changes(userID: "eve", before: nil, offset: 0, limit: 10) }.total, 4)
        let outcome = try await ExpirySweep(directory: directory, readPool: pool, changeLogRetentionSeconds: 14 * 86_400, recordsPerRead: 1, changesPerWrite: 1).run()
        XCTAssertEqual(outcome, ExpirySweep.Outcome(changes: 2), "the user's creation and first sign-in")
        let after = try store.read { try $0.changes(userID: "eve", before: nil, offset: 0, limit: 10) }
        XCTAssertEqual(after.entries.map(\.auditEvent), ["session.delete", "session.create"])
        XCTAssertEqual(after.total, 2)
    }
}
