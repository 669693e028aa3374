import AuthdClient
import Foundation
import Histogram
import Synchronization

/// Drives one call shape at a fixed concurrency for a bounded time: `connections` client
/// connections, `pipeline` calls in flight on each, each worker recording its own latencies.
struct LoadRun {
    let connections: Int
    let pipeline: Int
    let duration: Duration
    let warmUp: Duration
    let maximumCalls: Int

    struct Result {
        var calls: UInt64
        var errors: UInt64
        var seconds: Double
        var histogram: Histogram<UInt64>
        var firstError: String?
    }

    /// Runs `call(connectionIndex, workerIndex, client)` repeatedly until the duration or the call
    /// budget is spent. Latencies are recorded in microseconds.
    func run(
        clients: [AuthdClient],
        progress: Bool,
        call: @escaping @Sendable (_ worker: Int, _ client: AuthdClient) async throws -> Void
    ) async -> Result {
        let counters = Counters(budget: maximumCalls)
        let clock = ContinuousClock()
        let warmEnd = clock.now.advanced(by: warmUp)
        let end = warmEnd.advanced(by: duration)
        let started = clock.now

        let progressTask: Task<Void, Never>? = progress ? Task {
            var last = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let now = counters.completed.load(ordering: .relaxed)
                let line = String(format: "\r  %8d calls/s  %10d calls  %6d errors", now - last, now, counters.failures.load(ordering: .relaxed))
                FileHandle.standardError.write(Data(line.utf8))
                last = now
            }
        } : nil

        let workerResults = await withTaskGroup(of: (Histogram<UInt64>, String?).self) { group in
            for connection in 0..<connections {
                for slot in 0..<pipeline {
                    let client = clients[connection % clients.count]
                    let worker = connection * pipeline + slot
                    group.addTask {
                        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                        var firstError: String?
                        while clock.now < end {
                            guard counters.budget.subtract(1, ordering: .relaxed).newValue >= 0 else { break }
                            let before = clock.now
                            do {
                                try await call(worker, client)
                                if before >= warmEnd {
                                    let elapsed = before.duration(to: clock.now)
                                    _ = histogram.record(UInt64(max(1, elapsed.components.attoseconds / 1_000_000_000_000 + elapsed.components.seconds * 1_000_000)))
                                    counters.completed.add(1, ordering: .relaxed)
                                }
                            } catch {
                                counters.failures.add(1, ordering: .relaxed)
                                if firstError == nil { firstError = "\(error)" }
                            }
                        }
                        return (histogram, firstError)
                    }
                }
            }
            var all: [(Histogram<UInt64>, String?)] = []
            for await result in group { all.append(result) }
            return all
        }
        progressTask?.cancel()
        if progress { FileHandle.standardError.write(Data("\n".utf8)) }
        var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for (histogram, _) in workerResults { merged.add(histogram) }
        let measuredStart = max(started, warmEnd)
        let elapsed = measuredStart.duration(to: min(clock.now, end.advanced(by: .seconds(3600))))
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Result(
            calls: UInt64(counters.completed.load(ordering: .relaxed)), errors: UInt64(counters.failures.load(ordering: .relaxed)),
            seconds: seconds, histogram: merged, firstError: workerResults.compactMap(\.1).first)
    }
}

/// Shared by all workers of a run.
final class Counters: Sendable {
    let completed = Atomic<Int>(0)
    let failures = Atomic<Int>(0)
    let budget: Atomic<Int>

    init(budget: Int) {
        self.budget = Atomic(budget)
    }
}

extension LoadRun.Result {
    var throughput: Double { seconds > 0 ? Double(calls) / seconds : 0 }

    func report(scenario: String, json: Bool, extra: [String: Any] = [:]) -> String {
        let p = { (q: Double) in calls > 0 ? histogram.valueAtPercentile(q) : 0 }
        if json {
            var object: [String: Any] = [
                "scenario": scenario, "calls": calls, "errors": errors, "seconds": seconds,
                "calls_per_second": throughput,
                "latency_us": [
                    "p50": p(50), "p90": p(90), "p99": p(99), "p99_9": p(99.9),
                    "max": calls > 0 ? histogram.max : 0, "mean": calls > 0 ? histogram.mean : 0,
                ],
            ]
            if let firstError { object["first_error"] = firstError }
            object.merge(extra) { $1 }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
        var lines = [
            "\(scenario): \(calls) calls in \(String(format: "%.2f", seconds)) s = \(String(format: "%.0f", throughput)) calls/s, \(errors) errors",
            "  latency µs: p50 \(p(50))  p90 \(p(90))  p99 \(p(99))  p99.9 \(p(99.9))  max \(calls > 0 ? histogram.max : 0)",
        ]
        for (key, value) in extra.sorted(by: { $0.key < $1.key }) { lines.append("  \(key): \(value)") }
        if let firstError { lines.append("  first error: \(firstError)") }
        return lines.joined(separator: "\n")
    }
}
