/// The keys of a cache in the order they were added, so that a full cache lets its oldest
/// entry go (first in, first out). Shared by `ReadCache` and the session cache's shards.
///
/// A key the cache drops for another reason (a commit changed it) is not searched for here:
/// `popOldest` hands it out in its turn, and the cache skips what it no longer holds. So that
/// such keys do not pile up, `append` compacts the order once it holds a few times the
/// capacity.
struct InsertionOrder<Key: Hashable> {
    private var keys: [Key] = []
    /// Where the oldest key not yet handed out is.
    private var oldest = 0

    /// The oldest key not yet handed out, or nil when every key has been.
    mutating func popOldest() -> Key? {
        guard oldest < keys.count else { return nil }
        oldest += 1
        return keys[oldest - 1]
    }

    /// Adds `key` as the newest. `entries` are what the cache still holds, for compacting.
    mutating func append<Value>(_ key: Key, capacity: Int, heldIn entries: [Key: Value]) {
        keys.append(key)
        if oldest > capacity {
            keys.removeFirst(oldest)
            oldest = 0
        }
        if keys.count > 2 * capacity + 64 {
            // Mostly keys dropped since: keep those still held, in their order.
            keys = keys[oldest...].filter { entries[$0] != nil }
            oldest = 0
        }
    }

    mutating func removeAll() {
        keys.removeAll()
        oldest = 0
    }

    /// Keys not yet handed out, dropped ones included (tests).
    var count: Int { keys.count - oldest }
}
