@testable import AuthdServer
import XCTest

final class ThreadTotalsTests: XCTestCase {
    /// Threads end and their ids come back: the total keeps what each had waited and never
    /// goes down.
    func testEndedThreadsKeepTheirWaitAndTheTotalNeverFalls() {
        let waits = ThreadTotals()
        XCTAssertEqual(waits.totalMicros(now: [1: 100_000, 2: 50_000]), 150)
        XCTAssertEqual(waits.totalMicros(now: [1: 120_000]), 170, "thread 2 ended: its 50 µs stay")
        XCTAssertEqual(waits.totalMicros(now: [1: 130_000, 2: 10_000]), 190, "a new thread 2 counts from its own start")
        XCTAssertEqual(waits.totalMicros(now: [1: 130_000, 2: 10_000]), 190, "nothing waited, nothing added")
        XCTAssertEqual(waits.totalMicros(now: [:]), 190, "every thread ended")
    }

    /// The daemon's CPU is summed by what its threads' names say they are.
    func testThreadRolesFollowTheNamesTheThreadsGiveThemselves() {
        XCTAssertEqual(ProcessFigures.ThreadRole(name: "NIO-ELT-1-#0"), .eventLoop)
        XCTAssertEqual(ProcessFigures.ThreadRole(name: "NIO-ELT-1-#11"), .eventLoop)
        XCTAssertEqual(ProcessFigures.ThreadRole(name: "authd-writer"), .writer)
        XCTAssertEqual(ProcessFigures.ThreadRole(name: "authd-acks"), .acknowledger)
        XCTAssertEqual(ProcessFigures.ThreadRole(name: "authd-hash-0"), .other)
        XCTAssertEqual(ProcessFigures.ThreadRole(name: "authd-writer2"), .other)
        XCTAssertEqual(ProcessFigures.ThreadRole(name: "NIO-ELT"), .other)
    }
}
