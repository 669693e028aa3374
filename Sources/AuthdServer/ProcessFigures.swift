import Foundation

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
    /// Time the threads now running spent waiting for a CPU, in microseconds (0 without
    /// schedstat). Threads that ended took theirs with them; the daemon's threads are fixed
    /// pools, started once.
    var cpuWaitMicros: UInt64 = 0

    static func current() -> ProcessFigures {
        var figures = ProcessFigures()
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
            for line in status.split(separator: "\n") {
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard fields.count >= 2, let kib = UInt64(fields[1]) else { continue }
                switch fields[0] {
                case "VmRSS:": figures.residentBytes = kib * 1024
                case "RssAnon:": figures.anonymousBytes = kib * 1024
                default: break
                }
            }
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            figures.openFiles = UInt32(entries.count)
        }
        var usage = rusage()
        if getrusage(RUSAGE_SELF.rawValue, &usage) == 0 {
            figures.cpuUserMicros = micros(usage.ru_utime)
            figures.cpuSystemMicros = micros(usage.ru_stime)
        }
        figures.cpuWaitMicros = waitingMicros()
        return figures
    }

    private static func micros(_ time: timeval) -> UInt64 {
        UInt64(max(0, time.tv_sec)) * 1_000_000 + UInt64(max(0, time.tv_usec))
    }

    /// The second field of each thread's schedstat: nanoseconds spent runnable, not running.
    private static func waitingMicros() -> UInt64 {
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return 0 }
        var nanoseconds: UInt64 = 0
        for thread in threads {
            guard let line = try? String(contentsOfFile: "/proc/self/task/\(thread)/schedstat", encoding: .utf8) else { continue }
            let fields = line.split(separator: " ")
            if fields.count >= 2, let waited = UInt64(fields[1]) { nanoseconds &+= waited }
        }
        return nanoseconds / 1000
    }
}
