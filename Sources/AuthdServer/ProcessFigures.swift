import AuthdStore
import Foundation
import Synchronization

/// The daemon's resident memory, open file descriptors and CPU time, read from /proc and
/// getrusage(2).
struct ProcessFigures {
    /// All resident pages, the mapped data file's included.
    var residentBytes: UInt64 = 0
    /// Resident pages of the daemon's own (heap, stacks): RssAnon.
    var anonymousBytes: UInt64 = 0
    var openFiles: UInt32 = 0
    /// CPU time of the whole process since start, in microseconds.
    var cpuUserMicros: UInt64 = 0
    var cpuSystemMicros: UInt64 = 0
    /// Time the daemon's threads spent waiting for a CPU since start, in microseconds (0
    /// without schedstat); see `ThreadTotals`.
    var cpuWaitMicros: UInt64 = 0
    /// CPU time of the event loops, the store's writer and its acknowledger since start, in
    /// microseconds (0 without schedstat).
    var eventLoopCPUMicros: UInt64 = 0
    var writerCPUMicros: UInt64 = 0
    var acknowledgerCPUMicros: UInt64 = 0

    /// One each for the process: they remember the threads seen at earlier readings.
    private static let threadWaits = ThreadTotals()
    private static let eventLoopRuns = ThreadTotals()
    private static let writerRuns = ThreadTotals()
    private static let acknowledgerRuns = ThreadTotals()

    static func current() -> ProcessFigures {
        var figures = ProcessFigures()
        let status = procKiBFields("/proc/self/status")
        figures.residentBytes = status["VmRSS:"] ?? 0
        figures.anonymousBytes = status["RssAnon:"] ?? 0
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            figures.openFiles = UInt32(entries.count)
        }
        // The threads first: read after them, the process's CPU is no less than theirs.
        let threads = currentThreads()
        var usage = rusage()
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 {
            figures.cpuUserMicros = micros(usage.ru_utime)
            figures.cpuSystemMicros = micros(usage.ru_stime)
        }
        figures.cpuWaitMicros = threadWaits.totalMicros(now: threads.mapValues(\.waited))
        figures.eventLoopCPUMicros = eventLoopRuns.totalMicros(now: runTimes(threads, of: .eventLoop))
        figures.writerCPUMicros = writerRuns.totalMicros(now: runTimes(threads, of: .writer))
        figures.acknowledgerCPUMicros = acknowledgerRuns.totalMicros(now: runTimes(threads, of: .acknowledger))
        return figures
    }

    /// What a thread of the daemon does, by its name.
    enum ThreadRole: Equatable {
        case eventLoop, writer, acknowledger, other

        init(name: Substring) {
            // NIO names a group's loops NIO-ELT-<group>-#<loop>; the daemon has one group.
            if name.hasPrefix("NIO-ELT-") {
                self = .eventLoop
            } else if name == StoreThreadName.writer {
                self = .writer
            } else if name == StoreThreadName.acknowledger {
                self = .acknowledger
            } else {
                self = .other
            }
        }
    }

    /// A thread's figures from /proc: its role, and its schedstat's nanoseconds on a CPU and
    /// runnable but waiting for one.
    struct ThreadReading {
        var role: ThreadRole
        var ran: UInt64
        var waited: UInt64
    }

    private static func runTimes(_ threads: [Int: ThreadReading], of role: ThreadRole) -> [Int: UInt64] {
        threads.compactMapValues { $0.role == role ? $0.ran : nil }
    }

    private static func micros(_ time: timeval) -> UInt64 {
        UInt64(max(0, time.tv_sec)) * 1_000_000 + UInt64(max(0, time.tv_usec))
    }

    /// Each live thread's figures, by thread id.
    private static func currentThreads() -> [Int: ThreadReading] {
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return [:] }
        var readings: [Int: ThreadReading] = [:]
        for thread in threads {
            guard let id = Int(thread),
                let line = try? String(contentsOfFile: "/proc/self/task/\(thread)/schedstat", encoding: .utf8)
            else { continue }
            let fields = line.split(separator: " ")
            guard fields.count >= 2, let ran = UInt64(fields[0]), let waited = UInt64(fields[1]) else { continue }
            let name = (try? String(contentsOfFile: "/proc/self/task/\(thread)/comm", encoding: .utf8)) ?? ""
            readings[id] = ThreadReading(
                role: ThreadRole(name: name.prefix { $0 != "\n" }), ran: ran, waited: waited)
        }
        return readings
    }
}

/// A per-thread count of the daemon's (a schedstat field: time waiting for a CPU, or on one),
/// summed over its threads since start. Threads come and go (Dispatch's and the concurrency
/// runtime's workers end after idling a while), and an ended thread's schedstat goes with it:
/// each thread's last reading is kept and stays in the total once the thread is gone, so the
/// figure never goes down. Only what a thread counted between its last reading and its end is
/// missed.
final class ThreadTotals: Sendable {
    private struct State {
        /// The last readings of threads that have ended since.
        var ended: UInt64 = 0
        var lastSeen: [Int: UInt64] = [:]
    }
    private let state = Mutex(State())

    /// The total, in microseconds, given each live thread's count in nanoseconds.
    func totalMicros(now counts: [Int: UInt64]) -> UInt64 {
        state.withLock { state in
            for (thread, seen) in state.lastSeen {
                // Gone, or its id taken by a new thread whose count started again.
                if let current = counts[thread], current >= seen { continue }
                state.ended &+= seen
            }
            state.lastSeen = counts
            return (state.ended &+ counts.values.reduce(0, &+)) / 1000
        }
    }
}
