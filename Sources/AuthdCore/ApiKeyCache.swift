import AuthdStore
import Synchronization

/// Server API keys recently resolved, by the hash of their secret: a call made with a key costs
/// one SHA-256 and one dictionary lookup instead of a read transaction, two LMDB reads, a
/// record decode and a set of scopes built.
///
/// As fresh as the store: a commit that creates, revokes or changes any key empties the cache
/// before it is acknowledged (the store's commit observer), and a key read from a snapshot that
/// such a commit overtook is not kept (the generation check in `insert`). Expiry is checked by
/// the caller on every hit. Only keys that were found and valid are kept: remembering unknown
/// secrets would let a caller trying secrets fill the cache.
final class ApiKeyCache: Sendable {
    struct Entry: Sendable {
        let identity: ServerIdentity
        /// 0 for a key that never expires.
        let expire: Int64
    }

    private struct State {
        var entries: [SecretDigest: Entry] = [:]
        /// Moves on every invalidation; a reader notes it before opening its snapshot.
        var generation: UInt64 = 0
    }

    /// The most keys held; past it the cache starts over (an operator makes keys by hand, so a
    /// full cache means keys come and go faster than they are used).
    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = capacity
    }

    func lookup(_ digest: SecretDigest) -> Entry? {
        state.withLock { $0.entries[digest] }
    }

    /// The generation to pass to `insert`, for a snapshot opened after this call.
    var generation: UInt64 {
        state.withLock { $0.generation }
    }

    /// Keeps `entry` unless a key changed since `generation` was read.
    func insert(_ digest: SecretDigest, _ entry: Entry, readAt generation: UInt64) {
        guard capacity > 0 else { return }
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.entries.count >= capacity { state.entries.removeAll() }
            state.entries[digest] = entry
        }
    }

    func invalidate(_ changes: CommittedChanges) {
        guard changes.apiKeys else { return }
        state.withLock { state in
            state.generation &+= 1
            state.entries.removeAll()
        }
    }

    var count: Int { state.withLock { $0.entries.count } }
}
