import AuthdStore
import Synchronization

/// Sessions recently resolved, with their users, by the hash of their secret: validating a
/// session usually costs one SHA-256 and one dictionary lookup instead of three LMDB reads and
/// two record decodes.
///
/// Always as fresh as the store: the store's commit observer drops every entry of a user whose
/// record or sessions changed before the change is acknowledged, and an entry read from a
/// snapshot that a commit overtook is not kept (the generation check in `insert`). Expiry and
/// blocked status are checked by the caller on every hit, from the cached records.
final class SessionCache: @unchecked Sendable {
    // Sendable: every shard is behind its own Mutex; the pointer itself never changes.
    typealias Entry = SignedIn

    private struct State {
        var entries: [SecretDigest: Entry] = [:]
        var byUser: [String: [SecretDigest]] = [:]
        var order = InsertionOrder<SecretDigest>()
        /// Moves on every invalidation; a reader notes it before opening its snapshot.
        var generation: UInt64 = 0
        /// Once the shard is full: a word of the digest that last missed at each slot (0: none),
        /// made when first needed. A new session is let into a full shard on its second miss
        /// here, as into a front (see `admits`).
        var doorkeeper: [UInt32] = []
        /// The shard's lookups and evictions, counted under its lock (a front's hits are its own).
        var figures = CacheFigures()

        /// Whether a session not held may take a full shard's oldest entry's place: only if it
        /// missed at its slot the time before too. Otherwise it is noted there and not kept.
        ///
        /// Why: when more sessions are in use than the cache holds, letting every miss in made
        /// every miss also drop the oldest entry (a dictionary delete keyed by user id, the
        /// records freed, under the shard's lock), and sessions checked in turn (a scan, or
        /// `authd-load validate` cycling through its sample) each went just before their turn
        /// came again: with 10 % more sessions in use than places a check cost 8.7-12.0 µs, as
        /// much as with no cache at all (9.0-10.1 µs); let in on a second miss, 2.6-2.8 µs (1M
        /// users, 16 × 16, issue 5). Sessions in use at random stay as likely to be cached
        /// either way (the shard stays full of them), with less churn; a session checked again
        /// and again still comes in, on its second miss; a single pass over many sessions
        /// leaves the cache as it was. What it trades: with sessions checked in turn over and
        /// over at twice the room, fewer may be held (a model: 0.49 of checks hit against
        /// 0.69), but each refused miss skips an eviction, and the daemon measured faster there.
        mutating func admits(_ digest: SecretDigest, slots: Int) -> Bool {
            if doorkeeper.isEmpty { doorkeeper = Array(repeating: 0, count: slots) }
            let slot = Int(truncatingIfNeeded: digest.words.2) & (doorkeeper.count - 1)
            let word = max(1, UInt32(truncatingIfNeeded: digest.words.3))
            guard doorkeeper[slot] == word else {
                doorkeeper[slot] = word
                return false
            }
            doorkeeper[slot] = 0
            return true
        }

        /// Drops the oldest entries until there is room for one more.
        mutating func makeRoom(capacity: Int) {
            while entries.count >= capacity, let digest = order.popOldest() {
                guard let entry = entries.removeValue(forKey: digest) else { continue }
                figures.evictions &+= 1
                entry.markDropped()
                let userID = entry.user.id
                byUser[userID]?.removeAll { $0 == digest }
                if byUser[userID]?.isEmpty == true { byUser[userID] = nil }
            }
        }
    }

    /// The most entries held. When a shard is full its oldest entry goes (first in, first
    /// out) for a new session on its second miss (`State.admits`): sessions in use that fit in
    /// the cache stay there, and a working set a little larger than it still mostly hits.
    /// (Emptying a full shard at once, as before, kept a working set of the cache's own size
    /// only 56-70 % cached: 0.42 of the throughput.)
    let capacity: Int
    private let shardCapacity: Int
    /// Slots of each shard's doorkeeper: a power of two, at least the shard's capacity.
    private let doorkeeperSlots: Int
    /// The shards: one lock's worth of the cache each. Sessions are spread over them by their
    /// digest, so that event loops checking different sessions do not queue on one lock. Plain
    /// memory owned by the cache rather than objects, so that finding a shard retains nothing.
    private let shards: UnsafeMutablePointer<Mutex<State>>
    private let shardCount: Int
    /// The hits of each front made for this cache, for `figures`: kept after the front ends,
    /// so that its hits still count. One per event loop in the daemon (its fronts last as long
    /// as it does); a front per connection only on loops outside the server's group (tests).
    private let frontHits = Mutex<[SessionCacheFront.Hits]>([])

