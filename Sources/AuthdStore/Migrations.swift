import CLMDB

/// The steps that bring an older data folder to `LMDBStore.schemaVersion`, by the version they
/// start from. Each runs inside the one transaction that opens the store.
enum Migrations {
    static let steps: [UInt32: @Sendable (LMDBWriter) throws -> Void] = [
        1: mergeUserIndexes,
        2: chainUserChanges,
    ]

    /// Version 1 kept a user's sessions, tokens and change-log entries in three indexes
    /// (`sessions_by_user`, `tokens_by_user`, `changes_by_user`, keyed user id, 0x00, rest);
    /// version 2 keeps them in `user_entries` under user id, 0x00, a kind byte, rest, so that one
    /// sign-in dirties one page instead of three. The old indexes are deleted.
    /// `sessions_by_secret` needs nothing: its version-1 keys (the hash alone) stay valid for
    /// the sessions that have no locator.
    static func mergeUserIndexes(_ writer: LMDBWriter) throws {
        let moves: [(name: String, kind: Keys.UserEntry)] = [
            ("sessions_by_user", .session), ("tokens_by_user", .token), ("changes_by_user", .change),
        ]
        for (name, kind) in moves {
            var dbi: MDB_dbi = 0
            let rc = mdb_dbi_open(writer.txn, name, 0, &dbi)
            if rc == MDB_NOTFOUND { continue }
            try lmdbCheck(rc, "mdb_dbi_open \(name)")
            // Written while the old index is walked (a cursor stays valid while other trees of
            // its transaction change), so a large folder is not held in memory.
            try writer.scan(dbi, from: [0]) { key, _ in
                guard let separator = key.firstIndex(of: 0) else {
                    throw StoreError(.corrupt, "\(name) holds a key without a user id")
                }
                let moved = Array(key[...separator]) + [kind.rawValue] + Array(key[(separator + 1)...])
                try writer.put(writer.environment.userEntries, moved, [])
                return true
            }
            try lmdbCheck(mdb_drop(writer.txn, dbi, 1), "mdb_drop \(name)")
        }
    }

    /// Version 2 kept a key in `user_entries` for each of a user's change-log entries (kind
    /// 0x01, then the sequence); version 3 chains the entries instead: each names the user's
    /// previous one, and one head per user (kind 0x04) holds the newest and the count. The
    /// keys are read a chunk at a time in key order (a user's oldest first), then the chunk's
    /// entries are rewritten and its keys deleted; the next chunk starts after the last key, so
    /// a large folder is neither held in memory nor walked by a cursor while its tree changes.
    /// A key whose entry is missing from the log is dropped.
    static func chainUserChanges(_ writer: LMDBWriter) throws {
        let environment = writer.environment
        var start: [UInt8] = [0]
        var user: (id: String, newest: UInt64, count: UInt64)?
        while true {
            var chunk: [(userID: String, sequence: UInt64, key: [UInt8])] = []
            try writer.scan(environment.userEntries, from: start) { key, _ in
                guard let separator = key.firstIndex(of: 0) else {
                    throw StoreError(.corrupt, "user_entries holds a key without a user id")
                }
                let kind = separator + 1
                guard kind < key.count, key[kind] == Keys.UserEntry.change.rawValue else { return true }
                guard key.count == kind + 9,
                    let sequence = Keys.readBigEndian64(UnsafeRawBufferPointer(rebasing: key[(kind + 1)...]))
                else {
                    throw StoreError(.corrupt, "user_entries holds a change key of \(key.count) bytes")
                }
                chunk.append((String(decoding: key[..<separator], as: UTF8.self), sequence, Array(key)))
                return chunk.count < 4096
            }
            guard let last = chunk.last else { break }
            for entry in chunk {
                try writer.delete(environment.userEntries, entry.key)
                let sequenceKey = Keys.bigEndian64(entry.sequence)
                guard var change = try writer.get(environment.changes, sequenceKey, { try RecordCodec.decodeChange($0) }) else {
                    continue
                }
                if let previous = user, previous.id != entry.userID {
                    try writer.putChangeHead(userID: previous.id, newest: previous.newest, count: previous.count)
                    user = nil
                }
                change.userPreviousSequence = user?.newest ?? 0
                try writer.put(environment.changes, sequenceKey, RecordCodec.encode(change))
                user = (entry.userID, entry.sequence, (user?.count ?? 0) + 1)
            }
            start = last.key + [0]
        }
        if let user { try writer.putChangeHead(userID: user.id, newest: user.newest, count: user.count) }
    }
}
