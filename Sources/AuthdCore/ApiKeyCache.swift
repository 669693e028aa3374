import AuthdStore

/// Server API keys recently resolved, by the hash of their secret: a call made with a key costs
/// one SHA-256 and one dictionary lookup instead of a read transaction, two LMDB reads, a
/// record decode and a set of scopes built.
///
/// As fresh as the store (`ReadCache`): a commit that creates, revokes or changes any key
/// empties it before the commit is acknowledged. Expiry is checked by the caller on every hit.
/// Only keys that were found and valid are kept: remembering unknown secrets would let a caller
/// trying secrets fill the cache.
final class ApiKeyCache: Sendable {
    struct Entry: Sendable {
        let identity: ServerIdentity
        /// 0 for a key that never expires.
        let expire: Int64
    }

    private let keys: ReadCache<SecretDigest, Entry>

    var capacity: Int { keys.capacity }

    init(capacity: Int) {
        keys = ReadCache(capacity: capacity)
    }

    func lookup(_ digest: SecretDigest) -> Entry? { keys.lookup(digest) }

    /// The generation to pass to `insert` or `ApiKeyFront.keep`, for a snapshot opened after
    /// this call (read with no lock). It moves each time a commit empties the cache.
    var generation: UInt64 { keys.generation }

    func insert(_ digest: SecretDigest, _ entry: Entry, readAt generation: UInt64) {
        keys.insert(entry, for: digest, readAt: generation)
    }

    func invalidate(_ changes: CommittedChanges) {
        if changes.apiKeys { keys.dropAll() }
    }

    var count: Int { keys.count }

    /// How the cache served its lookups (for tests: a front's hit does not reach it).
    var figures: CacheFigures { keys.figures }
}

/// The API keys one thread (an event loop) last used, read with no lock: a call with a key the
/// front holds costs a compare instead of the cache's lock, a dictionary probe and a copy of
/// the entry out of the cache shared by every loop (with several loops, that lock and the
/// entry's counts were contended on every call: perf, issue 5).
///
/// Never staler than the cache: an entry is held only while the cache's generation has not
/// moved since the entry was looked up, and every commit that touches a key empties the cache,
/// which moves it, before the commit is acknowledged. Expiry is checked by the caller on every
/// use.
///
/// The entry kept is the loop's own copy, so that the counts of its strings and scopes, which
/// every call moves, are not shared with the other loops.
///
/// Unchecked Sendable: made for one thread and only used on it.
public final class ApiKeyFront: @unchecked Sendable {
    private struct Slot {
        let digest: SecretDigest
        let entry: ApiKeyCache.Entry
        let generation: UInt64
    }

    let cache: ApiKeyCache
    /// A backend uses one key or a few: a small direct-mapped table.
    private var slots: [Slot?]

    init(cache: ApiKeyCache, slotCount: Int = 8) {
        self.cache = cache
        slots = Array(repeating: nil, count: Int.powerOfTwo(atLeast: slotCount))
    }

    private func index(for digest: SecretDigest) -> Int {
        Int(truncatingIfNeeded: digest.words.2) & (slots.count - 1)
    }

    func lookup(_ digest: SecretDigest) -> ApiKeyCache.Entry? {
        guard let slot = slots[index(for: digest)], slot.digest == digest, slot.generation == cache.generation
        else { return nil }
        return slot.entry
    }

    /// Keeps a copy of `entry`, which the cache gave or was given after `generation` was read.
    func keep(_ digest: SecretDigest, _ entry: ApiKeyCache.Entry, readAt generation: UInt64) {
        slots[index(for: digest)] = Slot(
            digest: digest, entry: ApiKeyCache.Entry(identity: entry.identity.loopCopy(), expire: entry.expire),
            generation: generation)
    }

    /// Keys held (for tests).
    var count: Int { slots.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }
}
