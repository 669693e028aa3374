@testable import AuthdStore
import CLMDB
import Foundation
import Logging
import Synchronization
import XCTest

final class SchemaVersionTests: XCTestCase {
    var directory: String!

    override func setUp() async throws {
        directory = try makeTemporaryDirectory()
    }

    override func tearDown() async throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func storedVersion(_ environment: LMDBEnvironment) throws -> UInt32? {
        var txn: OpaquePointer?
        XCTAssertEqual(mdb_txn_begin(environment.env, nil, UInt32(MDB_RDONLY), &txn), 0)
        defer { mdb_txn_abort(txn) }
        let reader = LMDBReader(environment: environment, txn: try XCTUnwrap(txn))
        return try reader.get(environment.meta, Array("schema_version".utf8)) { raw in
            raw.reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
        }
    }

    func testANewFolderIsWrittenAtTheCurrentVersion() throws {
        let store = try LMDBStore(directory: directory)
        XCTAssertEqual(try storedVersion(store.environment), LMDBStore.schemaVersion)
        store.close()
    }

    func testMigrationsRunInOrderUpToTheTarget() throws {
        let environment = try LMDBEnvironment(path: directory, mapSize: 16 << 20)
        defer { environment.close() }
        let logger = Logger(label: "test")
        try LMDBStore.migrate(environment, to: 1, using: [:], logger: logger)
        let steps: [UInt32: @Sendable (MigrationRun) throws -> Void] = [
            1: { run in try run.write { w in try w.insertUser(sampleUser("added-by-step-1")) } },
            2: { run in
                try run.write { w in
                    guard var user = try w.user(id: "added-by-step-1") else { throw StoreError.notFound("step 1's user") }
                    user.name = "renamed by step 2"
                    try w.updateUser(user)
                }
            },
        ]
        try LMDBStore.migrate(environment, to: 3, using: steps, logger: logger)
        XCTAssertEqual(try storedVersion(environment), 3)
        var txn: OpaquePointer?
        mdb_txn_begin(environment.env, nil, UInt32(MDB_RDONLY), &txn)
        let user = try LMDBReader(environment: environment, txn: try XCTUnwrap(txn)).user(id: "added-by-step-1")
        mdb_txn_abort(txn)
        XCTAssertEqual(user?.name, "renamed by step 2")
    }

    func testAFolderFromANewerAuthdIsRefused() throws {
        let environment = try LMDBEnvironment(path: directory, mapSize: 16 << 20)
        try LMDBStore.migrate(environment, to: LMDBStore.schemaVersion + 1, using: [LMDBStore.schemaVersion: { _ in }], logger: Logger(label: "test"))
        environment.close()
        XCTAssertThrowsError(try LMDBStore(directory: directory)) { error in
            XCTAssertEqual((error as? StoreError)?.kind, .incompatible)
        }
    }

    func testAMissingMigrationIsRefusedAndChangesNothing() throws {
        let environment = try LMDBEnvironment(path: directory, mapSize: 16 << 20)
        defer { environment.close() }
        try LMDBStore.migrate(environment, to: 1, using: [:], logger: Logger(label: "test"))
        XCTAssertThrowsError(try LMDBStore.migrate(environment, to: 2, using: [:], logger: Logger(label: "test")))
        XCTAssertEqual(try storedVersion(environment), 1)
        // Nor does a step run when a later one is missing.
        let steps: [UInt32: @Sendable (MigrationRun) throws -> Void] = [
            1: { run in try run.write { w in try w.insertUser(sampleUser("added-by-step-1")) } },
        ]
        XCTAssertThrowsError(try LMDBStore.migrate(environment, to: 3, using: steps, logger: Logger(label: "test")))
        XCTAssertEqual(try storedVersion(environment), 1)
        var txn: OpaquePointer?
        mdb_txn_begin(environment.env, nil, UInt32(MDB_RDONLY), &txn)
        defer { mdb_txn_abort(txn) }
        XCTAssertNil(try LMDBReader(environment: environment, txn: try XCTUnwrap(txn)).user(id: "added-by-step-1"))
    }

    /// A data folder marked with schema `version`, with what `body` writes in one transaction.
    private func writeFolder(atVersion version: UInt32, _ body: (LMDBWriter, LMDBEnvironment) throws -> Void) throws {
        let environment = try LMDBEnvironment(path: directory, mapSize: 64 << 20)
        defer { environment.close() }
        try LMDBStore.migrate(environment, to: version, using: [:], logger: Logger(label: "test"))
        try MigrationRun(environment: environment) { _ in }.write { writer in try body(writer, environment) }
    }