    init(capacity: Int) {
        self.capacity = capacity
        // A shard per 4096 entries, at most 16 (a power of two, for the mask in `shard(for:)`).
        var count = 1
        while count < 16 && count * 4096 < capacity { count *= 2 }
        shardCount = count
        shardCapacity = capacity / count
        doorkeeperSlots = .powerOfTwo(atLeast: shardCapacity, minimum: 64)
        shards = .allocate(capacity: count)
        for index in 0..<count { (shards + index).initialize(to: Mutex(State())) }
    }

    deinit {
        shards.deinitialize(count: shardCount)
        shards.deallocate()
    }

    private func withShard<R>(for digest: SecretDigest, _ body: (inout sending State) -> sending R) -> R {
        // The dictionaries hash the first word; the shard comes from another one.
        shards[Int(truncatingIfNeeded: digest.words.1) & (shardCount - 1)].withLock(body)
    }

    func lookup(_ digest: SecretDigest) -> Entry? {
        withShard(for: digest) { $0.figures.counting($0.entries[digest]) }
    }

    /// Notes a front's hits, to be counted in `figures`.
    fileprivate func register(_ hits: SessionCacheFront.Hits) {
        frontHits.withLock { $0.append(hits) }
    }

    /// The shards' hits, misses and evictions, and the hits of its fronts.
    var figures: CacheFigures {
        var total = CacheFigures()
        for index in 0..<shardCount { total = total + shards[index].withLock { $0.figures } }
        for front in frontHits.withLock({ $0 }) { total.hits &+= front.count }
        return total
    }

    /// The generation to pass to `insert` for `digest`, for a snapshot opened after this call.
    func generation(for digest: SecretDigest) -> UInt64 {
        withShard(for: digest) { $0.generation }
    }

    /// Keeps `entry` unless a commit happened since `generation` was read, or its shard is
    /// full and the session is new there and missed for the first time (`State.admits`);
    /// true when kept.
    @discardableResult
    func insert(_ digest: SecretDigest, _ entry: Entry, readAt generation: UInt64) -> Bool {
        guard shardCapacity > 0 else { return false }
        return withShard(for: digest) { state in
            guard state.generation == generation else { return false }
            if state.entries[digest] == nil && state.entries.count >= shardCapacity {
                guard state.admits(digest, slots: doorkeeperSlots) else { return false }
                state.makeRoom(capacity: shardCapacity)
            }
            if let replaced = state.entries.updateValue(entry, forKey: digest) {
                replaced.markDropped()
            } else {
                state.byUser[entry.user.id, default: []].append(digest)
                state.order.append(digest, capacity: shardCapacity, heldIn: state.entries)
            }
            return true
        }
    }

    func invalidate(_ changes: CommittedChanges) {
        guard !changes.userIDs.isEmpty else { return }
        for index in 0..<shardCount {
            shards[index].withLock { state in
                state.generation &+= 1
                // A commit names a hundred users or more when sign-ins run at full rate, and
                // this runs on the writer's thread before the commit's answers, once per shard:
                // look up whichever side is smaller.
                guard !state.byUser.isEmpty else { return }
                func drop(_ userID: String) {
                    guard let digests = state.byUser.removeValue(forKey: userID) else { return }
                    for digest in digests { state.entries.removeValue(forKey: digest)?.markDropped() }
                }
                if state.byUser.count < changes.userIDs.count {
                    state.byUser.keys.filter { changes.userIDs.contains($0) }.forEach(drop)
                } else {
                    changes.userIDs.forEach(drop)
                }
            }
        }
    }

    var count: Int {
        (0..<shardCount).reduce(0) { total, index in total + shards[index].withLock { $0.entries.count } }
    }
}

