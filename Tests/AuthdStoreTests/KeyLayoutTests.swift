@testable import AuthdStore
import CLMDB
import Foundation
import XCTest

/// What `user_entries` holds, which decides how many pages a write dirties.
final class KeyLayoutTests: StoreTestCase {

    /// However long a user's history, they keep one head in `user_entries` (after their
    /// sessions and tokens), so a sign-in rewrites it in place instead of growing the tree.
    func testAUsersHistoryTakesOneHeadHoweverLong() async throws {
        try await store.write { w in
            try w.insertUser(sampleUser("u1"))
            for i in 1...50 { try w.appendChange(sampleChange("users.u1.update.name.\(i)", user: "u1")) }
            try w.insertSession(sampleSession("s1", user: "u1", at: 1_000, secretByte: 1))
            try w.insertToken(TokenRecord(id: "t1", userID: "u1", type: 8, secretHash: [5], createdAt: 1, expire: 2))
        }
        _ = try await store.write { w in try w.appendChange(sampleChange("users.u1.update.email", user: "u1")) }
        var kinds: [UInt8] = []
        var txn: OpaquePointer?
        XCTAssertEqual(mdb_txn_begin(store.environment.env, nil, UInt32(MDB_RDONLY), &txn), 0)
        defer { mdb_txn_abort(txn) }
        let reader = LMDBReader(environment: store.environment, txn: try XCTUnwrap(txn))
        let prefix = Keys.userPrefix("u1")
        try reader.scan(store.environment.userEntries, from: prefix) { key, _ in
            guard key.starts(with: prefix) else { return false }
            kinds.append(key[prefix.count])
            return true
        }
        XCTAssertEqual(kinds, [2, 3, 4])
        let head = try XCTUnwrap(try reader.changeHead(userID: "u1"))
        XCTAssertEqual(head.newest, 51)
        XCTAssertEqual(head.count, 51)
        let newest = try XCTUnwrap(try reader.changes(userID: "u1", before: nil, offset: 0, limit: 1).entries.first)
        XCTAssertEqual(newest.userPreviousSequence, 50)
    }

    /// A damaged chain (an entry that points forward, or to another user's) ends the list
    /// instead of looping.
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
}