    /// A version-1 folder: a user's sessions, tokens and change-log entries in three indexes of
    /// their own, written here key by key as version 1 wrote them.
    private func writeVersionOneFolder() throws {
        try writeFolder(atVersion: 1) { writer, environment in
            func oldIndex(_ name: String) throws -> MDB_dbi {
                var dbi: MDB_dbi = 0
                XCTAssertEqual(mdb_dbi_open(writer.txn, name, UInt32(MDB_CREATE), &dbi), 0)
                return dbi
            }
            try writer.insertUser(sampleUser("u1"))
            try writer.insertUser(sampleUser("u2"))
            let session = sampleSession("s1", user: "u1", at: 5_000, secretByte: 7)
            try writer.put(environment.sessions, Array("s1".utf8), RecordCodec.encode(session))
            try writer.put(environment.sessionsBySecret, session.secretHash, Array("s1".utf8))
            try writer.put(try oldIndex("sessions_by_user"), Array("u1".utf8) + [0] + Keys.bigEndian64(5_000) + Array("s1".utf8), [])
            let token = TokenRecord(id: "t1", userID: "u2", type: 8, secretHash: [UInt8](repeating: 9, count: 32), createdAt: 1, expire: 2)
            try writer.put(environment.tokens, Array("t1".utf8), RecordCodec.encode(token))
            try writer.put(try oldIndex("tokens_by_user"), Array("u2".utf8) + [0] + Array("t1".utf8), [])
            var change = sampleChange("users.u1.update.name", user: "u1")
            change.sequence = 1
            try writer.put(environment.changes, Keys.bigEndian64(1), RecordCodec.encode(change))
            try writer.put(try oldIndex("changes_by_user"), Array("u1".utf8) + [0] + Keys.bigEndian64(1), [])
        }
    }

    func testVersionOneUserIndexesAreMergedIntoUserEntries() throws {
        try writeVersionOneFolder()
        let store = try LMDBStore(directory: directory)
        defer { store.close() }
        XCTAssertEqual(try storedVersion(store.environment), LMDBStore.schemaVersion)
        try store.read { r in
            XCTAssertEqual(try r.sessions(userID: "u1").map(\.id), ["s1"])
            XCTAssertEqual(try r.sessions(userID: "u2").map(\.id), [])
            XCTAssertEqual(try r.session(secretHash: [UInt8](repeating: 7, count: 32), locator: 0)?.id, "s1")
            XCTAssertEqual(try r.tokens(userID: "u2").map(\.id), ["t1"])
            XCTAssertEqual(try r.tokens(userID: "u1").map(\.id), [])
            let (entries, total) = try r.changes(userID: "u1", before: nil, offset: 0, limit: 10)
            XCTAssertEqual(entries.map(\.event), ["users.u1.update.name"])
            XCTAssertEqual(total, 1)
        }
        // The old indexes are gone from the file.
        var txn: OpaquePointer?
        XCTAssertEqual(mdb_txn_begin(store.environment.env, nil, UInt32(MDB_RDONLY), &txn), 0)
        defer { mdb_txn_abort(txn) }
        for name in ["sessions_by_user", "tokens_by_user", "changes_by_user"] {
            var dbi: MDB_dbi = 0
            XCTAssertEqual(mdb_dbi_open(txn, name, 0, &dbi), MDB_NOTFOUND, name)
        }
    }

    func testAMigratedSessionIsDeletedWithItsIndexEntries() async throws {
        try writeVersionOneFolder()
        let store = try LMDBStore(directory: directory)
        defer { store.close() }
        try await store.write { w in XCTAssertTrue(try w.deleteSession(id: "s1")) }
        try store.read { r in
            XCTAssertEqual(try r.sessions(userID: "u1").map(\.id), [])
            XCTAssertNil(try r.session(secretHash: [UInt8](repeating: 7, count: 32), locator: 0)?.id)
        }
    }

