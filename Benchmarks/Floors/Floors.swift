import AuthdCore
import AuthdStore
import Benchmark
import CLMDB
import Foundation

/// The floors and ceilings authd's figures are compared against, measured on the machine at
/// hand (`scripts/bench floors`; BENCHMARKS.md quotes the ratios):
/// - one fsync per write: a tiny LMDB loop committing one put per transaction (the rate group
///   commit must beat by 10x);
/// - group commit: the store's writer with 256 writes in flight, and its batch sizes;
/// - Argon2id on every core at the daemon's default parameters (the login ceiling);
/// - the disk's ceiling for commits that each write many scattered pages (what a B-tree commit
///   of unrelated sessions and tokens is): random 4 KiB pages, one fdatasync per batch; and
///   the same number of pages in one run, what the commit would cost if its pages lay together.
let writesPerSecond = BenchmarkMetric.custom("writes/s", polarity: .prefersLarger, useScalingFactor: false)
let writesPerCommit = BenchmarkMetric.custom("writes per commit", polarity: .prefersLarger, useScalingFactor: false)
let hashesPerSecond = BenchmarkMetric.custom("hashes/s", polarity: .prefersLarger, useScalingFactor: false)
let pagesPerSecond = BenchmarkMetric.custom("pages/s", polarity: .prefersLarger, useScalingFactor: false)

func configuration(_ metrics: [BenchmarkMetric]) -> Benchmark.Configuration {
    Benchmark.Configuration(
        metrics: [.wallClock] + metrics, warmupIterations: 1, maxDuration: .seconds(5), maxIterations: 20)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark("LMDB one put per fsynced commit (1000 writes)", configuration: configuration([writesPerSecond])) { benchmark in
        let floor = try FsyncFloor()
        defer { floor.close() }
        for _ in benchmark.scaledIterations {
            let started = ContinuousClock.now
            for _ in 0..<1000 { try floor.write() }
            benchmark.measurement(writesPerSecond, perSecond(1000, since: started))
        }
    }

    Benchmark("LMDBStore group commit, 256 in flight (4096 writes)", configuration: configuration([writesPerSecond, writesPerCommit])) { benchmark in
        let folder = "/tmp/authd-bench-\(UUID().uuidString.prefix(8))"
        let store = try LMDBStore(directory: folder)
        defer {
            store.close()
            try? FileManager.default.removeItem(atPath: folder)
        }
        for iteration in benchmark.scaledIterations {
            let before = try store.statistics()
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<256 {
                    group.addTask {
                        for n in 0..<16 {
                            let id = "u\(iteration)-\(worker)-\(n)"
                            try await store.write { w in try w.insertUser(UserRecord(id: id, createdAt: 1)) }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let after = try store.statistics()
            benchmark.measurement(writesPerSecond, perSecond(4096, since: started))
            let commits = max(1, after.commits - before.commits)
            benchmark.measurement(writesPerCommit, Int((after.writes - before.writes) / commits))
        }
    }

    // 180 pages: what one commit of the tokens scenario writes at 16x16 (strace, issue 5).
    for pages in [1, 20, 180] {
        Benchmark("Random 4 KiB pages, \(pages) per fdatasync (2 s)", configuration: configuration([pagesPerSecond])) { benchmark in
            let file = try ScatteredPages()
            defer { file.close() }
            try measureCommits(benchmark, file, pages: pages)
        }
    }

    // The same 180 pages in one run at a random offset: the disk merges them into a few
    // requests. The gap to the scattered pages is what page placement costs a commit.
    Benchmark("Contiguous 4 KiB pages, 180 per fdatasync (2 s)", configuration: configuration([pagesPerSecond])) { benchmark in
        let file = try ScatteredPages()
        defer { file.close() }
        try measureCommits(benchmark, file, pages: 180, contiguous: true)
    }

    // The same 180 pages per commit into a file written whole first, in 4 KiB writes (cached a
    // page per folio) or in 256 KiB writes (large folios on ext4 since Linux 6.16, and XFS): why
    // the store caches the file ahead of its data a page at a time (GrowthZone).
    for chunkKiB in [4, 256] {
        Benchmark(
            "Random 4 KiB pages, 180 per fdatasync, file written in \(chunkKiB) KiB writes (2 s)",
            configuration: configuration([pagesPerSecond])
        ) { benchmark in
            let file = try ScatteredPages(writtenInChunksOf: chunkKiB << 10)
            defer { file.close() }
            try measureCommits(benchmark, file, pages: 180)
        }
    }

    // The same, into a file flushed from the cache and read back in 256 KiB reads, with
    // readahead on or off for the reading descriptor: PageCacheWarmer reads with it off, so
    // that the pages LMDB writes afterwards are cached one per folio, as GrowthZone keeps them.
    for readahead in [false, true] {
        Benchmark(
            "Random 4 KiB pages, 180 per fdatasync, file read back in 256 KiB reads, readahead \(readahead ? "on" : "off") (2 s)",
            configuration: configuration([pagesPerSecond])
        ) { benchmark in
            let file = try ScatteredPages(writtenInChunksOf: 256 << 10)
            defer { file.close() }
            try file.readBack(inChunksOf: 256 << 10, readahead: readahead)
            try measureCommits(benchmark, file, pages: 180)
        }
    }

    let cores = ProcessInfo.processInfo.activeProcessorCount
    Benchmark("Argon2id OWASP (19 MiB, t=2, p=1) on every core", configuration: configuration([hashesPerSecond])) { benchmark in
        let hasher = PasswordHasher(parameters: .owasp)
        for _ in benchmark.scaledIterations {
            let started = ContinuousClock.now
            let rounds = 4
            DispatchQueue.concurrentPerform(iterations: cores * rounds) { _ in
                blackHole(try? hasher.hash("correct horse battery staple"))
            }
            benchmark.measurement(hashesPerSecond, perSecond(cores * rounds, since: started))
        }
    }
}

/// Commits of `pages` pages each to `file` for 2 s per iteration; records the pages per second.
func measureCommits(_ benchmark: Benchmark, _ file: ScatteredPages, pages: Int, contiguous: Bool = false) throws {
    for _ in benchmark.scaledIterations {
        let started = ContinuousClock.now
        var written = 0
        while started.duration(to: .now) < .seconds(2) {
            try file.commit(pages: pages, contiguous: contiguous)
            written += pages
        }
        benchmark.measurement(pagesPerSecond, perSecond(written, since: started))
    }
}

func perSecond(_ count: Int, since started: ContinuousClock.Instant) -> Int {
    let elapsed = started.duration(to: .now)
    let seconds = elapsed / .seconds(1)
    return Int((Double(count) / max(seconds, 1e-9)).rounded())
}

/// An LMDB environment with default (fully synced) commits and nothing else.
final class FsyncFloor {
    let folder = "/tmp/authd-floor-\(UUID().uuidString.prefix(8))"
    var env: OpaquePointer?
    var dbi: MDB_dbi = 0
    var counter: UInt64 = 0

    struct Failed: Error { let rc: Int32 }

    init() throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try check(mdb_env_create(&env))
        try check(mdb_env_set_mapsize(env, 1 << 30))
        try check(mdb_env_open(env, folder, 0, 0o600))
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn))
        try check(mdb_dbi_open(txn, nil, 0, &dbi))
        try check(mdb_txn_commit(txn))
    }

    func write() throws {
        counter += 1
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn))
        var key = counter.bigEndian
        var value = [UInt8](repeating: 0xAB, count: 100)
        try withUnsafeMutableBytes(of: &key) { k in
            try value.withUnsafeMutableBytes { v in
                var mk = MDB_val(mv_size: k.count, mv_data: k.baseAddress)
                var mv = MDB_val(mv_size: v.count, mv_data: v.baseAddress)
                try check(mdb_put(txn, dbi, &mk, &mv, 0))
            }
        }
        try check(mdb_txn_commit(txn))
    }

    func close() {
        mdb_env_close(env)
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func check(_ rc: Int32) throws {
        guard rc == 0 else { throw Failed(rc: rc) }
    }
}

