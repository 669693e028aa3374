import AuthdCore
import Foundation
import XCTest

final class BlockingPoolTests: XCTestCase {
    func testWorkRunsOnThePoolsThreadsAtTheirNiceValue() async throws {
        let pool = BlockingPool(threads: 2, niceness: 7)
        defer { pool.shutdown() }
        let caller = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let niceness = try await pool.run { getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) }
        XCTAssertEqual(niceness, 7, "the hashing thread runs at the pool's nice value")
        XCTAssertEqual(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0), caller, "the caller's own is untouched")
        let sum = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 1...20 { group.addTask { try await pool.run { i } } }
            return try await group.reduce(0, +)
        }
        XCTAssertEqual(sum, 210)
    }

    func testNiceValuesAreClamped() {
        let pool = BlockingPool(threads: 1, niceness: 40)
        XCTAssertEqual(pool.niceness, 19)
        pool.shutdown()
    }

    func testThePoolsThreadsCarryItsNameInTheKernel() async throws {
        let pool = BlockingPool(threads: 1, name: "pool-test")
        defer { pool.shutdown() }
        let comm = try await pool.run { try String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8) }
        XCTAssertEqual(comm.trimmingCharacters(in: .whitespacesAndNewlines), "pool-test-0", "what top -H and perf show")
    }

    /// The pool counts the CPU its work used, not the time it took: a job that sleeps adds
    /// almost nothing, one that spins adds what it spun.
    func testWorkCountsItsCPUTimeNotItsWallTime() async throws {
        let pool = BlockingPool(threads: 1)
        defer { pool.shutdown() }
        XCTAssertEqual(pool.workMicros, 0)
        _ = try await pool.run { usleep(100_000) }
        let afterSleep = pool.workMicros
        XCTAssertLessThan(afterSleep, 20_000, "100 ms asleep is not CPU")
        _ = try await pool.run {
            var spins: UInt64 = 0
            let end = ContinuousClock.now.advanced(by: .milliseconds(60))
            while ContinuousClock.now < end { spins &+= 1 }
            return spins
        }
        let spun = pool.workMicros - afterSleep
        // On a busy machine the spinning thread may lose part of its 60 ms to others.
        XCTAssertGreaterThan(spun, 20_000, "60 ms of spinning: \(spun) µs counted")
        XCTAssertLessThan(spun, 70_000, "\(spun) µs counted")
    }
}
