import AuthdStore
import Foundation
import XCTest

/// A test case with a fresh store in a fresh data folder, closed and removed afterwards.
class StoreTestCase: XCTestCase {
    var directory: String!
    var store: LMDBStore!

    override func setUp() async throws {
        directory = try makeTemporaryDirectory()
        store = try LMDBStore(directory: directory)
    }

    override func tearDown() async throws {
        store?.close()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A fresh data folder per test, removed afterwards.
func makeTemporaryDirectory() throws -> String {
    let path = "/tmp/authd-store-test-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func sampleUser(_ id: String, email: String = "", at time: Int64 = 1_000) -> UserRecord {
    var user = UserRecord(id: id, createdAt: time)
    user.email = email
    user.name = "name of \(id)"
    return user
}

func sampleSession(_ id: String, user: String, at time: Int64, secretByte: UInt8) -> SessionRecord {
    SessionRecord(
        id: id, userID: user, createdAt: time, expire: time + 60_000, provider: "email",
        secretHash: [UInt8](repeating: secretByte, count: 32))
}

func sampleChange(_ event: String, user: String) -> ChangeRecord {
    ChangeRecord(time: 1, event: event, auditEvent: "user.update", resource: "user/\(user)", userID: user)
}
