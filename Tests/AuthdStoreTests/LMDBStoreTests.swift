import AuthdStore
import Foundation
import Synchronization
import XCTest

final class LMDBStoreTests: StoreTestCase {

    func testUsersAndTheEmailIndex() async throws {
        try await store.write { w in try w.insertUser(sampleUser("u1", email: "a@example.com")) }
        let (byID, byEmail) = try store.read { r in (try r.user(id: "u1"), try r.userID(email: "a@example.com")) }
        XCTAssertEqual(byID?.name, "name of u1")
        XCTAssertEqual(byEmail, "u1")

        var changed = try XCTUnwrap(byID)
        changed.email = "b@example.com"
        try await store.write { [changed] w in try w.updateUser(changed) }
        let (old, new) = try store.read { r in (try r.userID(email: "a@example.com"), try r.userID(email: "b@example.com")) }
        XCTAssertNil(old, "the old email is free again")
        XCTAssertEqual(new, "u1")
    }

    func testUniqueIDAndEmailAreEnforcedInTheWriteTransaction() async throws {
        try await store.write { w in try w.insertUser(sampleUser("u1", email: "a@example.com")) }
        for duplicate in [sampleUser("u1", email: "other@example.com"), sampleUser("u2", email: "a@example.com")] {
            do {
                try await store.write { w in try w.insertUser(duplicate) }
                XCTFail("inserted a duplicate")
            } catch let error as StoreError {
                XCTAssertEqual(error.kind, .duplicate)
            }
        }
        try await store.write { w in try w.insertUser(sampleUser("u2", email: "c@example.com")) }
        var moved = sampleUser("u2", email: "a@example.com")
        moved.name = "moved"
        do {
            try await store.write { [moved] w in try w.updateUser(moved) }
            XCTFail("took another user's email")
        } catch let error as StoreError {
            XCTAssertEqual(error.kind, .duplicate)
        }
        XCTAssertEqual(try store.read { try $0.user(id: "u2")?.email }, "c@example.com")
    }

