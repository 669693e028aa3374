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

    init(capacity: Int) {
        keys = ReadCache(capacity: capacity)
    }

    func lookup(_ digest: SecretDigest) -> Entry? { keys.lookup(digest) }

    /// The generation to pass to `insert`, for a snapshot opened after this call.
    var generation: UInt64 { keys.generation }

    func insert(_ digest: SecretDigest, _ entry: Entry, readAt generation: UInt64) {
        keys.insert(entry, for: digest, readAt: generation)
    }

    func invalidate(_ changes: CommittedChanges) {
        if changes.apiKeys { keys.dropAll() }
    }

    var count: Int { keys.count }
}
