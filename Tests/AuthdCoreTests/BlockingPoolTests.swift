import AuthdCore
import Foundation
import Synchronization
import XCTest

/// How many times work ran, counted from the pool's threads.
private final class Ran: Sendable {
    let count = Atomic<Int>(0)
    func add(_ n: Int) { count.add(n, ordering: .relaxed) }
}

/// The order work ran in, written from the pool's threads.
private final class RunOrder: Sendable {
    let names = Mutex<[String]>([])
}

/// Occupies one of the pool's threads until the returned semaphore is signalled.
func holdOneThread(of pool: BlockingPool) async throws -> (DispatchSemaphore, Task<Void, Error>) {
    let gate = DispatchSemaphore(value: 0)
    let started = DispatchSemaphore(value: 0)
    let held = Task {
        try await pool.run {
            started.signal()
            gate.wait()
        }
    }
    started.wait()
    return (gate, held)
}

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
    /// The order the held thread then takes the waiting calls in: one of each lane in turn,
    /// each lane's in the order they came, however many one lane sent first.
    func testLanesTakeTurnsAndEachKeepsItsOrder() async throws {
        let pool = BlockingPool(threads: 1, name: "lane-test")
        defer { pool.shutdown() }
        let (gate, held) = try await holdOneThread(of: pool)
        let order = RunOrder()
        var calls: [Task<Void, Error>] = []
        for name in ["a1", "a2", "a3", "a4", "b1", "b2"] {
            let lane = BlockingPool.Lane(String(name.first!))
            calls.append(Task { try await pool.run(in: lane) { order.names.withLock { $0.append(name) } } })
            // Queued one at a time, so that the line's order is the one written here.
            while pool.queued < calls.count { try await Task.sleep(for: .milliseconds(1)) }
        }
        gate.signal()
        try await held.value
        for call in calls { try await call.value }
        XCTAssertEqual(order.names.withLock { $0 }, ["a1", "b1", "a2", "b2", "a3", "a4"])
    }

    /// A lane that filled the line is refused more; another lane's calls are still taken up to
    /// its share of the limit (the limit over the lanes waiting), then refused too.
    func testAFullLineStillTakesAnotherLanesShare() async throws {
        let pool = BlockingPool(threads: 1, name: "share-test", queueLimit: 4)
        defer { pool.shutdown() }
        let (gate, held) = try await holdOneThread(of: pool)
        let flood = BlockingPool.Lane("flood"), other = BlockingPool.Lane("other")
        let ran = Ran()
        var calls: [Task<Void, Error>] = []
        for _ in 0..<4 {
            calls.append(Task { try await pool.run(in: flood) { ran.add(1) } })
            while pool.queued < calls.count { try await Task.sleep(for: .milliseconds(1)) }
        }
        await Self.assertRefused(pool, in: flood)
        for _ in 0..<2 {
            calls.append(Task { try await pool.run(in: other) { ran.add(1) } })
            while pool.queued < calls.count { try await Task.sleep(for: .milliseconds(1)) }
        }
        XCTAssertEqual(pool.queued, 6, "past the limit by the other lane's share")
        await Self.assertRefused(pool, in: other)
        await Self.assertRefused(pool, in: flood)
        XCTAssertEqual(pool.refused, 3)
        gate.signal()
        try await held.value
        for call in calls { try await call.value }
        XCTAssertEqual(ran.count.load(ordering: .relaxed), 6, "every call taken ran; no refused one did")
    }

    /// The writer asks the hashing pool when its next call ends, to let a lone write wait for
    /// that call's write (`LMDBStore.letLoneWritesWait`).
    func testTheNextEndIsExpectedFromTheCallsThatRanAndTheOnesRunning() async throws {
        let pool = BlockingPool(threads: 1)
        defer { pool.shutdown() }
        XCTAssertNil(pool.nextEndExpected(), "no call has run yet")
        let began = ContinuousClock.now
        _ = try await pool.run { usleep(200_000) }
        let took = ContinuousClock.now - began  // the pool's own measure is within this
        XCTAssertNil(pool.nextEndExpected(), "the call ended before its caller resumed: none runs")
        let heldFrom = ContinuousClock.now
        let (gate, held) = try await holdOneThread(of: pool)
        let expected = try XCTUnwrap(pool.nextEndExpected(), "a call runs, and the one before took 200 ms")
        XCTAssertGreaterThan(expected, .zero)
        XCTAssertLessThanOrEqual(expected, took, "the mean, less what the call has run")
        try await Task.sleep(until: heldFrom + took + .milliseconds(50))
        XCTAssertEqual(pool.nextEndExpected(), .zero, "a call past the mean is expected to end any moment")
        gate.signal()
        try await held.value
        XCTAssertNil(pool.nextEndExpected())
    }

    private static func assertRefused(_ pool: BlockingPool, in lane: BlockingPool.Lane, line: UInt = #line) async {
        do {
            try await pool.run(in: lane) {}
            XCTFail("taken past the line", line: line)
        } catch let error as AuthdError {
            XCTAssertEqual(error.code, 503, line: line)
        } catch {
            XCTFail("\(error)", line: line)
        }
    }
}
