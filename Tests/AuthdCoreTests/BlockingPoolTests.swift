import AuthdCore
import Foundation
import Synchronization
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

    /// With its one thread held and `queueLimit` calls waiting, the pool refuses the next call at
    /// once with a 503, runs nothing of it, and counts it; once the line moves, calls are taken.
    func testACallBeyondTheQueueLimitIsRefusedAtOnceAndNotRun() async throws {
        final class Ran: Sendable {
            let count = Atomic<Int>(0)
            func add(_ n: Int) { count.add(n, ordering: .relaxed) }
        }
        let pool = BlockingPool(threads: 1, name: "limit-test", queueLimit: 2)
        defer { pool.shutdown() }
        let gate = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        let ran = Ran()
        let held = Task {
            try await pool.run {
                started.signal()
                gate.wait()
                ran.add(1)
            }
        }
        started.wait()
        let waiting = (0..<2).map { _ in Task { try await pool.run { ran.add(1) } } }
        // The two waiting calls are queued once their tasks have run up to the pool.
        while pool.queued < 2 { try await Task.sleep(for: .milliseconds(1)) }
        do {
            try await pool.run { ran.add(100) }
            XCTFail("a third waiting call was taken")
        } catch let error as AuthdError {
            XCTAssertEqual(error.code, 503)
            XCTAssertTrue(error.message.contains("busy"), error.message)
        }
        XCTAssertEqual(pool.refused, 1)
        gate.signal()
        try await held.value
        for call in waiting { try await call.value }
        XCTAssertEqual(ran.count.load(ordering: .relaxed), 3, "the refused call never ran")
        try await pool.run { ran.add(1) }
        XCTAssertEqual(ran.count.load(ordering: .relaxed), 4, "taken again once the line is short")
        XCTAssertEqual(pool.refused, 1)
    }
}