    func testSessionsAndTheirIndexes() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            try w.insertSession(sampleSession("s2", user: "u1", at: 2_000, secretByte: 2))
            try w.insertSession(sampleSession("s1", user: "u1", at: 1_000, secretByte: 1))
            try w.insertSession(sampleSession("s3", user: "u1", at: 3_000, secretByte: 3))
        }
        let ids = try store.read { try $0.sessions(userID: "u1").map(\.id) }
        XCTAssertEqual(ids, ["s1", "s2", "s3"], "oldest first, whatever the insertion order")
        XCTAssertEqual(try store.read { try $0.sessions(userID: "u1", limit: 2).map(\.id) }, ["s1", "s2"], "the oldest ones")
        XCTAssertEqual(try store.read { try $0.sessions(userID: "u1", limit: 5).map(\.id) }, ["s1", "s2", "s3"])
        XCTAssertEqual(try store.read { try $0.session(secretHash: [UInt8](repeating: 2, count: 32), locator: 0)?.id }, "s2")

        let deleted = try await store.write { w in try w.deleteSession(id: "s2") }
        XCTAssertTrue(deleted)
        let (list, bySecret, record) = try store.read { r in
            (try r.sessions(userID: "u1").map(\.id), try r.session(secretHash: [UInt8](repeating: 2, count: 32), locator: 0)?.id,
             try r.session(id: "s2"))
        }
        XCTAssertEqual(list, ["s1", "s3"])
        XCTAssertNil(bySecret)
        XCTAssertNil(record)
        let again = try await store.write { w in try w.deleteSession(id: "s2") }
        XCTAssertFalse(again)

        // A second session with a taken id is refused whole: the first keeps its indexes.
        do {
            try await store.write { w in try w.insertSession(sampleSession("s1", user: "u1", at: 9_000, secretByte: 9)) }
            XCTFail("inserted a session with a taken id")
        } catch let error as StoreError {
            XCTAssertEqual(error.kind, .duplicate)
            XCTAssertEqual(error.detail, "session id")
        }
        let (kept, taken) = try store.read { r in
            (try r.session(id: "s1")?.createdAt, try r.session(secretHash: [UInt8](repeating: 9, count: 32), locator: 0)?.id)
        }
        XCTAssertEqual(kept, 1_000)
        XCTAssertNil(taken)
    }

    func testTheWriterThreadCarriesItsNameInTheKernel() async throws {
        // The writer names itself when it starts; a write waits for it to run.
        try await store.write { w in try w.insertUser(sampleUser("u1")) }
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")
        let names = tasks.compactMap { try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8) }
        XCTAssertTrue(names.contains("authd-writer\n"), "what top -H and perf show: \(Set(names))")
    }

    func testTheWriterThreadRunsAtItsNiceValueAndTheAcknowledgementsApart() async throws {
        guard geteuid() == 0 else { throw XCTSkip("raising a thread's priority needs root here") }
        store.close()
        store = try LMDBStore(directory: directory, options: LMDBStore.Options(writerNice: -3))
        try await store.write { w in try w.insertUser(sampleUser("u1")) }
        // The nice value is field 19 of a thread's stat, the 18th after the name's parenthesis.
        let threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap { task -> (String, Int)? in
            guard let name = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
                let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            return (name.trimmingCharacters(in: .newlines), Int(stat[close...].split(separator: " ")[17]) ?? 99)
        }
        XCTAssertTrue(threads.contains { $0 == ("authd-writer", -3) }, "\(threads)")
        // The acknowledging thread keeps the nice value of the thread that opened the store.
        XCTAssertTrue(threads.contains { $0.0 == "authd-acks" && $0.1 != -3 }, "\(threads)")
    }

    func testALocatedSessionIsFoundByItsLocatorAndHashTogether() async throws {
        var session = sampleSession("s1", user: "u1", at: 1_000, secretByte: 4)
        session.secretLocator = 1_000_000
        try await store.write { [session] w in
            try w.insertUser(sampleUser("u1"))
            try w.insertSession(session)
        }
        let hash = [UInt8](repeating: 4, count: 32)
        try store.read { r in
            XCTAssertEqual(try r.session(secretHash: hash, locator: 1_000_000)?.id, "s1")
            XCTAssertNil(try r.session(secretHash: hash, locator: 0)?.id, "the hash alone is not its key")
            XCTAssertNil(try r.session(secretHash: hash, locator: 999_999)?.id)
            XCTAssertEqual(try r.session(id: "s1")?.secretLocator, 1_000_000)
        }
        let deleted = try await store.write { w in try w.deleteSession(id: "s1") }
        XCTAssertTrue(deleted)
        XCTAssertNil(try store.read { try $0.session(secretHash: hash, locator: 1_000_000)?.id })
    }

    func testOneUsersChangesSessionsAndTokensDoNotMix() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            try w.insertSession(sampleSession("s1", user: "u1", at: 1_000, secretByte: 1))
            try w.insertToken(TokenRecord(id: "t1", userID: "u1", type: 8, secretHash: [5], createdAt: 1, expire: 2))
            try w.appendChange(sampleChange("users.u1.update.name", user: "u1"))
            try w.appendChange(sampleChange("users.u1.update.email", user: "u1"))
        }
        try store.read { r in
            XCTAssertEqual(try r.sessions(userID: "u1").map(\.id), ["s1"])
            XCTAssertEqual(try r.tokens(userID: "u1").map(\.id), ["t1"])
            let (entries, total) = try r.changes(userID: "u1", before: nil, offset: 0, limit: 10)
            XCTAssertEqual(entries.map(\.event), ["users.u1.update.email", "users.u1.update.name"])
            XCTAssertEqual(total, 2)
        }
    }

    func testASessionReadInTheWriteIsDeletedWithItsIndexEntries() async throws {
        var session = sampleSession("s1", user: "u1", at: 1_000, secretByte: 3)
        session.secretLocator = 1_000_000
        let stored = session
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            try w.insertSession(stored)
            try w.insertSession(sampleSession("s2", user: "u1", at: 2_000, secretByte: 4))
        }
        try await store.write { w in
            let read = try XCTUnwrap(try w.session(id: "s1"))
            try w.deleteSession(read.keys)
        }
        try store.read { r in
            XCTAssertNil(try r.session(id: "s1"))
            XCTAssertNil(try r.session(secretHash: stored.secretHash, locator: 1_000_000)?.id)
            XCTAssertEqual(try r.sessions(userID: "u1").map(\.id), ["s2"], "the other session stays")
        }
    }


    func testTheExpiryWalkFindsTheLiveExpiredSessionsAPartAtATime() async throws {
        // sampleSession lasts 60 s from its creation time.
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            try w.insertSession(sampleSession("s1", user: "u1", at: 1_000, secretByte: 1))
            try w.insertSession(sampleSession("s2", user: "u1", at: 2_000, secretByte: 2))
            try w.insertSession(sampleSession("s3", user: "u1", at: 100_000, secretByte: 3))
            try w.insertSession(sampleSession("s4", user: "u1", at: 3_000, secretByte: 4))
        }
        // Deleted: its record waits for the retired sweep, but it is no longer the expiry's.
        try await store.write { w in _ = try w.deleteSession(id: "s2") }
        let now: Int64 = 70_000
        try store.read { r in
            let first = try r.expiredSessions(after: nil, before: now, limit: 2)
            XCTAssertEqual(first.expired.map(\.id), ["s1"])
            XCTAssertEqual(first.next, "s2")
            let second = try r.expiredSessions(after: first.next, before: now, limit: 2)
            XCTAssertEqual(second.expired.map(\.id), ["s4"], "s3 has not expired")
            XCTAssertNil(second.next, "the walk is at the end")
            XCTAssertEqual(try r.expiredSessions(after: nil, before: now, limit: 10).expired.map(\.id), ["s1", "s4"])
            XCTAssertEqual(
                try r.expiredSessions(after: nil, before: 63_000, limit: 10).expired.map(\.id), ["s1"],
                "a session expiring exactly now is still valid")
            XCTAssertEqual(try r.expiredSessions(after: "s4", before: now, limit: 10).expired.map(\.id), [])
        }
    }

    func testTheExpiryWalkFindsTheExpiredTokens() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            for (id, expire) in [("t1", Int64(50)), ("t2", 500), ("t3", 10)] {
                try w.insertToken(TokenRecord(id: id, userID: "u1", type: 8, secretHash: [1], createdAt: 1, expire: expire))
            }
        }
        try store.read { r in
            let first = try r.expiredTokens(after: nil, before: 100, limit: 1)
            XCTAssertEqual(first.expired.map(\.id), ["t1"])
            XCTAssertEqual(first.next, "t1")
            let rest = try r.expiredTokens(after: first.next, before: 100, limit: 5)
            XCTAssertEqual(rest.expired.map(\.id), ["t3"])
            XCTAssertNil(rest.next)
        }
    }

    private static func logged(_ userID: String, at time: Int64, _ w: any StoreWriter) throws {
        try w.appendChange(ChangeRecord(time: time, event: "e\(time)", auditEvent: "user.update", resource: "user/\(userID)", userID: userID))
    }

    private func history(_ userID: String) throws -> (times: [Int64], total: Int) {
        let page = try store.read { try $0.changes(userID: userID, before: nil, offset: 0, limit: 100) }
        return (page.entries.map(\.time), page.total)
    }

    func testPruningTheChangeLogKeepsEachUsersCountInStep() async throws {
        try await store.write { w in
            for (user, time) in [("u1", Int64(1)), ("u2", 2), ("u1", 3), ("", 4), ("gone", 5), ("u1", 10), ("u2", 11)] {
                try Self.logged(user, at: time, w)
            }
        }
        let first = try await store.write { w in try w.pruneChanges(before: 6, limit: 2) }
        XCTAssertEqual(first.pruned, 2)
        XCTAssertTrue(first.more)
        let rest = try await store.write { w in try w.pruneChanges(before: 6, limit: 10) }
        XCTAssertEqual(rest.pruned, 3)
        XCTAssertFalse(rest.more)
        XCTAssertEqual(try history("u1").times, [10])
        XCTAssertEqual(try history("u1").total, 1)
        XCTAssertEqual(try history("u2").times, [11])
        XCTAssertEqual(try history("u2").total, 1)
        XCTAssertEqual(try history("gone").total, 0, "a chain pruned whole loses its head")
        XCTAssertEqual(try store.read { try $0.changes(after: 0, limit: 10) }.map(\.time), [10, 11])
        try await store.write { w in try Self.logged("gone", at: 12, w) }
        XCTAssertEqual(try history("gone").times, [12], "a new chain starts")
        XCTAssertEqual(try history("gone").total, 1)
    }

    /// A pending head (a token's creation was the user's newest change) is the one the prune
    /// keeps in step.
    func testPruningKeepsAPendingHeadInStep() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            try Self.logged("u1", at: 1, w)
        }
        for (id, time) in [("t1", Int64(2)), ("t2", 20)] {
            let token = TokenRecord(id: id, userID: "u1", type: 8, secretHash: [5], createdAt: time, expire: 100)
            let change = ChangeRecord(time: time, event: "e\(time)", auditEvent: "tokens.create", resource: "user/u1", userID: "u1")
            _ = try await store.write { w in try w.insertToken(Encoded(token), appending: PreparedChange(change)) }
        }
        XCTAssertEqual(try history("u1").total, 3)
        let pruned = try await store.write { w in try w.pruneChanges(before: 10, limit: 10) }
        XCTAssertEqual(pruned.pruned, 2)
        XCTAssertEqual(try history("u1").times, [20])
        XCTAssertEqual(try history("u1").total, 1)
        try await store.write { w in try Self.logged("u1", at: 30, w) }
        XCTAssertEqual(try history("u1").times, [30, 20], "the chain goes on from the pending head")
        XCTAssertEqual(try history("u1").total, 2)
    }

    func testPruningLeavesTheNewestEntryWhateverItsAge() async throws {
        try await store.write { w in
            try Self.logged("u1", at: 1, w)
            try Self.logged("u1", at: 2, w)
        }
        let pruned = try await store.write { w in try w.pruneChanges(before: 100, limit: 10) }
        XCTAssertEqual(pruned.pruned, 1)
        let next = try await store.write { w in try w.appendChange(ChangeRecord(time: 3, event: "e", auditEvent: "", resource: "", userID: "")) }
        XCTAssertEqual(next, 3, "sequences go on from the last")
        XCTAssertEqual(try history("u1").times, [2])
    }

    func testPruningADeletedUsersEntriesLeavesTheRecreatedUsersCount() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            for time in Int64(1)...3 { try Self.logged("u1", at: time, w) }
        }
        try await store.write { w in _ = try w.deleteUser(id: "u1") }
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            for time in [Int64(4), 20, 21] { try Self.logged("u1", at: time, w) }
        }
        XCTAssertEqual(try history("u1").total, 3, "the re-created user's chain alone")
        let pruned = try await store.write { w in try w.pruneChanges(before: 10, limit: 10) }
        XCTAssertEqual(pruned.pruned, 4)
        XCTAssertEqual(try history("u1").times, [21, 20])
        XCTAssertEqual(try history("u1").total, 2)
    }

    func testAUsersStatusIsReadAsTheWholeRecordWouldGiveIt() async throws {
        // Fields of every wire type around the status, so that skipping them is exercised.
        var rich = sampleUser("rich", email: "rich@example.com", at: 1_700_000_000_000)
        rich.labels = ["vip", "beta"]
        rich.passwordHash = String(repeating: "h", count: 300)
        rich.passwordHistory = ["a", "b"]
        rich.prefs = #"{"theme":"dark"}"#
        rich.mfa = true
        rich.accessedAt = -5
        var blocked = rich
        blocked.id = "blocked"
        blocked.email = "blocked@example.com"
        blocked.status = false
        let users = [rich, blocked]
        try await store.write { w in
            for user in users { try w.insertUser(user) }
            try w.insertUser(sampleUser("plain"))
        }
        try store.read { r in
            for id in ["rich", "blocked", "plain"] {
                XCTAssertEqual(try r.userStatus(id: id), try r.user(id: id)?.status, id)
            }
            XCTAssertEqual(try r.userStatus(id: "blocked"), false)
            XCTAssertEqual(try r.userStatus(id: "rich"), true)
            XCTAssertNil(try r.userStatus(id: "nobody"))
        }
    }

    /// Read transactions are reset and renewed rather than begun anew: each renewal must take
    /// a fresh snapshot, also when more reads run at once than are kept idle.
    func testRenewedReadTransactionsSeeEveryCommit() async throws {
        let store = self.store!
        for round in 1...50 {
            try await store.write { w in try w.insertUser(sampleUser("u\(round)")) }
            let counts = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<100 {
                    group.addTask { try store.read { try $0.userCount() } }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            XCTAssertEqual(Set(counts), [round], "round \(round)")
        }
        // Reads nested in a read take transactions of their own.
        let nested = try store.read { outer in
            try (outer.userCount(), store.read { try $0.userCount() })
        }
        XCTAssertEqual(nested.0, 50)
        XCTAssertEqual(nested.1, 50)
    }

    func testATokenReadEarlierIsDeletedOnceWithItsIndexEntry() async throws {
        let token = TokenRecord(id: "t1", userID: "u1", type: 8, secretHash: [5], createdAt: 1, expire: 2)
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            try w.insertToken(token)
            try w.insertToken(TokenRecord(id: "t2", userID: "u1", type: 8, secretHash: [6], createdAt: 1, expire: 2))
        }
        // Two redemptions of one token: the first deletes it, the second finds it gone.
        let first = try await store.write { w in try w.deleteToken(token) }
        let second = try await store.write { w in try w.deleteToken(token) }
        XCTAssertTrue(first)
        XCTAssertFalse(second)
        try store.read { r in
            XCTAssertNil(try r.token(id: "t1"))
            XCTAssertEqual(try r.tokens(userID: "u1").map(\.id), ["t2"], "the index entry went with it, the other stays")
        }
    }

    func testATokenIsFoundByItsSecretAmongItsUsersOthers() async throws {
        @Sendable func token(_ id: String, _ user: String, _ hash: [UInt8], expire: Int64) -> TokenRecord {
            var token = TokenRecord(id: id, userID: user, type: 8, secretHash: hash, createdAt: 1, expire: expire)
            token.ip = "10.0.0.\(id.count)"
            return token
        }
        let first = token("t1", "u1", [1, 2, 3], expire: 100)
        let expiresSoon = token("t2", "u1", [4, 5, 6], expire: 50)
        let sameSecretLater = token("t3", "u1", [4, 5, 6], expire: 200)
        let other = token("t4", "u2", [7, 8, 9], expire: 100)
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            try w.insertUser(sampleUser("u2"))
            for t in [first, expiresSoon, sameSecretLater, other] { try w.insertToken(t) }
        }
        try store.read { r in
            XCTAssertEqual(try r.token(userID: "u1", secretHash: [1, 2, 3], validAt: 100), first, "decoded whole")
            XCTAssertNil(try r.token(userID: "u1", secretHash: [1, 2, 3], validAt: 101), "expired")
            XCTAssertEqual(try r.token(userID: "u1", secretHash: [4, 5, 6], validAt: 40)?.id, "t2", "the first that matches")
            XCTAssertEqual(try r.token(userID: "u1", secretHash: [4, 5, 6], validAt: 60)?.id, "t3", "the expired one is passed over")
            XCTAssertNil(try r.token(userID: "u1", secretHash: [7, 8, 9], validAt: 0), "another user's token")
            XCTAssertNil(try r.token(userID: "u1", secretHash: [1, 2], validAt: 0), "a prefix of a secret's hash")
            XCTAssertNil(try r.token(userID: "nobody", secretHash: [1, 2, 3], validAt: 0))
            XCTAssertEqual(try r.tokens(userID: "u1"), [first, expiresSoon, sameSecretLater], "in id order")
            XCTAssertEqual(try r.tokens(userID: "u1", limit: 2), [first, expiresSoon], "the first of them")
            XCTAssertEqual(try r.tokens(userID: "u1", limit: 0), [])
        }
    }

    /// A scan with a look at each user's text fields first: the fields are the record's, and
    /// only the users let through are decoded and visited.
    func testAScanLooksAtTheStoredFieldsBeforeDecodingAUser() async throws {
        var ann = sampleUser("u1", email: "ann@example.com", at: 1_764_890_000_000)
        ann.phone = "+14155550100"
        ann.labels = ["vip", "staff"]
        ann.prefs = #"{"theme":"dark"}"#
        ann.status = false
        ann.updatedAt = 1_764_950_000_123
        ann.passwordUpdate = 1_764_950_000_456
        ann.registration = 1_764_900_000_000
        ann.emailVerification = true
        ann.phoneVerification = true
        ann.accessedAt = 1_764_950_001_000
        ann.impersonator = true
        let bob = sampleUser("u2", email: "bob@example.com")
        var zoe = sampleUser("u3")
        zoe.name = "Zoë"
        zoe.emailVerification = true  // one flag of two, so that each is read from its own field
        try await store.write { [ann, bob, zoe] w in for user in [ann, bob, zoe] { try w.insertUser(user) } }
        /// The numbers and flags as `UserFields` reads them, or as the decoded user holds them.
        func scalars(_ f: UserFields) -> [Int64] {
            [f.createdAt, f.updatedAt, f.status ? 1 : 0, f.passwordUpdate, f.registration, f.emailVerification ? 1 : 0,
             f.phoneVerification ? 1 : 0, f.accessedAt, f.impersonator ? 1 : 0]
        }
        func scalars(_ u: UserRecord) -> [Int64] {
            [u.createdAt, u.updatedAt, u.status ? 1 : 0, u.passwordUpdate, u.registration, u.emailVerification ? 1 : 0,
             u.phoneVerification ? 1 : 0, u.accessedAt, u.impersonator ? 1 : 0]
        }
        try store.read { r in
            var seen: [[String]] = []
            var seenScalars: [[Int64]] = []
            var visited: [UserRecord] = []
            try r.forEachUser(after: nil, mayMatch: { fields in
                let strings = [fields.id, fields.name, fields.email, fields.phone] + fields.labels
                seen.append(strings.map { String(decoding: $0, as: UTF8.self) })
                seenScalars.append(scalars(fields))
                return String(decoding: fields.name, as: UTF8.self) != "name of u2"
            }) { user in
                visited.append(user)
                return true
            }
            XCTAssertEqual(seen, [
                ["u1", "name of u1", "ann@example.com", "+14155550100", "vip", "staff"],
                ["u2", "name of u2", "bob@example.com", ""],
                ["u3", "Zoë", "", ""],
            ])
            XCTAssertEqual(seenScalars, [ann, bob, zoe].map(scalars), "the numbers and flags, as decoding reads them")
            XCTAssertTrue(zip(scalars(ann), scalars(bob)).allSatisfy { $0 != $1 }, "ann's differ from bob's in each: \(scalars(ann)) \(scalars(bob))")
            XCTAssertEqual(visited, [ann, zoe], "the users let through, decoded whole")
            visited = []
            try r.forEachUser(after: "u1", mayMatch: { _ in true }) { user in
                visited.append(user)
                return false
            }
            XCTAssertEqual(visited.map(\.id), ["u2"], "after a user, and stopped when asked")
            var fieldsSeen: [String] = []
            var fieldsScalars: [[Int64]] = []
            try r.forEachUserFields(reversed: false) { fields in
                fieldsSeen.append(String(decoding: fields.id, as: UTF8.self))
                fieldsScalars.append(scalars(fields))
                return true
            }
            XCTAssertEqual(fieldsSeen, ["u1", "u2", "u3"], "every user's fields, none decoded")
            XCTAssertEqual(fieldsScalars, seenScalars)
            fieldsSeen = []
            try r.forEachUserFields(reversed: true) { fields in
                fieldsSeen.append(String(decoding: fields.id, as: UTF8.self))
                return fieldsSeen.count < 2
            }
            XCTAssertEqual(fieldsSeen, ["u3", "u2"], "from the last back, and stopped when asked")
        }
    }

    func testOnlyTheSessionsBeyondTheNewestAreReadForATrim() async throws {
        let sessions = ["s1", "s2", "s3", "s4"].enumerated().map { index, id in
            var session = sampleSession(id, user: "u1", at: Int64(1_000 * (index + 1)), secretByte: UInt8(index + 1))
            session.secretLocator = index == 2 ? 0 : UInt64(index + 1) << 40  // one made before locators
            session.ip = "10.0.0.1"
            session.factors = ["password"]
            return session
        }
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            for session in sessions { try w.insertSession(session) }
        }
        try await store.write { w in
            let oldest = try XCTUnwrap(try w.session(id: "s1"))
            try w.deleteSession(oldest.keys)
        }
        try store.read { r in
            XCTAssertEqual(try r.sessionKeys(userID: "u1", beyondNewest: 1, atMost: .max).map(\.id), ["s2", "s3"], "oldest first; a deleted one is not live")
            XCTAssertEqual(try r.sessionKeys(userID: "u1", beyondNewest: 3, atMost: .max).map(\.id), [])
            XCTAssertEqual(try r.sessionKeys(userID: "u1", beyondNewest: 10, atMost: .max).map(\.id), [])
            XCTAssertEqual(try r.sessionKeys(userID: "u1", beyondNewest: 0, atMost: .max), sessions.dropFirst().map(\.keys), "what the records hold")
            // A part of them: the oldest, and never one of the newest `keeping`.
            XCTAssertEqual(try r.sessionKeys(userID: "u1", beyondNewest: 0, atMost: 2).map(\.id), ["s2", "s3"])
            XCTAssertEqual(try r.sessionKeys(userID: "u1", beyondNewest: 1, atMost: 1).map(\.id), ["s2"])
            XCTAssertEqual(try r.sessionKeys(userID: "u1", beyondNewest: 2, atMost: 5).map(\.id), ["s2"])
            XCTAssertEqual(try r.sessionKeys(userID: "u1", beyondNewest: 1, atMost: 0).map(\.id), [])
        }
        // The keys read for a trim end the session as its whole record would.
        try await store.write { w in
            for keys in try w.sessionKeys(userID: "u1", beyondNewest: 1, atMost: .max) { try w.deleteSession(keys) }
        }
        try store.read { r in
            XCTAssertEqual(try r.sessionIDs(userID: "u1"), ["s4"])
            for session in sessions.dropLast() {
                XCTAssertNil(try r.session(secretHash: session.secretHash, locator: session.secretLocator), session.id)
            }
        }
    }
    func testChangesPageNewestFirstFromAnyBound() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            try w.insertUser(sampleUser("u2"))
            for i in 1...51 {
                try w.appendChange(sampleChange("users.u1.update.name.\(i)", user: "u1"))
                if i % 10 == 0 { try w.appendChange(sampleChange("users.u2.update.name", user: "u2")) }
            }
        }
        try store.read { r in
            let u1 = try r.changes(userID: "u1", before: nil, offset: 0, limit: 100).entries.map(\.sequence)
            XCTAssertEqual(u1.count, 51)
            XCTAssertEqual(u1, u1.sorted(by: >))
            XCTAssertEqual(try r.changes(userID: "u1", before: nil, offset: 0, limit: 0).total, 51)
            XCTAssertEqual(try r.changes(userID: "u2", before: nil, offset: 0, limit: 100).entries.map(\.sequence), [55, 44, 33, 22, 11])
            // A bound that is one of the user's entries, one that is another user's, and offsets.
            XCTAssertEqual(try r.changes(userID: "u1", before: u1[1], offset: 1, limit: 2).entries.map(\.sequence), [u1[3], u1[4]])
            XCTAssertEqual(try r.changes(userID: "u1", before: 44, offset: 0, limit: 2).entries.map(\.sequence), [43, 42])
            XCTAssertEqual(try r.changes(userID: "u1", before: 1_000, offset: 0, limit: 1).entries.map(\.sequence), [u1[0]])
            XCTAssertEqual(try r.changes(userID: "u1", before: 2, offset: 0, limit: 5).entries.map(\.sequence), [1])
            XCTAssertEqual(try r.changes(userID: "u1", before: 1, offset: 0, limit: 5).entries.count, 0)
            XCTAssertEqual(try r.changes(userID: "u1", before: 0, offset: 0, limit: 5).entries.count, 0)
            XCTAssertEqual(try r.changes(userID: "u1", before: nil, offset: 60, limit: 5).entries.count, 0)
            XCTAssertEqual(try r.changes(userID: "nobody", before: nil, offset: 0, limit: 5).total, 0)
        }
    }

    func testSessionsOfOneUserDoNotLeakIntoAnotherWithAPrefixID() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("ab"))
            try w.insertUser(sampleUser("a"))
            try w.insertSession(sampleSession("s-ab", user: "ab", at: 1, secretByte: 1))
            try w.insertSession(sampleSession("s-a", user: "a", at: 2, secretByte: 2))
        }
        XCTAssertEqual(try store.read { try $0.sessions(userID: "a").map(\.id) }, ["s-a"])
        XCTAssertEqual(try store.read { try $0.sessions(userID: "ab").map(\.id) }, ["s-ab"])
    }

    func testSessionNeedsAnExistingUser() async throws {
        do {
            try await store.write { w in try w.insertSession(sampleSession("s", user: "ghost", at: 1, secretByte: 9)) }
            XCTFail("stored a session of no user")
        } catch let error as StoreError {
            XCTAssertEqual(error.kind, .notFound)
        }
    }

    func testAFailedWriteLeavesNothingBehindAndDoesNotDisturbItsBatch() async throws {
        struct Refused: Error {}
        let store = self.store!
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<40 {
                group.addTask {
                    do {
                        try await store.write { w in
                            try w.insertUser(sampleUser("user\(i)"))
                            try w.appendChange(sampleChange("users.user\(i).create", user: "user\(i)"))
                            if i % 4 == 0 { throw Refused() }
                        }
                        return true
                    } catch {
                        return false
                    }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        XCTAssertEqual(outcomes.filter { $0 }.count, 30)
        let (users, changes) = try store.read { r in
            (try (0..<40).filter { try r.user(id: "user\($0)") != nil }, try r.changes(after: 0, limit: 100))
        }
        XCTAssertEqual(users, (0..<40).filter { $0 % 4 != 0 })
        XCTAssertEqual(changes.count, 30, "a refused write appends no change either")
        XCTAssertEqual(changes.map(\.sequence), Array(1...30), "sequence numbers have no gaps")
    }

    func testALoneWriteWaitsForTheWriteExpectedNextAndOneCommitServesBoth() async throws {
        let store = self.store!
        // The hint says a write comes within 200 ms; it tells the test when the writer asked.
        let asked = DispatchSemaphore(value: 0)
        store.letLoneWritesWait(upTo: .milliseconds(500)) {
            asked.signal()
            return .milliseconds(200)
        }
        // A write not made to wait commits at once, whatever is expected.
        let before = try store.statistics()
        try await store.write { w in try w.insertUser(sampleUser("unhinted")) }
        let unhinted = try store.statistics()
        XCTAssertEqual(unhinted.commits - before.commits, 1)
        XCTAssertEqual(unhinted.commitsWaitedForCompany, 0)
        let first = Task {
            try await WriteCompany.$mayWait.withValue(true) { try await store.write { w in try w.insertUser(sampleUser("first")) } }
        }
        // The first write is alone and may wait: the writer waits for the one expected.
        XCTAssertEqual(asked.wait(timeout: .now() + 10), .success, "the writer did not ask when the next write comes")
        try await store.write { w in try w.insertUser(sampleUser("second")) }
        try await first.value
        let after = try store.statistics()
        XCTAssertEqual(after.writes - unhinted.writes, 2)
        XCTAssertEqual(after.commits - unhinted.commits, 1, "the second write joined the first's commit")
        XCTAssertEqual(after.commitsWaitedForCompany, 1)
        XCTAssertNotNil(try store.read { r in try r.user(id: "first") })
    }

    func testALoneWriteCommitsAtOnceWhenNoWriteIsExpectedSoonEnough() async throws {
        let store = self.store!
        // Past the longest wait, or none expected at all: each write commits alone.
        let expected = Mutex<Duration?>(.seconds(5))
        store.letLoneWritesWait(upTo: .milliseconds(10)) { expected.withLock { $0 } }
        for (index, next) in [Duration?.none, .seconds(5)].enumerated() {
            expected.withLock { $0 = next }
            let before = try store.statistics()
            try await WriteCompany.$mayWait.withValue(true) {
                try await store.write { w in try w.insertUser(sampleUser("alone\(index)")) }
                try await store.write { w in try w.insertUser(sampleUser("later\(index)")) }
            }
            let after = try store.statistics()
            XCTAssertEqual(after.commits - before.commits, 2)
            XCTAssertEqual(after.commitsWaitedForCompany, 0, "expected \(String(describing: next))")
        }
        // Expected soon, but it never comes: the write waits that long (and the way's
        // allowance), then commits alone.
        expected.withLock { $0 = .milliseconds(5) }
        try await WriteCompany.$mayWait.withValue(true) {
            try await store.write { w in try w.insertUser(sampleUser("unaccompanied")) }
        }
        let statistics = try store.statistics()
        XCTAssertEqual(statistics.commitsWaitedForCompany, 1)
        XCTAssertGreaterThanOrEqual(statistics.companyWaitMicros, 5_000)
        XCTAssertNotNil(try store.read { r in try r.user(id: "unaccompanied") })
    }

    func testConcurrentWritesShareCommits() async throws {
        let store = self.store!
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<300 {
                group.addTask { try await store.write { w in try w.insertUser(sampleUser("g\(i)")) } }
            }
            try await group.waitForAll()
        }
        let elapsedMicros = UInt64((ContinuousClock.now - started) / .microseconds(1))
        let statistics = try store.statistics()
        XCTAssertEqual(statistics.writes, 300)
        XCTAssertEqual(statistics.users, 300)
        XCTAssertGreaterThan(statistics.dataBytes, 0)
        XCTAssertLessThan(statistics.commits, 300, "group commit: some commits carry several writes")
        XCTAssertGreaterThan(statistics.largestBatch, 1)
        // Each write's share of the time: every write waited for a commit with its fsync, and
        // none of the three means can be longer than the whole run.
        XCTAssertGreaterThan(statistics.writesCommittingMicros, 0)
        XCTAssertGreaterThan(statistics.writesQueuedMicros, 0, "300 writes at once: most wait for a batch")
        XCTAssertGreaterThan(statistics.writesAcknowledgingMicros, 0)
        for (name, total) in [
            ("queued", statistics.writesQueuedMicros), ("committing", statistics.writesCommittingMicros),
            ("acknowledging", statistics.writesAcknowledgingMicros),
        ] {
            XCTAssertLessThanOrEqual(total / statistics.writes, elapsedMicros, "mean \(name) time per write")
        }
    }

    func testCommitObserversHearWhatChangedBeforeTheWriteReturns() async throws {
        let heard = Mutex<[CommittedChanges]>([])
        store.observeCommits { changes in heard.withLock { $0.append(changes) } }
        try await store.write { w in try w.insertUser(sampleUser("a")) }
        XCTAssertEqual(heard.withLock { $0 }, [CommittedChanges(userIDs: ["a"])])
        try await store.write { w in try w.insertSession(sampleSession("s1", user: "a", at: 1, secretByte: 1)) }
        try await store.write { w in try w.putRateCounter("ip:x", windowStart: 1, count: 1) }
        _ = try await store.write { w in try w.deleteSession(id: "s1") }
        try await store.write { w in
            try w.insertApiKey(ApiKeyRecord(id: "k", name: "k", scopes: [], secretHash: [UInt8](repeating: 7, count: 32), createdAt: 1))
        }
        XCTAssertEqual(
            heard.withLock { $0 },
            [
                CommittedChanges(userIDs: ["a"]), CommittedChanges(userIDs: ["a"]), CommittedChanges(userIDs: ["a"]),
                CommittedChanges(apiKeys: true),
            ],
            "a commit that touched neither users, sessions nor keys is not reported")
        _ = try await store.write { w in try w.deleteUser(id: "a") }
        XCTAssertEqual(heard.withLock { $0.last }, CommittedChanges(userIDs: ["a"]))
    }

    func testChangeLogIsOrderedAndPaged() async throws {
        try await store.write { w in
            for i in 1...5 { try w.appendChange(sampleChange("e\(i)", user: "u")) }
        }
        let page = try store.read { try $0.changes(after: 2, limit: 2) }
        XCTAssertEqual(page.map(\.sequence), [3, 4])
        XCTAssertEqual(page.map(\.event), ["e3", "e4"])
        XCTAssertEqual(try store.read { try $0.changes(after: 5, limit: 10) }, [])
    }

    func testAPreparedEntryReadsBackWithTheNumbersTheLogGaveIt() async throws {
        var change = ChangeRecord(
            time: 1_700_000_000_123, event: "users.u.sessions.s.create", auditEvent: "session.create", resource: "user/u",
            userID: "u")
        change.actorType = "user"
        change.actorID = "u"
        change.ip = "203.0.113.9"
        change.userAgent = "agent/1.0"
        // Numbers set by the caller are not kept: the log assigns its own.
        change.sequence = 77
        change.userPreviousSequence = 66
        let prepared = try PreparedChange(change)
        // 200 entries first, so that the numbers take more than one varint byte.
        try await store.write { w in
            for i in 1...200 { try w.appendChange(sampleChange("e\(i)", user: i == 150 ? "u" : "other")) }
        }
        let sequences = try await store.write { w in [try w.appendChange(prepared), try w.appendChange(prepared)] }
        XCTAssertEqual(sequences, [201, 202])
        let read = try store.read { try $0.changes(after: 200, limit: 10) }
        var expected = change
        expected.sequence = 201
        expected.userPreviousSequence = 150
        XCTAssertEqual(read.first, expected)
        expected.sequence = 202
        expected.userPreviousSequence = 201
        XCTAssertEqual(read.last, expected)
        let (chain, total) = try store.read { try $0.changes(userID: "u", before: nil, offset: 0, limit: 10) }
        XCTAssertEqual(chain.map(\.sequence), [202, 201, 150])
        XCTAssertEqual(total, 3)
    }

    func testAnEventAddedToAPreparedEntryReadsBackAsIfPreparedWhole() async throws {
        var change = ChangeRecord(time: 5, event: "", auditEvent: "session.delete", resource: "user/u", userID: "u")
        change.ip = "203.0.113.9"
        let template = try PreparedChange(change)
        // Long enough for a two-byte length.
        let long = "users.u.sessions.\(String(repeating: "s", count: 200)).delete"
        try await store.write { w in
            try w.appendChange(template.withEvent("users.u.sessions.s1.delete"))
            try w.appendChange(template.withEvent(long))
        }
        let read = try store.read { try $0.changes(after: 0, limit: 10) }
        XCTAssertEqual(read.map(\.event), ["users.u.sessions.s1.delete", long])
        var expected = change
        expected.event = long
        expected.sequence = 2
        expected.userPreviousSequence = 1
        XCTAssertEqual(read.last, expected, "every other field as prepared")
    }

    func testAFirstPreparedEntryOfAUserHasNoPreviousOne() async throws {
        let prepared = try PreparedChange(sampleChange("users.n.create", user: "n"))
        _ = try await store.write { w in try w.appendChange(prepared) }
        let read = try store.read { try $0.changes(after: 0, limit: 10) }
        XCTAssertEqual(read.map(\.userPreviousSequence), [0])
        XCTAssertEqual(read.map(\.event), ["users.n.create"])
    }

    func testDataSurvivesReopening() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1", email: "a@example.com"))
            try w.appendChange(sampleChange("users.u1.create", user: "u1"))
        }
        store.close()
        store = try LMDBStore(directory: directory)
        XCTAssertEqual(try store.read { try $0.userID(email: "a@example.com") }, "u1")
        let sequence = try await store.write { w in try w.appendChange(sampleChange("next", user: "u1")) }
        XCTAssertEqual(sequence, 2, "the change log continues where it stopped")
    }

    func testTheFileIsCachedAheadOfItsDataAndStillOpens() async throws {
        store.close()
        store = try LMDBStore(directory: directory, options: LMDBStore.Options(growthZoneKiB: 256))
        for batch in 0..<20 {
            try await store.write { w in
                for n in 0..<50 { try w.insertUser(sampleUser("u\(batch)-\(n)", email: "u\(batch)-\(n)@example.com")) }
            }
        }
        let dataBytes = Int(try store.statistics().dataBytes)
        store.close()  // the writer caches the zone after each commit, before it takes the next
        let path = directory + "/data.mdb"
        let fileSize = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        XCTAssertGreaterThanOrEqual(fileSize, dataBytes + 256 << 10, "the file reaches past its data by the zone")
        XCTAssertLessThanOrEqual(fileSize, dataBytes + 256 << 10 + (2 << 20), "by no more than the zone and one step")

        let fd = open(path, O_RDONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        let map = try XCTUnwrap(mmap(nil, fileSize, PROT_READ, MAP_SHARED, fd, 0))
        XCTAssertNotEqual(map, MAP_FAILED)
        defer { munmap(map, fileSize) }
        let pages = (256 << 10) / 4096
        var resident = [UInt8](repeating: 0, count: pages)
        XCTAssertEqual(mincore(map.advanced(by: dataBytes), pages * 4096, &resident), 0)
        XCTAssertEqual(resident.filter { $0 & 1 == 1 }.count, pages, "every page of the zone is in the page cache")

        // LMDB goes by its meta page, not the file's size: the longer file opens and takes writes,
        // also one commit that outgrows the zone many times over.
        store = try LMDBStore(directory: directory, options: LMDBStore.Options(growthZoneKiB: 256))
        XCTAssertEqual(try store.read { try $0.userID(email: "u19-49@example.com") }, "u19-49")
        try await store.write { w in
            for n in 0..<2000 {
                var user = sampleUser("big-\(n)")
                user.name = String(repeating: "n", count: 2048)
                try w.insertUser(user)
            }
        }
        let grown = Int(try store.statistics().dataBytes)
        store.close()
        let grownFile = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        XCTAssertGreaterThanOrEqual(grownFile, grown + 256 << 10)
        store = try LMDBStore(directory: directory)
        XCTAssertEqual(try store.read { try $0.userCount() }, 3000)
        XCTAssertEqual(try store.read { try $0.user(id: "big-1999")?.name.count }, 2048)
    }

    func testASecondStoreOnTheSameFolderIsRefused() throws {
        XCTAssertThrowsError(try LMDBStore(directory: directory)) { error in
            XCTAssertEqual((error as? StoreError)?.kind, .unavailable)
        }
    }

    func testWritesAfterCloseFailCleanly() async throws {
        store.close()
        do {
            try await store.write { w in try w.insertUser(sampleUser("late")) }
            XCTFail("wrote after close")
        } catch let error as StoreError {
            XCTAssertEqual(error.kind, .unavailable)
        }
    }

    func testOverlongKeysAreRefusedNotCrashed() async throws {
        let long = String(repeating: "x", count: 600)
        XCTAssertNil(try store.read { try $0.user(id: long) })
        do {
            try await store.write { w in try w.insertUser(sampleUser(long)) }
            XCTFail("stored a key LMDB cannot hold")
        } catch is StoreError {}
    }
}