/// The session cache's entries as one thread (an event loop) last found them, in a small
/// direct-mapped table that the thread reads with no lock: a session check that hits here
/// costs a load and a compare instead of a shard's lock taken and released (two atomic
/// read-modify-writes) and a dictionary probe (8-10 % of a session check's CPU, perf, issue 5).
///
/// Never staler than the cache: it only holds copies of entries the cache held
/// (`SignedIn.init(loopCopyOf:)`, which keeps the counts that calls move on this thread's core),
/// and the cache marks an entry dropped (`SignedIn.isDropped`, which a copy reads from its entry)
/// before it lets go of it, so before the commit that changed its user is acknowledged; a
/// dropped entry found here is let go and looked up again.
///
/// A session is let in on its second miss in a row at its slot: taking every miss cost a retain
/// and a release per check when the sessions in use are many more than the slots (50,000 of
/// them: 1-5 % slower than no front), while a small set in heavy use still comes in at once.
///
/// Unchecked Sendable: made for one thread and only used on it (`SessionCache` is the shared,
/// locked one).
public final class SessionCacheFront: @unchecked Sendable {
    private struct Slot {
        var digest: SecretDigest
        var entry: SignedIn?
        /// A word of the digest that last missed here, let in if it misses again next.
        var candidate: UInt64
    }

    /// The checks a front answered, read by the cache's `figures` from any thread.
    ///
    /// The count has a cache line of its own: every event loop's front counts on every hit,
    /// each on its own core, and two counts made one after the other for the loops of a group
    /// could share a line (32-byte objects, side by side) and bounce it between the cores on
    /// every check. 128 bytes with the count at 64 keep its line within the object whatever
    /// the object's address (Swift lays a class's stored properties out in order, after its
    /// 16-byte header).
    final class Hits: Sendable {
        private let before: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
        private let counted = Atomic<UInt64>(0)
        private let after: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)

        /// One more: only the front's own thread counts, so a load and a store do (no
        /// read-modify-write, which would cost as much as the lock the front spares).
        func add() { counted.store(counted.load(ordering: .relaxed) &+ 1, ordering: .relaxed) }

        var count: UInt64 { counted.load(ordering: .relaxed) }
    }

    /// The cache this front serves: a front is only ever consulted for it.
    let cache: SessionCache
    private let slots: UnsafeMutablePointer<Slot>
    private let slotCount: Int
    private let hits = Hits()

    /// `slotCount` is rounded up to a power of two; each slot holds one entry, the last one
    /// let in whose digest maps to it.
    init(cache: SessionCache, slotCount: Int) {
        self.cache = cache
        let count = Int.powerOfTwo(atLeast: slotCount)
        self.slotCount = count
        slots = .allocate(capacity: count)
        slots.initialize(
            repeating: Slot(digest: SecretDigest(words: (0, 0, 0, 0), locator: 0), entry: nil, candidate: 0), count: count)
        cache.register(hits)
    }

    deinit {
        slots.deinitialize(count: slotCount)
        slots.deallocate()
    }

    private func slot(for digest: SecretDigest) -> UnsafeMutablePointer<Slot> {
        // The cache's dictionaries hash the first word and its shards use the second.
        slots + (Int(truncatingIfNeeded: digest.words.2) & (slotCount - 1))
    }

    func lookup(_ digest: SecretDigest) -> SignedIn? {
        let slot = slot(for: digest)
        guard let entry = slot.pointee.entry, slot.pointee.digest == digest else { return nil }
        guard !entry.isDropped else {
            slot.pointee.entry = nil
            return nil
        }
        hits.add()
        return entry
    }

    /// Offers `entry`, which the cache held when it was found there or kept, after a miss
    /// here: a copy of it is let in if its digest missed at its slot the time before too.
    func offer(_ digest: SecretDigest, _ entry: SignedIn) {
        let slot = slot(for: digest)
        guard slot.pointee.candidate == digest.words.3 else {
            slot.pointee.candidate = digest.words.3
            return
        }
        slot.pointee.digest = digest
        slot.pointee.entry = SignedIn(loopCopyOf: entry)
    }

    /// Entries held (for tests).
    var count: Int {
        (0..<slotCount).reduce(0) { total, index in total + (slots[index].entry == nil ? 0 : 1) }
    }
}
