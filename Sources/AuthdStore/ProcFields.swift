import Foundation

/// The `Name:  value kB` lines of a /proc file such as /proc/meminfo or /proc/self/status, in
/// bytes by name (with its colon): the second field of each line whose second field is a whole
/// number, taken as KiB. Empty where the file cannot be read.
public func procKiBFields(_ path: String) -> [Substring: UInt64] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
    var fields: [Substring: UInt64] = [:]
    for line in text.split(separator: "\n") {
        let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard parts.count >= 2, let kib = UInt64(parts[1]) else { continue }
        fields[parts[0]] = kib * 1024
    }
    return fields
}
