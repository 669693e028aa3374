import AuthdClient
import Foundation
import Histogram
import Synchronization

/// Drives one call shape at a fixed concurrency for a bounded time: `connections` client
/// connections, `pipeline` calls in flight on each, each worker recording its own latencies.
struct LoadRun {
    let connections: Int
    let pipeline: Int
    var duration: Duration
    var warmUp: Duration
    let maximumCalls: Int
    /// Calls per second over all workers (open loop); nil to call as fast as answers come.
    var rate: Double? = nil

    struct Result {
        var calls: UInt64
        var errors: UInt64
        var seconds: Double
        var histogram: Histogram<UInt64>
        var firstError: String?
        /// Latencies by kind of call, for runs that mix kinds (`mixed`, `soak`).
        var byKind: [Histogram<UInt64>] = []
        /// The calls of each kind that ended in the window (`calls`, by kind).
        var callsByKind: [UInt64] = []
    }

    /// What one worker saw.
    private struct WorkerOutcome: Sendable {
        var histograms: [Histogram<UInt64>]
        var endedInWindow: [UInt64]
        var firstError: String?
    }

    /// Runs `call(connectionIndex, workerIndex, client)` repeatedly until the duration or the call
    /// budget is spent. Latencies are recorded in microseconds.
    ///
    /// The throughput is the calls that end within the measured window (the duration after the
    /// warm-up) over its length, whenever they began. Counting the calls that began in it
    /// instead left out the ones in flight when the warm-up ended, whose rest was done in the
    /// window: with logins, 16 in flight at about 45/s, that was a third of a second of the
    /// hashing threads' work in a window of 2.5 s, uncounted. Latencies are still those of the
    /// calls that began after the warm-up, including the ones that end after the window.
    func run<Client: Sendable>(
        clients: [Client],
        progress: Bool,
        kinds: Int = 1,
        executor: (Client) -> (any TaskExecutor)? = { _ in nil },
        call: @escaping @Sendable (_ worker: Int, _ client: Client) async throws -> Int
    ) async -> Result {
        let counters = Counters(budget: maximumCalls)
        let clock = ContinuousClock()
        let warmEnd = clock.now.advanced(by: warmUp)
        let end = warmEnd.advanced(by: duration)
        let started = clock.now

        let progressTask = progress ? progressLine(counters) : nil

        let workerResults = await withTaskGroup(of: WorkerOutcome.self) { group in
            for connection in 0..<connections {
                for slot in 0..<pipeline {
                    let client = clients[connection % clients.count]
                    let worker = connection * pipeline + slot
                    let workers = connections * pipeline
                    let interval: Duration? = rate.map { .nanoseconds(Int64(1e9 * Double(workers) / max($0, 0.001))) }
                    group.addTask(executorPreference: executor(client)) {
                        var outcome = WorkerOutcome(
                            histograms: (0..<kinds).map { _ in LoadRun.emptyHistogram() },
                            endedInWindow: Array(repeating: 0, count: kinds))
                        // Open loop: each worker starts its calls on its own fixed schedule, and
                        // latency counts from the scheduled start (no coordinated omission).
                        var scheduled = started.advanced(by: (interval ?? .zero) * Double(worker) / Double(workers))
                        while clock.now < end {
                            guard counters.budget.subtract(1, ordering: .relaxed).newValue >= 0 else { break }
                            var before = clock.now
                            if let interval {
                                if scheduled >= end { break }
                                if scheduled > before { try? await Task.sleep(until: scheduled, clock: clock) }
                                before = scheduled
                                scheduled = scheduled.advanced(by: interval)
                            }
                            do {
                                let kind = min(try await call(worker, client), kinds - 1)
                                let ended = clock.now
                                if before >= warmEnd {
                                    let elapsed = before.duration(to: ended)
                                    _ = outcome.histograms[kind].record(UInt64(max(1, elapsed / .microseconds(1))))
                                }
                                if ended >= warmEnd && ended <= end {
                                    outcome.endedInWindow[kind] += 1
                                    counters.completed.add(1, ordering: .relaxed)
                                }
                            } catch {
                                counters.failures.add(1, ordering: .relaxed)
                                if outcome.firstError == nil { outcome.firstError = "\(error)" }
                            }
                        }
                        return outcome
                    }
                }
            }
            var all: [WorkerOutcome] = []
            for await result in group { all.append(result) }
            return all
        }
        progressTask?.cancel()
        await progressTask?.value
        if progress { FileHandle.standardError.write(Data("\n".utf8)) }
        var merged = LoadRun.emptyHistogram()
        var byKind = (0..<kinds).map { _ in LoadRun.emptyHistogram() }
        var callsByKind = [UInt64](repeating: 0, count: kinds)
        for outcome in workerResults {
            for (kind, histogram) in outcome.histograms.enumerated() {
                merged.add(histogram)
                byKind[kind].add(histogram)
                callsByKind[kind] += outcome.endedInWindow[kind]
            }
        }
        // The window, or less when the call budget ran out first.
        let measuredStart = max(started, warmEnd)
        let elapsed = measuredStart.duration(to: min(clock.now, end))
        let seconds = elapsed / .seconds(1)
        return Result(
            calls: UInt64(counters.completed.load(ordering: .relaxed)), errors: UInt64(counters.failures.load(ordering: .relaxed)),
            seconds: seconds, histogram: merged, firstError: workerResults.compactMap(\.firstError).first,
            byKind: kinds > 1 ? byKind : [], callsByKind: kinds > 1 ? callsByKind : [])
    }

