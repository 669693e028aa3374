import Foundation

/// The daemon's resident memory and open file descriptors, read from /proc.
struct ProcessFigures {
    var residentBytes: UInt64 = 0
    var openFiles: UInt32 = 0

    static func current() -> ProcessFigures {
        var figures = ProcessFigures()
        // statm: size resident shared ... in pages.
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let pages = UInt64(fields[1]) {
                figures.residentBytes = pages * UInt64(sysconf(Int32(_SC_PAGESIZE)))
            }
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            figures.openFiles = UInt32(entries.count)
        }
        return figures
    }
}
