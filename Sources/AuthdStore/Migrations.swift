import CLMDB

/// The steps that bring an older data folder to `LMDBStore.schemaVersion`, by the version they
/// start from. Each runs inside the one transaction that opens the store.
enum Migrations {
    static let steps: [UInt32: @Sendable (LMDBWriter) throws -> Void] = [
        1: mergeUserIndexes
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
}