    /// A version-2 folder: a key in `user_entries` for each change-log entry of a user (kind
    /// 0x01, then the sequence). u1's entries interleave with u2's in the log.
    private func writeVersionTwoFolder(changesOfU1: Int) throws {
        try writeFolder(atVersion: 2) { writer, environment in
            try writer.insertUser(sampleUser("u1"))
            try writer.insertUser(sampleUser("u2"))
            try writer.insertSession(sampleSession("s1", user: "u1", at: 5_000, secretByte: 7))
            for sequence in 1...UInt64(changesOfU1 + 3) {
                let user = [2, 5, UInt64(changesOfU1 + 3)].contains(sequence) ? "u2" : "u1"
                var change = sampleChange("users.\(user).update.name", user: user)
                change.sequence = sequence
                try writer.put(environment.changes, Keys.bigEndian64(sequence), RecordCodec.encode(change))
                try writer.put(environment.userEntries, Array(user.utf8) + [0, 1] + Keys.bigEndian64(sequence), [])
            }
            // A key whose entry is gone from the log.
            try writer.put(environment.userEntries, Array("u2".utf8) + [0, 1] + Keys.bigEndian64(999_999), [])
        }
    }

    func testVersionTwoChangeKeysBecomeOneChainPerUser() throws {
        // More keys than the migration rewrites per chunk.
        try writeVersionTwoFolder(changesOfU1: 4_100)
        let reports = Mutex<[String]>([])
        let store = try LMDBStore(
            directory: directory, options: LMDBStore.Options(migrationProgress: { status in reports.withLock { $0.append(status) } }))
        defer { store.close() }
        XCTAssertTrue(reports.withLock { $0.contains("chained 4104 change-log entries") })
        try assertVersionTwoFolderChained(store)
    }

    /// A migration stopped after two chunks of 1000 keys (as by a crash between them) resumes
    /// at the next open and ends as if it had run at once.
    func testAStoppedChainingResumes() throws {
        try writeVersionTwoFolder(changesOfU1: 4_100)
        try stopThenResume(
            atVersion: 2, { try Migrations.chainUserChanges($0, chunk: 1_000, maxChunks: 2) }, then: assertVersionTwoFolderChained)
    }

    /// Runs `step` part way on the folder (as a crash would stop it), checks that the folder is
    /// still at `version`, then opens the store, which finishes the migration, for `check`.
    private func stopThenResume(
        atVersion version: UInt32, _ step: (MigrationRun) throws -> Void, then check: (LMDBStore) throws -> Void
    ) throws {
        let environment = try LMDBEnvironment(path: directory, mapSize: 64 << 20)
        try step(MigrationRun(environment: environment) { _ in })
        XCTAssertEqual(try storedVersion(environment), version)
        environment.close()
        let store = try LMDBStore(directory: directory)
        defer { store.close() }
        try check(store)
    }

    private func assertVersionTwoFolderChained(_ store: LMDBStore) throws {
        XCTAssertEqual(try storedVersion(store.environment), LMDBStore.schemaVersion)
        try store.read { r in
            let (entries, total) = try r.changes(userID: "u1", before: nil, offset: 0, limit: 3)
            XCTAssertEqual(entries.map(\.sequence), [4_102, 4_101, 4_100])
            XCTAssertEqual(total, 4_100)
            XCTAssertEqual(try r.changes(userID: "u1", before: 4, offset: 0, limit: 10).entries.map(\.sequence), [3, 1])
            let (others, othersTotal) = try r.changes(userID: "u2", before: nil, offset: 0, limit: 10)
            XCTAssertEqual(others.map(\.sequence), [4_103, 5, 2])
            XCTAssertEqual(othersTotal, 3)
            XCTAssertEqual(try r.sessions(userID: "u1").map(\.id), ["s1"])
        }
        // No key of the old kind is left; each user has a head.
        XCTAssertEqual(try userEntryKinds(store), [2, 4, 4])
    }

    /// The kind byte of every key in `user_entries`, in key order.
    private func userEntryKinds(_ store: LMDBStore) throws -> [UInt8] {
        try store.read { r in
            var kinds: [UInt8] = []
            try (r as! LMDBReader).scan(store.environment.userEntries, from: [0]) { key, _ in
                kinds.append(key[key.firstIndex(of: 0)! + 1])
                return true
            }
            return kinds
        }
    }

    func testAMigratedChainTakesNewEntries() async throws {
        try writeVersionTwoFolder(changesOfU1: 10)
        let store = try LMDBStore(directory: directory)
        defer { store.close() }
        _ = try await store.write { w in try w.appendChange(sampleChange("users.u1.update.email", user: "u1")) }
        try store.read { r in
            let (entries, total) = try r.changes(userID: "u1", before: nil, offset: 0, limit: 3)
            XCTAssertEqual(entries.map(\.event), ["users.u1.update.email", "users.u1.update.name", "users.u1.update.name"])
            XCTAssertEqual(entries.map(\.sequence), [14, 12, 11])
            XCTAssertEqual(total, 11)
        }
    }

