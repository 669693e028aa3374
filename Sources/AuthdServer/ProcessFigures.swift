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
    /// without schedstat); see `ThreadWaits`.
    var cpuWaitMicros: UInt64 = 0

    /// One for the process: it remembers the threads seen at earlier readings.
    private static let threadWaits = ThreadWaits()

    static func current() -> ProcessFigures {
        var figures = ProcessFigures()
        let status = procKiBFields("/proc/self/status")
        figures.residentBytes = status["VmRSS:"] ?? 0
        figures.anonymousBytes = status["RssAnon:"] ?? 0
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            figures.openFiles = UInt32(entries.count)
        }
        var usage = rusage()
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 {
            figures.cpuUserMicros = micros(usage.ru_utime)
            figures.cpuSystemMicros = micros(usage.ru_stime)
        }
        figures.cpuWaitMicros = threadWaits.totalMicros(now: currentWaits())
        return figures
    }

    private static func micros(_ time: timeval) -> UInt64 {
        UInt64(max(0, time.tv_sec)) * 1_000_000 + UInt64(max(0, time.tv_usec))
    }

    /// The second field of each thread's schedstat, by thread id: nanoseconds spent runnable,
    /// not running.
    private static func currentWaits() -> [Int: UInt64] {
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return [:] }
        var waits: [Int: UInt64] = [:]
        for thread in threads {
            guard let id = Int(thread),
                let line = try? String(contentsOfFile: "/proc/self/task/\(thread)/schedstat", encoding: .utf8)
            else { continue }
            let fields = line.split(separator: " ")
            if fields.count >= 2, let waited = UInt64(fields[1]) { waits[id] = waited }
        }
        return waits
    }
}

/// The daemon's threads' wait for a CPU, summed since start. Threads come and go (Dispatch's
/// and the concurrency runtime's workers end after idling a while), and an ended thread's
/// schedstat goes with it: each thread's last reading is kept and stays in the total once
/// the thread is gone, so the figure never goes down. Only what a thread waited between its
/// last reading and its end is missed.
final class ThreadWaits: Sendable {
    private struct State {
        /// The last readings of threads that have ended since.
        var ended: UInt64 = 0
        var lastSeen: [Int: UInt64] = [:]
    }
    private let state = Mutex(State())

    /// The total, in microseconds, given each live thread's wait in nanoseconds.
    func totalMicros(now waits: [Int: UInt64]) -> UInt64 {
        state.withLock { state in
            for (thread, seen) in state.lastSeen {
                // Gone, or its id taken by a new thread whose count started again.
                if let current = waits[thread], current >= seen { continue }
                state.ended &+= seen
            }
            state.lastSeen = waits
            return (state.ended &+ waits.values.reduce(0, &+)) / 1000
        }
    }
}
