@testable import AuthdStore
import AuthdProto
import CLMDB
import Foundation
import XCTest

/// What `user_entries` holds, which decides how many pages a write dirties.
final class KeyLayoutTests: StoreTestCase {

    func testAUsersHistoryEndsWithTheUserAndANewUserUnderItsIDStartsEmpty() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u"))
            for i in 1...3 { try w.appendChange(sampleChange("e\(i)", user: "u")) }
        }
        XCTAssertEqual(try store.read { try $0.changes(userID: "u", before: nil, offset: 0, limit: 10).total }, 3)
        try await store.write { w in _ = try w.deleteUser(id: "u") }
        XCTAssertEqual(try store.read { try $0.changes(userID: "u", before: nil, offset: 0, limit: 10).total }, 0)
        // A head that a folder written before this kept for a deleted user goes at the next insert.
        try await store.write { w in try (w as! LMDBWriter).putChangeHead(userID: "v", newest: 2, count: 2) }
        XCTAssertEqual(try store.read { try $0.changes(userID: "v", before: nil, offset: 0, limit: 10).total }, 2)
        try await store.write { w in try w.insertUser(sampleUser("v")) }
        XCTAssertEqual(try store.read { try $0.changes(userID: "v", before: nil, offset: 0, limit: 10).entries }, [])
        XCTAssertEqual(try store.read { try $0.changes(userID: "v", before: nil, offset: 0, limit: 10).total }, 0)
    }

    /// However long a user's history, they keep one head in `user_entries` (after their
    /// sessions), so a sign-in rewrites it in place instead of growing the tree. Tokens are kept
    /// in `user_tokens`.
    func testAUsersHistoryTakesOneHeadHoweverLong() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            for i in 1...50 { try w.appendChange(sampleChange("users.u1.update.name.\(i)", user: "u1")) }
            try w.insertSession(sampleSession("s1", user: "u1", at: 1_000, secretByte: 1))
            try w.insertToken(TokenRecord(id: "t1", userID: "u1", type: 8, secretHash: [5], createdAt: 1, expire: 2))
        }
        _ = try await store.write { w in try w.appendChange(sampleChange("users.u1.update.email", user: "u1")) }
        let kinds = try userPage("u1").entries.map { $0[Keys.userPrefix("u1").count] }
        XCTAssertEqual(kinds, [2, 4])
        try store.read { r in
            XCTAssertEqual(try r.tokens(userID: "u1").map(\.id), ["t1"])
            let head = try XCTUnwrap(try (r as! LMDBReader).changeHead(userID: "u1"))
            XCTAssertEqual(head.newest, 51)
            XCTAssertEqual(head.count, 51)
            let newest = try XCTUnwrap(try r.changes(userID: "u1", before: nil, offset: 0, limit: 1).entries.first)
            XCTAssertEqual(newest.userPreviousSequence, 50)
        }
    }

    /// The keys and values of a user's entries in `user_entries`, and their pending head.
    private func userPage(_ userID: String) throws -> (entries: [[UInt8]], pendingHead: [UInt64]?) {
        try store.read { r in
            let reader = r as! LMDBReader
            var entries: [[UInt8]] = []
            let prefix = Keys.userPrefix(userID)
            try reader.scan(store.environment.userEntries, from: prefix) { key, value in
                guard key.starts(with: prefix) else { return false }
                entries.append(Array(key) + [0xFF] + Array(value))
                return true
            }
            return (entries, try reader.pendingChangeHead(userID: userID).map { [$0.newest, $0.count] })
        }
    }

    /// A token's creation leaves the user's entries in `user_entries` as they were (the page a
    /// sign-in rewrites anyway): the token goes to `user_tokens` and the new head of the user's
    /// history to `pending_change_heads`, which the user's next append takes back in. The
    /// history reads whole throughout.
    func testATokensCreationLeavesTheUsersEntriesAloneAndTheirHistoryWhole() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            try w.insertSession(sampleSession("s0", user: "u1", at: 1, secretByte: 1))
            try w.appendChange(sampleChange("users.u1.update.name", user: "u1"))
        }
        let before = try userPage("u1")
        XCTAssertNil(before.pendingHead)
        for id in ["t1", "t2"] {
            let token = TokenRecord(id: id, userID: "u1", type: 8, secretHash: [5], createdAt: 1, expire: 2)
            _ = try await store.write { w in
                try w.insertToken(Encoded(token), appending: PreparedChange(sampleChange("users.u1.tokens.\(id).create", user: "u1")))
            }
        }
        let afterTokens = try userPage("u1")
        XCTAssertEqual(afterTokens.entries, before.entries, "the user's entries are untouched")
        XCTAssertEqual(afterTokens.pendingHead, [3, 3])
        try store.read { r in
            XCTAssertEqual(try r.tokens(userID: "u1").map(\.id), ["t1", "t2"])
            let (entries, total) = try r.changes(userID: "u1", before: nil, offset: 0, limit: 10)
            XCTAssertEqual(entries.map(\.sequence), [3, 2, 1])
            XCTAssertEqual(entries.map(\.userPreviousSequence), [2, 1, 0])
            XCTAssertEqual(total, 3)
        }
        // The sign-in that redeems a token appends on the user's page: the pending head is folded in.
        try await store.write { w in
            XCTAssertTrue(try w.deleteToken(id: "t1"))
            try w.insertSession(sampleSession("s1", user: "u1", at: 2, secretByte: 2))
            try w.appendChange(sampleChange("users.u1.sessions.s1.create", user: "u1"))
        }
        XCTAssertNil(try userPage("u1").pendingHead)
        try store.read { r in
            XCTAssertEqual(try r.tokens(userID: "u1").map(\.id), ["t2"])
            let (entries, total) = try r.changes(userID: "u1", before: nil, offset: 0, limit: 10)
            XCTAssertEqual(entries.map(\.sequence), [4, 3, 2, 1])
            XCTAssertEqual(entries.map(\.userPreviousSequence), [3, 2, 1, 0])
            XCTAssertEqual(total, 4)
            let head = try XCTUnwrap(try (r as! LMDBReader).changeHead(key: Keys.userChangeHead("u1")))
            XCTAssertEqual([head.newest, head.count], [4, 4])
        }
    }

    /// Tokens that expire unredeemed do not leave their user's head pending for good: once the
    /// sweep has deleted the last of them, the head is back on the user's page, unchanged.
    func testTheLastExpiredTokenOfAUserTakesTheirPendingHeadBack() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            try w.appendChange(sampleChange("users.u1.update.name", user: "u1"))
        }
        let tokens = ["t1", "t2"].map { TokenRecord(id: $0, userID: "u1", type: 8, secretHash: [5], createdAt: 1, expire: 2) }
        for token in tokens {
            _ = try await store.write { w in
                try w.insertToken(Encoded(token), appending: PreparedChange(sampleChange("users.u1.tokens.\(token.id).create", user: "u1")))
            }
        }
        try await store.write { w in XCTAssertTrue(try w.deleteExpiredToken(tokens[0])) }
        XCTAssertEqual(try userPage("u1").pendingHead, [3, 3], "a token of the user's is still live")
        try await store.write { w in
            XCTAssertTrue(try w.deleteExpiredToken(tokens[1]))
            XCTAssertFalse(try w.deleteExpiredToken(tokens[1]))
        }
        XCTAssertNil(try userPage("u1").pendingHead)
        try store.read { r in
            let head = try XCTUnwrap(try (r as! LMDBReader).changeHead(key: Keys.userChangeHead("u1")))
            XCTAssertEqual([head.newest, head.count], [3, 3])
            XCTAssertEqual(try r.changes(userID: "u1", before: nil, offset: 0, limit: 10).entries.map(\.sequence), [3, 2, 1])
            XCTAssertEqual(try r.tokens(userID: "u1"), [])
        }
    }

    /// A user deleted while their head is pending ends the chain at that head, and leaves no
    /// head of either kind for a user re-created under the id.
    func testAUserDeletedWithAPendingHeadEndsTheWholeChain() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            try w.appendChange(sampleChange("users.u1.update.name", user: "u1"))
        }
        let token = TokenRecord(id: "t1", userID: "u1", type: 8, secretHash: [5], createdAt: 1, expire: 2)
        _ = try await store.write { w in
            try w.insertToken(Encoded(token), appending: PreparedChange(sampleChange("users.u1.tokens.t1.create", user: "u1")))
        }
        try await store.write { w in XCTAssertTrue(try w.deleteUser(id: "u1")) }
        let page = try userPage("u1")
        XCTAssertNil(page.pendingHead)
        XCTAssertEqual(page.entries, [Keys.userEntries("u1", .endedChain) + [0xFF] + Keys.bigEndian64(2)], "the chain ends at the token's entry")
        try await store.write { w in try w.insertUser(sampleUser("u1")) }
        try store.read { r in
            XCTAssertEqual(try r.changes(userID: "u1", before: nil, offset: 0, limit: 10).total, 0)
            XCTAssertEqual(try r.tokens(userID: "u1"), [])
            XCTAssertNil(try r.token(id: "t1"))
        }
    }

    /// A damaged chain (an entry that points forward, or to another user's) ends the list
    /// instead of looping.
    /// The status is read off a user record's bytes without decoding it; damaged bytes are a
    /// corrupt-store error, never a crash or a wrong answer.
    func testAUsersStatusReadOffItsBytesMatchesTheDecoderAndRefusesDamage() throws {
        var user = UserRecord(id: "u1", createdAt: 1_700_000_000_000)
        user.labels = ["a"]
        user.prefs = #"{"k":1}"#
        user.status = false
        let blocked = try RecordCodec.encode(user)
        user.status = true
        let active = try RecordCodec.encode(user)
        func status(_ bytes: [UInt8]) throws -> Bool { try bytes.withUnsafeBytes { try RecordCodec.userStatus($0) } }
        XCTAssertEqual(try status(active), true)
        XCTAssertEqual(try status(blocked), false, "proto3 leaves a false status out")
        XCTAssertEqual(try status(active + [7 << 3, 0]), false, "the last value of a field wins")
        XCTAssertEqual(try status([]), false)
        let damagedRecords: [[UInt8]] = [
            Array(active.dropLast()),  // a string cut short
            [(1 << 3) | 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],  // a length of 2^63
            [0x80],  // a varint that never ends
            [(3 << 3) | 3],  // a group (wire type 3)
            [(2 << 3) | 1, 1, 2],  // a fixed64 cut short
        ]
        assertReadOffBytes(status, record: active, refuses: damagedRecords) { try RecordCodec.decodeUser($0).status }
    }

    /// `read`, fields read off a stored record's bytes, refuses each of `damaged` as a corrupt
    /// store and agrees with `decode` whenever both succeed: on 2000 random byte strings, and on
    /// 2000 copies of the valid `record` cut short, with a byte changed or with a byte put in
    /// (which reach the fields past the first, where random bytes seldom get).
    private func assertReadOffBytes<Fields: Equatable>(
        _ read: ([UInt8]) throws -> Fields, record: [UInt8], refuses damaged: [[UInt8]],
        agreesWith decode: (UnsafeRawBufferPointer) throws -> Fields, file: StaticString = #filePath, line: UInt = #line
    ) {
        for record in damaged {
            XCTAssertThrowsError(try read(record), "\(record)", file: file, line: line) { error in
                XCTAssertEqual((error as? StoreError)?.kind, .corrupt, file: file, line: line)
            }
        }
        var generator = SystemRandomNumberGenerator()
        var agreed = 0
        for round in 0..<4000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0...24, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            } else {
                bytes = record
                let at = Int.random(in: 0..<record.count, using: &generator)
                switch round / 2 % 3 {
                case 0: bytes.removeLast(record.count - at)
                case 1: bytes[at] = UInt8.random(in: 0...255, using: &generator)
                default: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: at)
                }
            }
            if let fast = try? read(bytes), let full = try? bytes.withUnsafeBytes({ try decode($0) }) {
                XCTAssertEqual(fast, full, "\(bytes)", file: file, line: line)
                agreed += 1
            }
        }
        XCTAssertGreaterThan(agreed, 400, "too few frames both read for the comparison to say much", file: file, line: line)
    }

    /// The bytes of one field and the number beside it, as read off a record: a secret hash and
    /// its expiry or locator, a change's user id and its time.
    private struct FieldsReadOff: Equatable {
        let bytes: [UInt8]
        let number: Int64
    }

    func testATokensSecretAndExpiryReadOffItsBytesMatchTheDecoderAndRefuseDamage() throws {
        var token = TokenRecord(id: "t1", userID: "u1", type: 8, secretHash: [9, 8, 7], createdAt: 5, expire: -3)
        token.userAgent = "agent"
        let bytes = try RecordCodec.encode(token)
        func read(_ bytes: [UInt8]) throws -> FieldsReadOff {
            try bytes.withUnsafeBytes { raw in
                let (hash, expire) = try RecordCodec.tokenSecretAndExpiry(raw)
                return FieldsReadOff(bytes: Array(raw[hash]), number: expire)
            }
        }
        XCTAssertEqual(try read(bytes), FieldsReadOff(bytes: [9, 8, 7], number: -3), "a negative expiry survives the varint")
        XCTAssertEqual(try read(bytes + [(6 << 3), 42]).number, 42, "the last value of a field wins")
        assertReadOffBytes(read, record: bytes, refuses: [Array(bytes.dropLast()), [0x80], [(3 << 3) | 3], [(4 << 3) | 2, 5, 1]]) {
            let token = try RecordCodec.decodeToken($0)
            return FieldsReadOff(bytes: token.secretHash, number: token.expire)
        }
    }

    func testASessionsSecretReadOffItsBytesMatchesTheDecoderAndRefusesDamage() throws {
        var session = sampleSession("s1", user: "u1", at: 5, secretByte: 7)
        session.secretLocator = 0x0102_0304_0506_0708
        session.factors = ["password", "totp"]
        session.userAgent = "agent"
        let bytes = try RecordCodec.encode(session)
        func read(_ bytes: [UInt8]) throws -> FieldsReadOff {
            try bytes.withUnsafeBytes { raw in
                let (hash, locator) = try RecordCodec.sessionSecret(raw)
                return FieldsReadOff(bytes: Array(raw[hash]), number: Int64(bitPattern: locator))
            }
        }
        XCTAssertEqual(try read(bytes), FieldsReadOff(bytes: session.secretHash, number: 0x0102_0304_0506_0708))
        assertReadOffBytes(read, record: bytes, refuses: [Array(bytes.dropLast()), [0x80], [(3 << 3) | 3], [(14 << 3) | 1, 1, 2, 3]]) {
            let session = try RecordCodec.decodeSession($0, id: "s1")
            return FieldsReadOff(bytes: session.secretHash, number: Int64(bitPattern: session.secretLocator))
        }
    }

    func testASessionsExpiryReadOffItsBytesMatchesTheDecoderAndRefusesDamage() throws {
        var session = sampleSession("s1", user: "u1", at: 5, secretByte: 7)
        session.expire = -7
        session.factors = ["password"]
        let bytes = try RecordCodec.encode(session)
        func read(_ bytes: [UInt8]) throws -> Int64 { try bytes.withUnsafeBytes { try RecordCodec.sessionExpiry($0) } }
        XCTAssertEqual(try read(bytes), -7)
        XCTAssertEqual(try read(bytes + [(5 << 3), 42]), 42, "the last value of a field wins")
        assertReadOffBytes(read, record: bytes, refuses: [Array(bytes.dropLast()), [0x80], [(3 << 3) | 3], [(5 << 3), 0x80]]) {
            try RecordCodec.decodeSession($0, id: "s1").expire
        }
    }

    func testAChangesTimeAndUserReadOffItsBytesMatchTheDecoderAndRefuseDamage() throws {
        var change = sampleChange("users.u1.update.name", user: "u1")
        change.time = 1_234_567
        change.actorType = "user"
        let bytes = try RecordCodec.encode(change)
        func read(_ bytes: [UInt8]) throws -> FieldsReadOff {
            try bytes.withUnsafeBytes { raw in
                let (time, user) = try RecordCodec.changeTimeAndUser(raw)
                return FieldsReadOff(bytes: Array(raw[user]), number: time)
            }
        }
        XCTAssertEqual(try read(bytes), FieldsReadOff(bytes: Array("u1".utf8), number: 1_234_567))
        assertReadOffBytes(read, record: bytes, refuses: [Array(bytes.dropLast()), [0x80], [(3 << 3) | 3], [(6 << 3) | 2, 5, 1]]) {
            let change = try RecordCodec.decodeChange($0)
            return FieldsReadOff(bytes: Array(change.userID.utf8), number: change.time)
        }
    }

    /// A change about its user stores neither `users.<id>.` before its event nor `user/<id>` as
    /// its resource: the user id is in the entry once. Every other change keeps them as written.
    func testAChangeAboutItsUserLeavesOutTheUserIDItRepeatsAndReadsBackTheSame() throws {
        func roundTrip(_ change: ChangeRecord) throws -> ChangeRecord {
            try RecordCodec.encode(change).withUnsafeBytes { try RecordCodec.decodeChange($0) }
        }
        var signIn = ChangeRecord(
            time: 7, event: "users.u1.sessions.s1.create", auditEvent: "session.create", resource: "user/u1", userID: "u1")
        signIn.actorType = "user"
        signIn.actorID = "u1"
        signIn.sequence = 9
        signIn.userPreviousSequence = 4
        XCTAssertEqual(try roundTrip(signIn), signIn)
        let stored = try Authd_Store_V1_ChangeRecord(serializedBytes: RecordCodec.encode(signIn))
        XCTAssertEqual(stored.event, "")
        XCTAssertEqual(stored.userEvent, "sessions.s1.create")
        XCTAssertEqual(stored.resource, "")
        XCTAssertTrue(stored.resourceIsUser)

        // Through the writer's path too: the prepared bytes plus the two numbers.
        let prepared = try PreparedChange(signIn)
        let numbered = RecordCodec.encode(prepared, sequence: 9, userPreviousSequence: 4)
        XCTAssertEqual(try numbered.withUnsafeBytes { try RecordCodec.decodeChange($0) }, signIn)
        XCTAssertLessThan(numbered.count, try fullForm(signIn).count - 2 * "u1".utf8.count)

        for (event, resource, user) in [
            ("keys.k1.create", "key/k1", ""),  // no user
            ("users.u10.update.name", "user/u10", "u1"),  // another user's id that starts the same
            ("users.u1.", "user/u1x", "u1"),  // nothing after the prefix; not the user's resource
            ("users.u1", "user/", "u1"),
            ("users.u1.upd\u{301}ate", "", "u1"),
            ("", "user/u1", "u1"),
            ("users.K.update.name", "user/\u{212A}", "K"),  // the Kelvin sign: canonically equal to K
        ] {
            let change = ChangeRecord(time: 1, event: event, auditEvent: "a", resource: resource, userID: user)
            let read = try roundTrip(change)
            XCTAssertEqual(read, change, "\(event) \(resource) \(user)")
            // `==` on strings takes canonically equal text as equal; the bytes must be the same.
            XCTAssertEqual(Array(read.event.utf8), Array(event.utf8))
            XCTAssertEqual(Array(read.resource.utf8), Array(resource.utf8))
        }
    }

    /// A session's record leaves out its id (its key) and an update time equal to its creation
    /// time; both read back from there. Records written in full (before schema version 5) read
    /// as they were.
    func testASessionLeavesOutItsIDAndAnUnchangedUpdateTime() async throws {
        var fresh = sampleSession("s1", user: "u1", at: 5_000, secretByte: 7)
        fresh.userAgent = "agent"
        var updated = sampleSession("s2", user: "u1", at: 6_000, secretByte: 8)
        updated.updatedAt = 9_000
        updated.factors = ["password", "totp"]
        let stored = try Authd_Store_V1_SessionRecord(serializedBytes: RecordCodec.encode(fresh))
        XCTAssertEqual(stored.id, "")
        XCTAssertEqual(stored.updatedAt, 0)
        XCTAssertEqual(try Authd_Store_V1_SessionRecord(serializedBytes: RecordCodec.encode(updated)).updatedAt, 9_000)

        func full(_ session: SessionRecord) throws -> [UInt8] {
            var r = try Authd_Store_V1_SessionRecord(serializedBytes: RecordCodec.encode(session))
            r.id = session.id
            r.updatedAt = session.updatedAt
            return try r.serializedBytes()
        }
        for session in [fresh, updated] {
            let short = try RecordCodec.encode(session)
            XCTAssertEqual(try short.withUnsafeBytes { try RecordCodec.decodeSession($0, id: session.id) }, session)
            XCTAssertEqual(try full(session).withUnsafeBytes { try RecordCodec.decodeSession($0, id: "other") }, session)
        }

        // Through the store: read by secret, by user, and by the expiry sweep's walk.
        let sessions = [fresh, updated]
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            for session in sessions { try w.insertSession(session) }
        }
        try store.read { r in
            XCTAssertEqual(try r.session(secretHash: sessions[0].secretHash, locator: 0), sessions[0])
            XCTAssertEqual(try r.sessions(userID: "u1"), sessions)
            XCTAssertEqual(try r.expiredSessions(after: nil, before: .max, limit: 10).expired, sessions.map(\.keys))
        }
    }

    /// Entries written before the user's id was left out still read as they were.
    func testAChangeWrittenInFullStillReads() throws {
        var change = ChangeRecord(
            time: 3, event: "users.u1.update.email", auditEvent: "user.update", resource: "user/u1", userID: "u1")
        change.sequence = 12
        change.ip = "10.0.0.1"
        XCTAssertEqual(try fullForm(change).withUnsafeBytes { try RecordCodec.decodeChange($0) }, change)
    }

    /// `change` as the log stored it before `user_event` and `resource_is_user`.
    private func fullForm(_ change: ChangeRecord) throws -> [UInt8] {
        var r = Authd_Store_V1_ChangeRecord()
        r.sequence = change.sequence
        r.time = change.time
        r.event = change.event
        r.auditEvent = change.auditEvent
        r.resource = change.resource
        r.userID = change.userID
        r.actorType = change.actorType
        r.actorID = change.actorID
        r.ip = change.ip
        r.userPreviousSequence = change.userPreviousSequence
        return try r.serializedBytes()
    }

    func testADamagedChainEndsTheList() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            for i in 1...3 { try w.appendChange(sampleChange("users.u1.update.name.\(i)", user: "u1")) }
            guard let writer = w as? LMDBWriter else { throw StoreError(.io, "not LMDB") }
            var looping = sampleChange("users.u1.update.name.2", user: "u1")
            looping.sequence = 2
            looping.userPreviousSequence = 3
            try writer.put(writer.environment.changes, Keys.bigEndian64(2), RecordCodec.encode(looping))
        }
        let listed = try store.read { try $0.changes(userID: "u1", before: nil, offset: 0, limit: 10).entries.map(\.sequence) }
        XCTAssertEqual(listed, [3, 2])
    }

    /// A deleted session ends at once (its key in `user_entries` goes, so no read finds it), and
    /// its records in `sessions` and `sessions_by_secret` wait in `sessions_retired` until
    /// enough have gathered for one sweep to delete them together.
    func testADeletedSessionsRecordsWaitForOneSweep() async throws {
        store.close()
        store = try LMDBStore(directory: directory, options: LMDBStore.Options(sweepRetiredSessionsAt: 3))
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            for i in 1...5 {
                var session = sampleSession("s\(i)", user: "u1", at: Int64(i) * 1_000, secretByte: UInt8(i))
                session.secretLocator = UInt64(i)
                try w.insertSession(session)
            }
        }
        func counts() throws -> (sessions: Int, bySecret: Int, retired: Int) {
            try store.read { r in
                guard let reader = r as? LMDBReader else { throw StoreError(.io, "not LMDB") }
                return (
                    try reader.entries(store.environment.sessions), try reader.entries(store.environment.sessionsBySecret),
                    try reader.entries(store.environment.sessionsRetired)
                )
            }
        }
        for id in ["s1", "s2"] { _ = try await store.write { w in try w.deleteSession(id: id) } }
        try store.read { r in
            XCTAssertNil(try r.session(id: "s1"))
            XCTAssertNil(try r.session(secretHash: [UInt8](repeating: 2, count: 32), locator: 2), "the secret signs nobody in")
            XCTAssertEqual(try r.session(secretHash: [UInt8](repeating: 3, count: 32), locator: 3)?.id, "s3")
            XCTAssertEqual(try r.sessions(userID: "u1").map(\.id), ["s3", "s4", "s5"])
        }
        var now = try counts()
        XCTAssertEqual([now.sessions, now.bySecret, now.retired], [5, 5, 2], "records stay until the sweep")
        XCTAssertEqual(try store.statistics().sessions, 3, "the figure counts live sessions only")
        let updated = try await store.write { w -> Bool in
            do {
                try w.updateSession(sampleSession("s1", user: "u1", at: 1_000, secretByte: 1))
                return true
            } catch let error as StoreError where error.kind == .notFound { return false }
        }
        XCTAssertFalse(updated, "a deleted session cannot be brought back by an update")

        // The third deletion reaches the threshold: from that commit on, the writer sweeps a
        // chunk after each commit until the queue is empty (on its own time, after the answers).
        _ = try await store.write { w in try w.deleteSession(id: "s3") }
        for _ in 1...20 where try counts().retired > 0 {
            _ = try await store.write { w in try w.appendChange(sampleChange("users.u1.update.name", user: "u1")) }
        }
        now = try counts()
        XCTAssertEqual([now.sessions, now.bySecret, now.retired], [2, 2, 0])
        XCTAssertEqual(try store.statistics().sessions, 2)
        try store.read { r in
            XCTAssertEqual(try r.sessions(userID: "u1").map(\.id), ["s4", "s5"])
            XCTAssertEqual(try r.session(secretHash: [UInt8](repeating: 5, count: 32), locator: 5)?.id, "s5")
        }

        // Deleting the user retires their sessions the same way; the queue outlives a restart.
        _ = try await store.write { w in try w.deleteUser(id: "u1") }
        store.close()
        store = try LMDBStore(directory: directory, options: LMDBStore.Options(sweepRetiredSessionsAt: 3))
        now = try counts()
        XCTAssertEqual([now.sessions, now.retired], [2, 2])
        XCTAssertEqual(try store.statistics().sessions, 0)
        try await store.write { w in try w.insertUser(sampleUser("u2")) }
        XCTAssertEqual(try counts().retired, 2, "below the threshold nothing is swept")
    }

    /// A chunk of the sweep is committed with the batch after the one that filled the queue,
    /// in no commit of its own: once that batch's write is acknowledged, the chunk is gone.
    func testASweepChunkIsCommittedWithTheNextBatch() async throws {
        store.close()
        store = try LMDBStore(directory: directory, options: LMDBStore.Options(sweepRetiredSessionsAt: 8))  // chunks of 1
        let ids = (1...8).map { "s\($0)" }
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            for (i, id) in ids.enumerated() { try w.insertSession(sampleSession(id, user: "u1", at: Int64(i + 1) * 1_000, secretByte: UInt8(i + 1))) }
        }
        try await store.write { w in for id in ids { try w.deleteSession(id: id) } }
        func stored() throws -> [String] {
            try store.read { r in
                guard let reader = r as? LMDBReader else { throw StoreError(.io, "not LMDB") }
                return try ids.filter { try reader.storedSession(id: $0) != nil }
            }
        }
        XCTAssertEqual(try stored(), ids, "the commit that filled the queue sweeps nothing")
        let commits = try store.statistics().commits
        _ = try await store.write { w in try w.appendChange(sampleChange("users.u1.update.name", user: "u1")) }
        XCTAssertEqual(try stored(), Array(ids.dropFirst()), "the next commit held the first chunk")
        XCTAssertEqual(try store.statistics().commits, commits + 1)
    }

    /// A chunk of the sweep takes the lowest ids, whatever order they were deleted in: those
    /// lie together at the start of `sessions` and `sessions_by_secret`. The queue's entries go
    /// together once the whole list is swept, and only those.
    func testASweepChunkTakesTheLowestIDs() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            for i in 1...3 { try w.insertSession(sampleSession("s\(i)", user: "u1", at: Int64(i) * 1_000, secretByte: UInt8(i))) }
        }
        let left = try await store.write { w -> Int in
            for id in ["s3", "s1", "s2"] { try w.deleteSession(id: id) }
            guard let writer = w as? LMDBWriter else { throw StoreError(.io, "not LMDB") }
            XCTAssertEqual(try writer.retiredSessionsByID(limit: 2).map { String(decoding: $0.id, as: UTF8.self) }, ["s1", "s3"],
                "the two queued longest, sorted")
            let queued = try writer.retiredSessionsByID(limit: 10)
            try writer.sweep(queued.prefix(1))
            return queued.count - 1
        }
        XCTAssertEqual(left, 2)
        try store.read { r in
            guard let reader = r as? LMDBReader else { throw StoreError(.io, "not LMDB") }
            XCTAssertNil(try reader.storedSession(id: "s1"))
            XCTAssertNotNil(try reader.storedSession(id: "s2"))
            XCTAssertNotNil(try reader.storedSession(id: "s3"))
            XCTAssertEqual(try reader.entries(store.environment.sessionsRetired), 3, "the queue waits for the whole list")
        }
        try await store.write { w in
            guard let writer = w as? LMDBWriter else { throw StoreError(.io, "not LMDB") }
            let queued = try writer.retiredSessionsByID(limit: 10)
            // A session deleted after the list was read queues behind it.
            try w.insertSession(sampleSession("s4", user: "u1", at: 4_000, secretByte: 4))
            try w.deleteSession(id: "s4")
            try writer.sweep(queued[...])  // s1 again: already gone, nothing happens
            try writer.dropRetired(count: queued.count)
        }
        try store.read { r in
            guard let reader = r as? LMDBReader else { throw StoreError(.io, "not LMDB") }
            for id in ["s1", "s2", "s3"] { XCTAssertNil(try reader.storedSession(id: id), id) }
            XCTAssertNotNil(try reader.storedSession(id: "s4"))
            XCTAssertEqual(try reader.entries(store.environment.sessionsRetired), 1, "s4's entry stays for the next sweep")
        }
    }
}
