import AuthdStore
import Foundation
import XCTest

final class ProcFieldsTests: XCTestCase {
    func testLinesWithANumberAreReadAsKiBInBytes() throws {
        let path = try makeTemporaryDirectory() + "/status"
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try "Name:\tauthd\nVmRSS:\t    2048 kB\nMemAvailable:   16 kB\nState:\tS (sleeping)\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let fields = procKiBFields(path)
        XCTAssertEqual(fields["VmRSS:"], 2048 * 1024)
        XCTAssertEqual(fields["MemAvailable:"], 16 * 1024)
        XCTAssertNil(fields["Name:"], "not a number")
        XCTAssertNil(fields["State:"])
        XCTAssertEqual(procKiBFields(path + ".missing"), [:])
        XCTAssertNotNil(procKiBFields("/proc/self/status")["VmRSS:"], "the real file")
    }
}
