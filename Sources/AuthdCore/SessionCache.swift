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
final class SessionCache: Sendable {
    typealias Entry = SignedIn

    private struct State {
        var entries: [SecretDigest: Entry] = [:]
        var byUser: [String: [SecretDigest]] = [:]
        /// Moves on every invalidation; a reader notes it before opening its snapshot.
        var generation: UInt64 = 0
    }

    /// One lock's worth of the cache. Sessions are spread over shards by their digest, so that
    /// event loops checking different sessions do not queue on one lock.
    private final class Shard: Sendable {
        let state = Mutex(State())
    }

    /// The most entries held; when a shard is full it starts over (cheaper than tracking
    /// recency, and a refill costs one store read per session).
    let capacity: Int
    private let shardCapacity: Int
    private let shards: [Shard]

    init(capacity: Int) {
        self.capacity = capacity
        // A shard per 4096 entries, at most 16 (a power of two, for the mask in `shard(for:)`).
        var count = 1
        while count < 16 && count * 4096 < capacity { count *= 2 }
        shards = (0..<count).map { _ in Shard() }
        shardCapacity = capacity / count
    }

    private func shard(for digest: SecretDigest) -> Shard {
        // The dictionaries hash the first word; the shard comes from another one.
        shards[Int(truncatingIfNeeded: digest.words.1) & (shards.count - 1)]
    }

    func lookup(_ digest: SecretDigest) -> Entry? {
        shard(for: digest).state.withLock { $0.entries[digest] }
    }

    /// The generation to pass to `insert` for `digest`, for a snapshot opened after this call.
    func generation(for digest: SecretDigest) -> UInt64 {
        shard(for: digest).state.withLock { $0.generation }
    }

    /// Keeps `entry` unless a commit happened since `generation` was read.
    func insert(_ digest: SecretDigest, _ entry: Entry, readAt generation: UInt64) {
        guard shardCapacity > 0 else { return }
        shard(for: digest).state.withLock { state in
            guard state.generation == generation else { return }
            if state.entries.count >= shardCapacity {
                state.entries.removeAll(keepingCapacity: true)
                state.byUser.removeAll(keepingCapacity: true)
            }
            if state.entries.updateValue(entry, forKey: digest) == nil {
                state.byUser[entry.user.id, default: []].append(digest)
            }
        }
    }

    func invalidate(_ changes: CommittedChanges) {
        guard !changes.userIDs.isEmpty else { return }
        for shard in shards {
            shard.state.withLock { state in
                state.generation &+= 1
                for userID in changes.userIDs {
                    guard let digests = state.byUser.removeValue(forKey: userID) else { continue }
                    for digest in digests { state.entries.removeValue(forKey: digest) }
                }
            }
        }
    }

    var count: Int {
        shards.reduce(0) { total, shard in total + shard.state.withLock { $0.entries.count } }
    }
}
