@testable import AuthdStore
import CIOPriority
import Foundation
import Synchronization
import XCTest

final class PageCacheWarmerTests: XCTestCase {
    private var directory: String!

    override func setUp() async throws {
        directory = try makeTemporaryDirectory()
    }

    override func tearDown() async throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A file of `bytes` bytes, flushed and (where the kernel does it) dropped from the cache.
    private func makeFile(bytes: Int) throws -> String {
        let path = directory + "/data.mdb"
        try Data((0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: URL(fileURLWithPath: path))
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        _ = fdatasync(fd)
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        return path
    }

    /// Which pages of the first `bytes` of the file are in the page cache (mincore(2)).
    private func residentPages(_ path: String, bytes: Int) throws -> [Bool] {
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let map = try XCTUnwrap(mmap(nil, bytes, PROT_READ, MAP_SHARED, fd, 0))
        XCTAssertNotEqual(map, MAP_FAILED)
        defer { munmap(map, bytes) }
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        var flags = [UInt8](repeating: 0, count: (bytes + pageSize - 1) / pageSize)
        XCTAssertEqual(mincore(map, bytes, &flags), 0)
        return flags.map { $0 & 1 == 1 }
    }

    func testItReadsTheWholeFileIntoThePageCache() throws {
        // Three whole chunks and a part of one.
        let bytes = 3 * PageCacheWarmer.chunkBytes + 40_960
        let path = try makeFile(bytes: bytes)
        let warmer = PageCacheWarmer(path: path, limit: bytes)
        XCTAssertFalse(warmer.isDone, "not before it has read")
        XCTAssertEqual(warmer.limitBytes, UInt64(bytes))
        warmer.run()
        XCTAssertEqual(warmer.warmedBytes, UInt64(bytes))
        XCTAssertTrue(warmer.isDone)
        let resident = try residentPages(path, bytes: bytes)
        XCTAssertEqual(resident.filter { !$0 }.count, 0, "every page is cached after the read")
    }

    func testItReadsNoFurtherThanItsLimit() throws {
        let path = try makeFile(bytes: 4 * PageCacheWarmer.chunkBytes)
        let limit = PageCacheWarmer.chunkBytes + 8192
        let warmer = PageCacheWarmer(path: path, limit: limit)
        warmer.run()
        XCTAssertEqual(warmer.warmedBytes, UInt64(limit), "the limit, not the file's size")

        // A limit past the end of the file: it stops at the end.
        let beyond = PageCacheWarmer(path: path, limit: 10 * PageCacheWarmer.chunkBytes)
        beyond.run()
        XCTAssertEqual(beyond.warmedBytes, UInt64(4 * PageCacheWarmer.chunkBytes))
        XCTAssertTrue(beyond.isDone, "done at the end of the file, below its limit")
        XCTAssertLessThan(beyond.warmedBytes, beyond.limitBytes)
    }

    func testAStoppedWarmerReadsNothingAndAMissingFileIsNoError() throws {
        let path = try makeFile(bytes: 2 * PageCacheWarmer.chunkBytes)
        let warmer = PageCacheWarmer(path: path, limit: 2 * PageCacheWarmer.chunkBytes)
        warmer.stop()
        warmer.run()
        XCTAssertEqual(warmer.warmedBytes, 0)
        let missing = PageCacheWarmer(path: directory + "/missing.mdb", limit: 1 << 20)
        missing.run()
        XCTAssertEqual(missing.warmedBytes, 0)
        XCTAssertTrue(missing.isDone, "a read that cannot start has ended")
        XCTAssertTrue(PageCacheWarmer(path: path, limit: 0).isDone, "nothing to read")
    }

    func testTheIdleIOClassIsTheCallingThreadsAlone() throws {
        let classes = Mutex<(set: Int32, after: Int32)?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            let set = authd_set_idle_io_priority()
            classes.withLock { $0 = (set, authd_io_priority_class()) }
            done.signal()
        }.start()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        let result = try XCTUnwrap(classes.withLock { $0 })
        XCTAssertEqual(result.set, 0)
        XCTAssertEqual(result.after, 3, "idle")
        XCTAssertNotEqual(authd_io_priority_class(), 3, "the test's own thread keeps its class")
    }

    func testTheMemoryBoundIsHalfOfTheAvailableMemory() throws {
        let bound = try XCTUnwrap(PageCacheWarmer.memoryBound(), "/proc/meminfo has MemAvailable")
        let physical = Int(ProcessInfo.processInfo.physicalMemory)
        XCTAssertGreaterThan(bound, 0)
        XCTAssertLessThanOrEqual(bound, physical / 2)
    }

    func testTheStoreWarmsItsDataFileAtOpenUnlessToldNotTo() async throws {
        var store = try LMDBStore(directory: directory)
        for n in 0..<200 { try await store.write { w in try w.insertUser(sampleUser("user\(n)", email: "u\(n)@example.com")) } }
        store.close()

        store = try LMDBStore(directory: directory)
        let deadline = Date().addingTimeInterval(10)
        var statistics = try store.statistics()
        while !statistics.dataPrewarmDone, Date() < deadline {
            try await Task.sleep(for: .milliseconds(20))
            statistics = try store.statistics()
        }
        XCTAssertTrue(statistics.dataPrewarmDone)
        XCTAssertGreaterThan(statistics.dataBytes, 0)
        XCTAssertEqual(statistics.dataBytesPrewarmLimit, statistics.dataBytes, "a small store is read whole")
        XCTAssertEqual(statistics.dataBytesPrewarmed, statistics.dataBytes, "the data LMDB uses, read once")
        store.close()

        let cold = try LMDBStore(directory: directory, options: LMDBStore.Options(prewarm: false))
        defer { cold.close() }
        try await Task.sleep(for: .milliseconds(100))
        let coldStatistics = try cold.statistics()
        XCTAssertEqual(coldStatistics.dataBytesPrewarmed, 0)
        XCTAssertEqual(coldStatistics.dataBytesPrewarmLimit, 0)
        XCTAssertTrue(coldStatistics.dataPrewarmDone, "no read to wait for")
    }
}
