import XCTest

@testable import authd_load

/// How `authd-load` counts a run's throughput, with calls of a known length and no daemon.
final class LoadRunTests: XCTestCase {
    /// Four workers whose calls end on every 200 ms mark: 20 calls/s. The warm-up ends at 300 ms,
    /// half-way through the calls in flight, and the window at 900 ms. The calls that end at
    /// 400, 600 and 800 ms count, over the window's 0.6 s: the one that began in the warm-up
    /// included, the one still in flight at the window's end left out.
    func testTheThroughputIsTheCallsThatEndInTheWindow() async {
        let clock = ContinuousClock()
        let base = clock.now
        let mark = Duration.milliseconds(200)
        let run = LoadRun(connections: 2, pipeline: 2, duration: .milliseconds(600), warmUp: .milliseconds(300), maximumCalls: 1000)
        let result = await run.run(clients: ["a", "b"], progress: false, kinds: 2) { worker, _ in
            // Sleeping to the next mark, not for 200 ms, so that late wake-ups do not add up.
            let marks = (base.duration(to: clock.now) / mark).rounded(.down) + 1
            try await Task.sleep(until: base.advanced(by: mark * marks), clock: clock)
            return worker % 2
        }
        XCTAssertEqual(result.calls, 12)
        XCTAssertEqual(result.seconds, 0.6, accuracy: 0.001)
        XCTAssertEqual(result.throughput, 20, accuracy: 0.1)
        XCTAssertEqual(result.callsByKind, [6, 6])
        // Latencies are of the calls that began after the warm-up: three per worker, the last
        // ending after the window.
        XCTAssertEqual(result.histogram.totalCount, 12)
        XCTAssertEqual(result.errors, 0)
    }
}
