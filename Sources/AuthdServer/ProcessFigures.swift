import Foundation

/// The daemon's resident memory and open file descriptors, read from /proc.
struct ProcessFigures {
    /// All resident pages, the mapped data file's included.
    var residentBytes: UInt64 = 0
    /// Resident pages of the daemon's own (heap, stacks): RssAnon.
    var anonymousBytes: UInt64 = 0
    var openFiles: UInt32 = 0

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
        return figures
    }
}
