@testable import AuthdServer
import NIOCore
import NIOEmbedded
import NIOPosix
import XCTest

final class PerLoopTests: XCTestCase {
    /// Each loop of the group gets a value of its own, made once; a loop outside it gets none.
    func testEachLoopHasItsOwnValueMadeOnce() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        defer { try? group.syncShutdownGracefully() }
        final class Made: Sendable {}
        var made = 0
        let values = PerLoop(group: group) { _ in
            made += 1
            return Made()
        }
        XCTAssertEqual(made, 3)
        let loops = Array(group.makeIterator())
        let found = loops.compactMap { values[$0] }
        XCTAssertEqual(found.count, 3)
        XCTAssertEqual(Set(found.map(ObjectIdentifier.init)).count, 3, "no two loops share a value")
        XCTAssertTrue(values[loops[1]] === values[loops[1]], "the same value each time")
        XCTAssertNil(values[EmbeddedEventLoop()])
    }
}