    /// A version-5 folder: `tokens` tokens of two users, each with its key in `user_entries`
    /// (kind 0x03) beside u1's session and history head, as version 5 wrote them.
    private func writeVersionFiveFolder(tokens: Int) throws {
        try writeFolder(atVersion: 5) { writer, environment in
            try writer.insertUser(sampleUser("u1"))
            try writer.insertUser(sampleUser("u2"))
            try writer.insertSession(sampleSession("s1", user: "u1", at: 5_000, secretByte: 7))
            try writer.appendChange(sampleChange("users.u1.update.name", user: "u1"))
            for i in 0..<tokens {
                let token = TokenRecord(
                    id: String(format: "t%05d", i), userID: i % 3 == 0 ? "u2" : "u1", type: 8,
                    secretHash: [UInt8(i % 256), UInt8(i / 256)], createdAt: 1, expire: 100)
                try writer.put(environment.tokens, Array(token.id.utf8), RecordCodec.encode(token))
                try writer.put(environment.userEntries, Array(token.userID.utf8) + [0, 3] + Array(token.id.utf8), [])
            }
        }
    }

    private func assertVersionFiveTokensMoved(_ store: LMDBStore, tokens: Int) throws {
        XCTAssertEqual(try storedVersion(store.environment), LMDBStore.schemaVersion)
        let ids = (0..<tokens).map { String(format: "t%05d", $0) }
        try store.read { r in
            XCTAssertEqual(try r.tokens(userID: "u1").map(\.id), ids.enumerated().filter { $0.offset % 3 != 0 }.map(\.element))
            XCTAssertEqual(try r.tokens(userID: "u2").map(\.id), ids.enumerated().filter { $0.offset % 3 == 0 }.map(\.element))
            XCTAssertEqual(try r.token(userID: "u1", secretHash: [1, 0], validAt: 50)?.id, "t00001")
            XCTAssertEqual(try r.sessions(userID: "u1").map(\.id), ["s1"])
            XCTAssertEqual(try r.changes(userID: "u1", before: nil, offset: 0, limit: 10).total, 1)
        }
        // No key of the old kind is left in `user_entries`.
        XCTAssertEqual(try userEntryKinds(store), [2, 4])
    }

    func testVersionFiveTokensMoveToTheirOwnIndex() async throws {
        // More tokens than the migration moves per transaction.
        try writeVersionFiveFolder(tokens: 4_100)
        let reports = Mutex<[String]>([])
        let store = try LMDBStore(
            directory: directory, options: LMDBStore.Options(migrationProgress: { status in reports.withLock { $0.append(status) } }))
        defer { store.close() }
        XCTAssertEqual(reports.withLock { $0.last }, "moved 4100 tokens to user_tokens")
        try assertVersionFiveTokensMoved(store, tokens: 4_100)
        // A moved token is redeemed and deleted like a new one.
        try await store.write { w in XCTAssertTrue(try w.deleteToken(id: "t00001")) }
        XCTAssertNil(try store.read { try $0.token(userID: "u1", secretHash: [1, 0], validAt: 50) })
    }

    /// A move stopped after two chunks (as by a crash between them) resumes at the next open.
    func testAStoppedTokenMoveResumes() throws {
        try writeVersionFiveFolder(tokens: 10)
        try stopThenResume(
            atVersion: 5, { try Migrations.keepTokensApart($0, chunk: 3, maxChunks: 2) },
            then: { try self.assertVersionFiveTokensMoved($0, tokens: 10) })
    }

    /// Version 3 deleted a session's records at once, so its folders need no conversion to
    /// version 4's lazy deletion: its sessions stay live, and one deleted after the upgrade is
    /// gone for readers while its records wait for the sweep.
    func testAVersionThreeSessionIsRetiredAfterTheUpgrade() async throws {
        try writeFolder(atVersion: 3) { writer, _ in
            try writer.insertUser(sampleUser("u1"))
            try writer.insertSession(sampleSession("s1", user: "u1", at: 5_000, secretByte: 7))
        }
        let store = try LMDBStore(directory: directory)
        defer { store.close() }
        XCTAssertEqual(try storedVersion(store.environment), LMDBStore.schemaVersion)
        XCTAssertEqual(try store.read { try $0.session(secretHash: [UInt8](repeating: 7, count: 32), locator: 0)?.id }, "s1")
        try await store.write { w in XCTAssertTrue(try w.deleteSession(id: "s1")) }
        XCTAssertNil(try store.read { try $0.session(secretHash: [UInt8](repeating: 7, count: 32), locator: 0) })
        XCTAssertEqual(try store.statistics().sessions, 0)
    }
}