    static func emptyHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
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

    /// This run and another of the same calls as one: counts and times added, latencies merged.
    func adding(_ other: LoadRun.Result) -> LoadRun.Result {
        var histogram = self.histogram
        histogram.add(other.histogram)
        var byKind = self.byKind
        for (index, kind) in other.byKind.enumerated() {
            if index < byKind.count { byKind[index].add(kind) } else { byKind.append(kind) }
        }
        var callsByKind = self.callsByKind
        for (index, count) in other.callsByKind.enumerated() {
            if index < callsByKind.count { callsByKind[index] += count } else { callsByKind.append(count) }
        }
        return LoadRun.Result(
            calls: calls + other.calls, errors: errors + other.errors, seconds: seconds + other.seconds,
            histogram: histogram, firstError: firstError ?? other.firstError, byKind: byKind, callsByKind: callsByKind)
    }

    static func latencies(_ histogram: Histogram<UInt64>) -> [String: Any] {
        let some = histogram.totalCount > 0
        let p = { (q: Double) in some ? histogram.valueAtPercentile(q) : 0 }
        return [
            "p50": p(50), "p90": p(90), "p99": p(99), "p99_9": p(99.9),
            "max": some ? histogram.max : 0, "mean": some ? histogram.mean : 0,
        ]
    }

    static func latencyLine(_ histogram: Histogram<UInt64>) -> String {
        let some = histogram.totalCount > 0
        let p = { (q: Double) in some ? histogram.valueAtPercentile(q) : 0 }
        return "p50 \(p(50))  p90 \(p(90))  p99 \(p(99))  p99.9 \(p(99.9))  max \(some ? histogram.max : 0)"
    }

    func report(scenario: String, json: Bool, kindNames: [String] = [], extra: [String: Any] = [:]) -> String {
        if json {
            var object: [String: Any] = [
                "scenario": scenario, "calls": calls, "errors": errors, "seconds": seconds,
                "calls_per_second": throughput,
                "latency_us": Self.latencies(histogram),
            ]
            for (index, name) in kindNames.enumerated() where index < byKind.count {
                let calls = index < callsByKind.count ? callsByKind[index] : 0
                object[name] = [
                    "calls": calls, "calls_per_second": seconds > 0 ? Double(calls) / seconds : 0,
                    "latency_us": Self.latencies(byKind[index]),
                ] as [String: Any]
            }
            if let firstError { object["first_error"] = firstError }
            object.merge(extra) { $1 }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
        var lines = [
            "\(scenario): \(calls) calls in \(String(format: "%.2f", seconds)) s = \(String(format: "%.0f", throughput)) calls/s, \(errors) errors",
            "  latency µs: " + Self.latencyLine(histogram),
        ]
        for (index, name) in kindNames.enumerated() where index < byKind.count {
            let calls = index < callsByKind.count ? callsByKind[index] : 0
            let rate = seconds > 0 ? Double(calls) / seconds : 0
            lines.append("  \(name): \(calls) calls = \(String(format: "%.0f", rate))/s, latency µs: " + Self.latencyLine(byKind[index]))
        }
        for (key, value) in extra.sorted(by: { $0.key < $1.key }) { lines.append("  \(key): \(value)") }
        if let firstError { lines.append("  first error: \(firstError)") }
        return lines.joined(separator: "\n")
    }
}

/// The monotonic clock in nanoseconds, read straight (the vDSO's: no system call), for the
/// threads that spin or sleep on it without a Swift clock's arithmetic (`stalls`, the open loop).
func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}
