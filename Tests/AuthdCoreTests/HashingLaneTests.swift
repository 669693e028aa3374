import XCTest

@testable import AuthdCore

/// Whose turn a call's password hashing waits for (`Call.hashingLane`).
final class HashingLaneTests: XCTestCase {
    private func lane(ip: String = "", peer: PeerCredentials? = nil) -> BlockingPool.Lane {
        Call(caller: .guest, context: RequestContext(client: ClientInfo(ip: ip), peer: peer)).hashingLane
    }

    func testTheEndUsersAddressElseTheConnectedProcessElseTheSharedLane() {
        let service = PeerCredentials(uid: 1000, gid: 1000, pid: 4242)
        let otherService = PeerCredentials(uid: 1000, gid: 1000, pid: 4243)
        XCTAssertEqual(lane(ip: "198.51.100.7", peer: service), lane(ip: "198.51.100.7", peer: otherService), "one address, one lane, whichever service relays it")
        XCTAssertNotEqual(lane(ip: "198.51.100.7", peer: service), lane(ip: "198.51.100.8", peer: service))
        XCTAssertEqual(lane(peer: service), lane(peer: service))
        XCTAssertNotEqual(lane(peer: service), lane(peer: otherService), "without an address, each process its own")
        XCTAssertEqual(lane(), .shared)
        XCTAssertNotEqual(lane(peer: service), .shared)
    }
}
