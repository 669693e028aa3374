@testable import AuthdStore
import CLMDB
import Foundation
import Logging
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
        let steps: [UInt32: @Sendable (LMDBWriter) throws -> Void] = [
            1: { w in try w.insertUser(sampleUser("added-by-step-1")) },
            2: { w in
                guard var user = try w.user(id: "added-by-step-1") else { throw StoreError.notFound("step 1's user") }
                user.name = "renamed by step 2"
                try w.updateUser(user)
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
    }
}
