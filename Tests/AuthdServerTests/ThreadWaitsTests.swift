@testable import AuthdServer
import XCTest

final class ThreadWaitsTests: XCTestCase {
    /// Threads end and their ids come back: the total keeps what each had waited and never
    /// goes down.
    func testEndedThreadsKeepTheirWaitAndTheTotalNeverFalls() {
        let waits = ThreadWaits()
        XCTAssertEqual(waits.totalMicros(now: [1: 100_000, 2: 50_000]), 150)
        XCTAssertEqual(waits.totalMicros(now: [1: 120_000]), 170, "thread 2 ended: its 50 µs stay")
        XCTAssertEqual(waits.totalMicros(now: [1: 130_000, 2: 10_000]), 190, "a new thread 2 counts from its own start")
        XCTAssertEqual(waits.totalMicros(now: [1: 130_000, 2: 10_000]), 190, "nothing waited, nothing added")
        XCTAssertEqual(waits.totalMicros(now: [:]), 190, "every thread ended")
    }
}
