import Synchronization

/// How a cache served its lookups since start, for the daemon's statistics: an operator sizes
/// the cache by them (evictions that keep growing: more in use than it holds).
public struct CacheFigures: Sendable, Equatable {
    /// Lookups it answered.
    public var hits: UInt64 = 0
    /// Lookups it did not, which read the store.
    public var misses: UInt64 = 0
    /// Entries that left it, full, to make room for newer ones (not those a commit dropped).
    public var evictions: UInt64 = 0

    public init(hits: UInt64 = 0, misses: UInt64 = 0, evictions: UInt64 = 0) {
        self.hits = hits
        self.misses = misses
        self.evictions = evictions
    }

    /// Counts a lookup that found `found` (nil: a miss), and hands it back.
    mutating func counting<Value>(_ found: Value?) -> Value? {
        if found == nil { misses &+= 1 } else { hits &+= 1 }
        return found
    }

    static func + (a: CacheFigures, b: CacheFigures) -> CacheFigures {
        CacheFigures(hits: a.hits &+ b.hits, misses: a.misses &+ b.misses, evictions: a.evictions &+ b.evictions)
    }
}

/// Records read from the store and kept, by key, for as long as no commit changes them; the
/// common part of the API-key and user caches.
///
/// Never staler than the store: the owner drops what a commit changed from the store's commit
/// observer, before the commit is acknowledged, and a value read from a snapshot that such a
/// commit overtook is not kept (the generation noted before the read must still be current at
/// `insert`). Full, it lets its oldest entry go (first in, first out).
final class ReadCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct State {
        var entries: [Key: Value] = [:]
        var order = InsertionOrder<Key>()
        /// Counted under the lock each lookup and insertion takes anyway.
        var figures = CacheFigures()
    }

    let capacity: Int
    private let state = Mutex(State())
    /// Moves on every drop, under the lock once the drop is done; a reader notes it before
    /// opening its snapshot. Read without the lock, so that an owner's per-thread front can
    /// check on every call that nothing was dropped since it took an entry (`ApiKeyFront`).
    private let drops = Atomic<UInt64>(0)

    init(capacity: Int) {
        self.capacity = capacity
    }

    func lookup(_ key: Key) -> Value? {
        state.withLock { $0.figures.counting($0.entries[key]) }
    }

    /// The generation to pass to `insert`, for a snapshot opened after this call.
    var generation: UInt64 { drops.load(ordering: .acquiring) }

    /// Keeps `value` unless something was dropped since `generation` was read.
    func insert(_ value: Value, for key: Key, readAt generation: UInt64) {
        guard capacity > 0 else { return }
        let capacity = capacity
        state.withLock { state in
            guard drops.load(ordering: .relaxed) == generation, state.entries[key] == nil else { return }
            while state.entries.count >= capacity, let oldest = state.order.popOldest() {
                if state.entries.removeValue(forKey: oldest) != nil { state.figures.evictions &+= 1 }
            }
            state.entries[key] = value
            state.order.append(key, capacity: capacity, heldIn: state.entries)
        }
    }

    /// Drops `keys` (a commit changed them).
    func drop(_ keys: Set<Key>) {
        state.withLock { state in
            defer { drops.add(1, ordering: .releasing) }
            guard !state.entries.isEmpty else { return }
            // A commit names a hundred keys or more when sign-ins run at full rate, and this
            // runs on the writer's thread before the commit's answers: walk the smaller side.
            if state.entries.count < keys.count {
                state.entries = state.entries.filter { !keys.contains($0.key) }
            } else {
                for key in keys { state.entries[key] = nil }
            }
        }
    }

    /// Drops everything.
    func dropAll() {
        state.withLock { state in
            state.entries.removeAll()
            state.order.removeAll()
            drops.add(1, ordering: .releasing)
        }
    }

    var count: Int { state.withLock { $0.entries.count } }

    var figures: CacheFigures { state.withLock { $0.figures } }
}
