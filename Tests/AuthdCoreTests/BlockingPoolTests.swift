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
}
