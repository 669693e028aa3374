import AuthdStore
import Synchronization

/// A user as `Users/Get` last read it, with the answers a transport encoded from it. Shared
/// with the user cache: handing one out costs a retain.
public final class CachedUser: Sendable {
    public let user: UserRecord
    /// The answer for a server caller, which also sees the password's hash algorithm, and for
    /// a signed-in one (an impersonator). Each lives and dies with this entry, so it is never
    /// staler than it.
    @usableFromInline let encodedForServer = Memo<[UInt8]>()
    @usableFromInline let encodedForUser = Memo<[UInt8]>()

    init(_ user: UserRecord) {
        self.user = user
    }

    /// Runs `body` with the answer for `call`'s kind of caller, made by `encode` the first time.
    /// Inlinable, as `Memo` is: called from another module unspecialized, it looked up the
    /// memo's generic metadata on every `Users/Get` (3.6 % of a backend's call, perf).
    @inlinable
    public func withEncoded<R>(for call: Call, orMake encode: () throws -> [UInt8], _ body: ([UInt8]) throws -> R) rethrows -> R {
        call.caller.isServer
            ? try encodedForServer.withValue(orMake: encode, body) : try encodedForUser.withValue(orMake: encode, body)
    }
}

/// Users recently looked up by id, decoded and with their encoded answers: a server looking a
/// user up costs one dictionary lookup instead of a read transaction, an LMDB read, a record
/// decode and an encoding.
///
/// As fresh as the store (`ReadCache`), as the session cache is: every user a commit changed
/// (record or sessions) is dropped before the commit is acknowledged. Users that are not found
/// are not remembered.
final class UserCache: Sendable {
    private let users: ReadCache<String, CachedUser>

    init(capacity: Int) {
        users = ReadCache(capacity: capacity)
    }

    func lookup(_ userID: String) -> CachedUser? { users.lookup(userID) }

    /// The generation to pass to `insert`, for a snapshot opened after this call.
    var generation: UInt64 { users.generation }

    func insert(_ entry: CachedUser, readAt generation: UInt64) {
        users.insert(entry, for: entry.user.id, readAt: generation)
    }

    func invalidate(_ changes: CommittedChanges) {
        if !changes.userIDs.isEmpty { users.drop(changes.userIDs) }
    }

    var count: Int { users.count }

    var figures: CacheFigures { users.figures }
}
