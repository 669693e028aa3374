import CIOPriority
import Foundation
import Logging
import Synchronization

/// Reads the data file into the page cache once, at start, on a background thread.
///
/// Why: every read of the store is a read of the memory-mapped file. After a reboot none of it
/// is cached, and each validation waits for its pages to come in one random read at a time, on
/// the event loop that serves it (LMDB opens with `MDB_NORDAHEAD`). Read in order, the file
/// comes in at the disk's sequential rate instead. Measured on 1M users and 5M sessions (3.5
/// GB, read in 5.5-12 s): validations 3-6 s after start ran at 28-101k/s against 7.5-12k/s
/// without it, and 6-9 s after at 392-629k/s against 102-293k/s; in the first 3 s at the
/// same rate or lower, with a worse p99 (BENCHMARKS.md, nineteenth pass).
///
/// How: 256 KiB reads through a descriptor of its own marked `POSIX_FADV_RANDOM`. With
/// readahead off the kernel still reads each chunk in one request, but caches it a page per
/// folio, which is what `GrowthZone` keeps for the pages LMDB writes (measured: 180 random
/// page writes per fdatasync then ran at 25k pages/s, against 18-20k after the same reads with
/// readahead on; `scripts/bench floors --filter "Random.*read back.*"`). The advice is the
/// descriptor's own: LMDB's map is untouched.
///
/// Bounded: it reads at most half the memory the kernel says is available, so that a store
/// larger than memory does not push everything else out; it runs at nice 19 in the idle I/O
/// class, stops when the store closes, and never reads past the data LMDB uses.
final class PageCacheWarmer: Sendable {
    static let chunkBytes = 256 << 10

    private let path: String
    private let limit: Int
    private let warmed = Atomic<UInt64>(0)
    private let ended = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)

    /// `limit`: the bytes to read from the start of the file (LMDB's data end, bounded by memory).
    init(path: String, limit: Int) {
        self.path = path
        self.limit = max(0, limit)
    }

    /// Bytes read into the cache so far.
    var warmedBytes: UInt64 { warmed.load(ordering: .relaxed) }

    /// The bytes the read covers, from the start of the file.
    var limitBytes: UInt64 { UInt64(limit) }

    /// Whether the read has ended (at its limit, at the end of the file, or stopped), or had
    /// nothing to read. Why a flag and not `warmedBytes == limitBytes`: a file shorter than the
    /// limit ends the read below it, and a waiter would wait forever.
    var isDone: Bool { limit == 0 || ended.load(ordering: .acquiring) }

    /// Half of `MemAvailable` in /proc/meminfo; nil where it cannot be read.
    static func memoryBound() -> Int? {
        procKiBFields("/proc/meminfo")["MemAvailable:"].map { Int($0 / 2) }
    }

    /// Starts the read on a thread of its own.
    func start(logger: Logger) {
        guard limit > 0 else { return }
        Thread { [self] in
            nameCurrentThread("authd-prewarm")
            // For this thread alone (Linux): the reads yield the cores, and the disk, to
            // everything else. Without the idle I/O class the validations' page faults queued
            // behind the big reads: 117 calls/s at p50 3.3 s in the first 3 s of a cold start
            // on 1M users, against 4,100/s with no warming at all (BENCHMARKS.md).
            setCurrentThreadNice(19)
            _ = authd_set_idle_io_priority()
            let started = ContinuousClock.now
            run()
            let seconds = started.duration(to: .now) / .seconds(1)
            logger.info(
                "data file read into the page cache",
                metadata: ["bytes": "\(warmedBytes)", "seconds": "\((seconds * 10).rounded() / 10)"])
        }.start()
    }

    /// Stops the read at its next chunk.
    func stop() {
        stopping.store(true, ordering: .relaxed)
    }

    /// Reads the file up to the limit; `start()` runs it on its own thread.
    func run() {
        defer { ended.store(true, ordering: .releasing) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.chunkBytes, alignment: 4096)
        defer { buffer.deallocate() }
        var offset = 0
        while offset < limit, !stopping.load(ordering: .relaxed) {
            let count = pread(fd, buffer, min(Self.chunkBytes, limit - offset), off_t(offset))
            guard count > 0 else { return }
            offset += count
            warmed.store(UInt64(offset), ordering: .relaxed)
        }
    }
}
