import ArgumentParser
import Foundation

/// `authd-load stalls`: how often the machine takes every core away at once. On a virtual
/// machine the host may stop all the guest's CPUs together (this one's did, for 0.3-1 ms every
/// 100 ms, but only while both its vCPUs were busy). A login storm keeps every core busy, so a
/// validation that arrives in such a stall waits it out whatever authd does: this measures the
/// share of the latency that belongs to the machine.
struct Stalls: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measures the machine's stalls: gaps in time seen by threads spinning on every core.",
        discussion: """
            Each thread reads the monotonic clock in a loop; a step longer than --threshold-us is \
            a gap (the thread was descheduled, by the kernel or by the host). Stalls are the \
            moments when every thread was in a gap at once. Bounded by --duration; keeps every \
            core busy meanwhile, so run it beside nothing that is being measured.
            """)

    @Option(help: "Spinning threads (default: one per core).")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Seconds to measure.")
    var duration = 3.0

    @Option(help: "The shortest step of the clock that counts as a gap, in microseconds.")
    var thresholdUs = 200

    @Flag(help: "Print the result as one JSON object.")
    var json = false

    func validate() throws {
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1-256") }
        guard duration > 0, duration <= 600 else { throw ValidationError("--duration must be in (0, 600] seconds") }
        guard thresholdUs >= 1 else { throw ValidationError("--threshold-us must be at least 1") }
    }

    func run() throws {
        let gapsPerThread = GapRecorder.record(threads: threads, seconds: duration, thresholdNanoseconds: UInt64(thresholdUs) * 1000)
        let stalls = GapRecorder.overlap(gapsPerThread)
        let perThread = gapsPerThread.map { Summary($0, seconds: duration) }
        let all = Summary(stalls, seconds: duration)
        if json {
            let object: [String: Any] = [
                "scenario": "stalls", "threads": threads, "seconds": duration, "threshold_us": thresholdUs,
                "per_thread": perThread.map(\.dictionary), "every_core": all.dictionary,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("stalls: \(threads) threads spinning for \(duration) s, gaps over \(thresholdUs) µs")
        for (index, summary) in perThread.enumerated() { print("  thread \(index): \(summary.line)") }
        print("  every core at once: \(all.line)")
    }

    /// Counts and lengths of a list of gaps.
    struct Summary {
        let count: Int
        let lostFraction: Double
        let maxMicroseconds: Double
        /// The median time from one gap's start to the next's: a host's periodic work shows
        /// as its period.
        let medianSpacingMilliseconds: Double?

        init(_ gaps: [GapRecorder.Gap], seconds: Double) {
            count = gaps.count
            lostFraction = gaps.reduce(0.0) { $0 + Double($1.length) } / (seconds * 1e9)
            maxMicroseconds = Double(gaps.map(\.length).max() ?? 0) / 1000
            let spacings = zip(gaps.dropFirst(), gaps).map { Double($0.start - $1.start) / 1e6 }.sorted()
            medianSpacingMilliseconds = spacings.isEmpty ? nil : spacings[spacings.count / 2]
        }

        var dictionary: [String: Any] {
            var result: [String: Any] = ["gaps": count, "lost_fraction": lostFraction, "max_us": maxMicroseconds]
            if let medianSpacingMilliseconds { result["median_spacing_ms"] = medianSpacingMilliseconds }
            return result
        }

        var line: String {
            String(format: "%d gaps, %.2f %% of the time, longest %.0f µs", count, 100 * lostFraction, maxMicroseconds)
                + (medianSpacingMilliseconds.map { String(format: ", median spacing %.1f ms", $0) } ?? "")
        }
    }
}

/// Threads spinning on the monotonic clock, each noting the steps longer than a threshold.
enum GapRecorder {
    /// A stretch of time in which a thread did not run, in nanoseconds of the monotonic clock.
    struct Gap: Equatable {
        var start: UInt64
        var end: UInt64
        var length: UInt64 { end - start }
    }

    static func record(threads: Int, seconds: Double, thresholdNanoseconds: UInt64) -> [[Gap]] {
        let results = Collected<(index: Int, gaps: [Gap])>()
        let start = monotonicNanoseconds()
        let end = start + UInt64(seconds * 1e9)
        let group = DispatchGroup()
        for index in 0..<threads {
            group.enter()
            Thread {
                var gaps: [Gap] = []
                gaps.reserveCapacity(4096)
                var last = monotonicNanoseconds()
                while last < end {
                    let now = monotonicNanoseconds()
                    if now - last > thresholdNanoseconds { gaps.append(Gap(start: last, end: now)) }
                    last = now
                }
                results.append((index, gaps))
                group.leave()
            }.start()
        }
        group.wait()
        return results.values.sorted { $0.index < $1.index }.map(\.gaps)
    }

    /// The stretches in which every list has a gap: the pairwise intersection of sorted,
    /// non-overlapping lists, one after another.
    static func overlap(_ lists: [[Gap]]) -> [Gap] {
        guard var common = lists.first else { return [] }
        for list in lists.dropFirst() {
            var merged: [Gap] = []
            var i = 0
            var j = 0
            while i < common.count, j < list.count {
                let start = max(common[i].start, list[j].start)
                let end = min(common[i].end, list[j].end)
                if start < end { merged.append(Gap(start: start, end: end)) }
                if common[i].end < list[j].end { i += 1 } else { j += 1 }
            }
            common = merged
        }
        return common
    }
}