/// A 36 MiB file (the size of the tokens scenario's data file) written a page at a time, at
/// random offsets or in one run, with one fdatasync per commit.
final class ScatteredPages {
    let path = "/tmp/authd-pages-\(UUID().uuidString.prefix(8))"
    let fd: Int32
    let pageCount = 36 * 256
    let page = [UInt8](repeating: 0xAB, count: 4096)

    struct Failed: Error { let what: String }

    /// A sparse file, or with `chunk`, one written whole in writes of that many bytes.
    init(writtenInChunksOf chunk: Int? = nil) throws {
        fd = open(path, O_RDWR | O_CREAT, 0o600)
        guard fd >= 0, ftruncate(fd, off_t(pageCount * 4096)) == 0 else { throw Failed(what: "create \(path)") }
        guard let chunk else { return }
        let zeros = [UInt8](repeating: 0, count: chunk)
        for offset in stride(from: 0, to: pageCount * 4096, by: chunk) {
            guard zeros.withUnsafeBytes({ pwrite(fd, $0.baseAddress, chunk, off_t(offset)) }) == chunk else {
                throw Failed(what: "pwrite")
            }
        }
        guard fdatasync(fd) == 0 else { throw Failed(what: "fdatasync") }
    }

    /// `pages` page writes at random offsets, or with `contiguous` in one run from a random
    /// page on, then one fdatasync.
    func commit(pages: Int, contiguous: Bool = false) throws {
        let first = Int.random(in: 0...(pageCount - pages))
        for index in 0..<pages {
            let offset = off_t((contiguous ? first + index : Int.random(in: 0..<pageCount)) * 4096)
            guard page.withUnsafeBytes({ pwrite(fd, $0.baseAddress, 4096, offset) }) == 4096 else { throw Failed(what: "pwrite") }
        }
        guard fdatasync(fd) == 0 else { throw Failed(what: "fdatasync") }
    }

    /// Drops the file from the page cache, then reads it whole in reads of `chunk` bytes
    /// through a descriptor of its own, with readahead on or off (`POSIX_FADV_RANDOM`) for it.
    func readBack(inChunksOf chunk: Int, readahead: Bool) throws {
        guard posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0 else { throw Failed(what: "posix_fadvise") }
        let reader = open(path, O_RDONLY)
        guard reader >= 0 else { throw Failed(what: "open \(path)") }
        defer { _ = Foundation.close(reader) }
        _ = posix_fadvise(reader, 0, 0, readahead ? POSIX_FADV_NORMAL : POSIX_FADV_RANDOM)
        var buffer = [UInt8](repeating: 0, count: chunk)
        for offset in stride(from: 0, to: pageCount * 4096, by: chunk) {
            guard buffer.withUnsafeMutableBytes({ pread(reader, $0.baseAddress, chunk, off_t(offset)) }) == chunk else {
                throw Failed(what: "pread")
            }
        }
    }

    func close() {
        _ = Foundation.close(fd)
        unlink(path)
    }
}
