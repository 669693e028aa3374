import AuthdStore
import Synchronization

/// A user as `Users/Get` last read it, with the answers a transport encoded from it. Shared
/// with the user cache: handing one out costs a retain.
public final class CachedUser: Sendable {
    public let user: UserRecord
    /// The answer for a server caller, which also sees the password's hash algorithm, and for
    /// a signed-in one (an impersonator). Each lives and dies with this entry, so it is never
    /// staler than it.
    private let encodedForServer = Memo<[UInt8]>()
    private let encodedForUser = Memo<[UInt8]>()

    init(_ user: UserRecord) {
        self.user = user
    }

    /// The answer for `call`'s kind of caller, made by `encode` the first time.
    public func encoded(for call: Call, _ encode: () throws -> [UInt8]) rethrows -> [UInt8] {
        call.caller.isServer ? try encodedForServer.value(orMake: encode) : try encodedForUser.value(orMake: encode)
    }
}

/// Users recently looked up by id, decoded and with their encoded answers: a server looking a
/// user up costs one dictionary lookup instead of a read transaction, an LMDB read, a record
/// decode and an encoding.
///
/// As fresh as the store, as the session cache is: the store's commit observer drops every
/// user a commit changed (record or sessions) before the commit is acknowledged, and an entry
/// read from a snapshot that a commit overtook is not kept (the generation check in
/// `insert`). Users that are not found are not remembered.
final class UserCache: Sendable {
    private struct State {
        var entries: [String: CachedUser] = [:]
        /// Ids in the order they were added, oldest from `oldest` on; some may have been
        /// dropped since.
        var order: [String] = []
        var oldest = 0
        var generation: UInt64 = 0
    }

    /// The most users held; when full, the oldest goes (first in, first out).
    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = capacity
    }

    func lookup(_ userID: String) -> CachedUser? {
        state.withLock { $0.entries[userID] }
    }

    /// The generation to pass to `insert`, for a snapshot opened after this call.
    var generation: UInt64 {
        state.withLock { $0.generation }
    }

    /// Keeps `entry` unless a commit changed users since `generation` was read.
    func insert(_ entry: CachedUser, readAt generation: UInt64) {
        guard capacity > 0 else { return }
        let capacity = capacity
        state.withLock { state in
            guard state.generation == generation, state.entries[entry.user.id] == nil else { return }
            while state.entries.count >= capacity, state.oldest < state.order.count {
                state.entries[state.order[state.oldest]] = nil
                state.oldest += 1
            }
            state.entries[entry.user.id] = entry
            state.order.append(entry.user.id)
            if state.oldest > capacity || state.order.count > 2 * capacity + 64 {
                // Mostly ids dropped since: keep those still held, in their order.
                state.order = state.order[state.oldest...].filter { state.entries[$0] != nil }
                state.oldest = 0
            }
        }
    }

    func invalidate(_ changes: CommittedChanges) {
        guard !changes.userIDs.isEmpty else { return }
        state.withLock { state in
            state.generation &+= 1
            guard !state.entries.isEmpty else { return }
            // A commit names a hundred users or more when sign-ins run at full rate, and this
            // runs on the writer's thread before the commit's answers: walk the smaller side.
            if state.entries.count < changes.userIDs.count {
                state.entries = state.entries.filter { !changes.userIDs.contains($0.key) }
            } else {
                for userID in changes.userIDs { state.entries[userID] = nil }
            }
        }
    }

    var count: Int { state.withLock { $0.entries.count } }
}
