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

    /// The most entries held; when full the cache starts over (cheaper than tracking recency,
    /// and a full refill costs one store read per session).
    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = capacity
    }

    func lookup(_ digest: SecretDigest) -> Entry? {
        state.withLock { $0.entries[digest] }
    }

    /// The generation to pass to `insert` for a snapshot opened after this call.
    var generation: UInt64 {
        state.withLock { $0.generation }
    }

    /// Keeps `entry` unless a commit happened since `generation` was read.
    func insert(_ digest: SecretDigest, _ entry: Entry, readAt generation: UInt64) {
        guard capacity > 0 else { return }
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.entries.count >= capacity {
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
        state.withLock { state in
            state.generation &+= 1
            for userID in changes.userIDs {
                guard let digests = state.byUser.removeValue(forKey: userID) else { continue }
                for digest in digests { state.entries.removeValue(forKey: digest) }
            }
        }
    }

    var count: Int {
        state.withLock { $0.entries.count }
    }
}
