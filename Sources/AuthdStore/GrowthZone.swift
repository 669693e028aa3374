import CLMDB
import Glibc

/// Keeps the stretch of the data file just past LMDB's last page in the page cache, one 4 KiB
/// page per cache entry, before LMDB writes there.
///
/// Why: Linux caches a file in folios of up to hundreds of KiB (ext4 since 6.16, XFS earlier)
/// when a write or a readahead covers a large range, and LMDB writes the pages it adds at the
/// file's end in runs of up to 64. Every later 4 KiB write into such a folio, and its writeback
/// at the commit's fsync, walks all of the folio's blocks: measured here 7.2 µs of kernel time
/// per random 4 KiB page write plus fsync in a file cached in 256 KiB folios, against 3.9 µs in
/// single-page folios. So the zone ahead of the data is filled first by 4 KiB reads with
/// readahead off (which cache single pages), and LMDB's later writes land in those. Pages
/// LMDB reads back in after eviction come one at a time too (`MDB_NORDAHEAD`).
///
/// The zone is sparse (a hole in the file, extended with `ftruncate`) until LMDB writes in it;
/// LMDB keeps its own end of data in its meta page and never reads the file's size. Run only
/// by the writer thread, between commits.
final class GrowthZone: @unchecked Sendable {
    // Thread-safety: only the writer thread calls `keepAhead`; the rest is immutable after init.
    /// Bytes kept cached past LMDB's last page.
    private let ahead: Int
    /// The most bytes cached per call, so that one commit never waits long for it.
    private let step: Int
    private let descriptor: Int32
    private let pageSize: Int
    private let limit: Int
    /// Where the cached zone ends; nil until the first call.
    private var cachedEnd: Int?

    /// Nil when the data file cannot be opened: the zone is only a speed-up.
    init?(path: String, pageSize: Int, mapSize: Int, ahead: Int, step: Int) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        // Readahead off for this descriptor: each read caches exactly the page it asked for.
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM)
        descriptor = fd
        self.pageSize = pageSize
        limit = mapSize
        self.ahead = ahead
        self.step = max(step, pageSize)
    }

    deinit {
        close(descriptor)
    }

    /// Extends the file and caches the next `step` of the zone when fewer than `ahead` bytes
    /// past `dataEnd` (LMDB's last page + 1, in bytes) are cached.
    func keepAhead(of dataEnd: Int) {
        let goal = min(dataEnd + ahead, limit)
        var start = max(cachedEnd ?? dataEnd, dataEnd)
        start -= start % pageSize
        guard start < goal else { return }
        let end = min(goal, start + step)
        // The file's size is read each time (once per step): LMDB grows the file too, and it
        // must never be cut.
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return }
        if end > Int(status.st_size) {
            guard ftruncate(descriptor, off_t(end)) == 0 else { return }
        }
        withUnsafeTemporaryAllocation(byteCount: pageSize, alignment: pageSize) { page in
            var offset = start
            while offset < end {
                guard pread(descriptor, page.baseAddress, pageSize, off_t(offset)) == pageSize else { break }
                offset += pageSize
            }
            cachedEnd = offset
        }
    }
}
