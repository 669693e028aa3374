import CLMDB
import Foundation

/// The steps that bring an older data folder to `LMDBStore.schemaVersion`, by the version they
/// start from. Each runs at open, before the store serves, in transactions of its own
/// (`MigrationRun`); the folder's version moves on once a step has finished.
enum Migrations {
    static let steps: [UInt32: @Sendable (MigrationRun) throws -> Void] = [
        1: mergeUserIndexes,
        2: { try chainUserChanges($0) },
        3: retireSessionsLazily,
        4: leaveOutWhatKeysGive,
        5: { try keepTokensApart($0) },
    ]

    /// Version 6 keeps a user's live tokens in `user_tokens` instead of `user_entries` (kind
    /// 0x03), and the change-log heads that token creations move in `pending_change_heads` (see
    /// `Keys`). Each token's key moves over, taken in the order of the `tokens` tree `chunk` at
    /// a time, each chunk in a transaction of its own; a move is a put and a delete that can run
    /// twice, so a run stopped between two chunks starts over and ends the same. There are no
    /// pending heads to make: every head is in `user_entries` until the next token's creation.
    /// `maxChunks` stops early, for tests of that resumption.
    static func keepTokensApart(_ run: MigrationRun, chunk: Int = 4096, maxChunks: Int = .max) throws {
        let environment = run.environment
        var start: [UInt8] = [0]
        var moved = 0
        for _ in 0..<maxChunks {
            let finished = try run.write { writer -> Bool in
                var tokens: [(id: [UInt8], userID: String)] = []
                try writer.scan(environment.tokens, from: start) { key, value in
                    tokens.append((Array(key), try RecordCodec.decodeToken(value).userID))
                    return tokens.count < chunk
                }
                for token in tokens {
                    try writer.delete(environment.userEntries, Keys.userEntries(token.userID, .token) + token.id)
                    try writer.put(environment.userTokens, Keys.userPrefix(token.userID) + token.id, [])
                }
                moved += tokens.count
                guard let last = tokens.last, tokens.count == chunk else { return true }
                start = last.id + [0]
                return false
            }
            if finished { break }
            run.report("moved \(moved) tokens to user_tokens")
        }
        run.report("moved \(moved) tokens to user_tokens", final: true)
    }

    /// Version 5 leaves out of a record what its key or its user gives: a session's id (its key
    /// in `sessions`) and an update time equal to its creation time; a change-log entry's
    /// `users.<user_id>.` before its event and `user/<user_id>` as its resource. Records written
    /// in full read as before, so there is nothing to convert; the version moves on so that an
    /// older authd, which would read a session without an id, refuses the folder.
    static func leaveOutWhatKeysGive(_ run: MigrationRun) throws {}

    /// Version 4 deletes a session's records lazily (`sessions_retired`, see `Keys`): a session
    /// whose key in `user_entries` is gone is deleted, whatever `sessions` still holds. Version 3
    /// deleted all three at once, so its folders hold nothing to convert; the version moves on
    /// so that an older authd, which would take a queued session's records for a live session,
    /// refuses the folder.
    static func retireSessionsLazily(_ run: MigrationRun) throws {}

    /// Version 1 kept a user's sessions, tokens and change-log entries in three indexes
    /// (`sessions_by_user`, `tokens_by_user`, `changes_by_user`, keyed user id, 0x00, rest);
    /// version 2 keeps them in `user_entries` under user id, 0x00, a kind byte, rest, so that one
    /// sign-in dirties one page instead of three. The old indexes are deleted.
    /// `sessions_by_secret` needs nothing: its version-1 keys (the hash alone) stay valid for
    /// the sessions that have no locator.
    static func mergeUserIndexes(_ run: MigrationRun) throws {
        try run.write { writer in try mergeUserIndexes(writer) }
    }

    private static func mergeUserIndexes(_ writer: LMDBWriter) throws {
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
    /// previous one, and one head per user (kind 0x04) holds the newest and the count.
    ///
    /// The keys are taken in key order (a user's oldest first) `chunk` at a time, each chunk in
    /// a transaction of its own: its entries are rewritten, its keys deleted and the heads kept
    /// up to date, so that a run stopped between two chunks resumes from the heads it left.
    /// Measured on 1M users and 6M entries: 24-32 s, the file grown from 3.8 to 4.5 GB; in one
    /// transaction it took 37 s and grew the file to 6.5 GB, as every rewritten page was held
    /// until the end. A key whose entry is missing from the log is dropped.
    /// `maxChunks` stops early, for tests of that resumption.
    static func chainUserChanges(_ run: MigrationRun, chunk: Int = 4096, maxChunks: Int = .max) throws {
        let environment = run.environment
        let expected = try run.write { try $0.entries(environment.changes) }
        var start: [UInt8] = [0]
        var done = 0
        for _ in 0..<maxChunks {
            let finished = try run.write { writer -> Bool in
                var keys: [(userID: String, sequence: UInt64, key: [UInt8])] = []
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
                    keys.append((String(decoding: key[..<separator], as: UTF8.self), sequence, Array(key)))
                    return keys.count < chunk
                }
                guard let last = keys.last else { return true }
                for entry in keys {
                    try writer.delete(environment.userEntries, entry.key)
                    let sequenceKey = Keys.bigEndian64(entry.sequence)
                    guard var change = try writer.get(environment.changes, sequenceKey, { try RecordCodec.decodeChange($0) }) else {
                        continue
                    }
                    // The head as the previous key left it, or as an earlier chunk (or a run
                    // that stopped) did: the chain goes on from it.
                    let head = try writer.changeHead(userID: entry.userID) ?? (0, 0)
                    change.userPreviousSequence = head.newest
                    try writer.put(environment.changes, sequenceKey, RecordCodec.encode(change))
                    try writer.putChangeHead(userID: entry.userID, newest: entry.sequence, count: head.count + 1)
                }
                done += keys.count
                start = last.key + [0]
                return false
            }
            if finished { break }
            run.report("chained \(done) of about \(expected) change-log entries")
        }
        run.report("chained \(done) change-log entries", final: true)
    }
}

/// What a migration step works with. Each `write` is a transaction of its own, committed before
/// it returns, so that a step over a large folder holds neither all its rewritten pages in one
/// transaction nor the start up unseen: `report` passes its progress on (the daemon relays it to
/// systemd, which would otherwise end a start that outlasts its timeout), at most once a second
/// unless final. A step must therefore resume correctly when run again after stopping between
/// two of its transactions.
final class MigrationRun {
    let environment: LMDBEnvironment
    private let progress: (String) -> Void
    private var lastReport = ContinuousClock.now

    init(environment: LMDBEnvironment, progress: @escaping (String) -> Void) {
        self.environment = environment
        self.progress = progress
    }

    func write<R>(_ body: (LMDBWriter) throws -> R) throws -> R {
        var txn: OpaquePointer?
        try lmdbCheck(mdb_txn_begin(environment.env, nil, 0, &txn), "mdb_txn_begin")
        guard let txn else { throw StoreError(.io, "mdb_txn_begin returned no transaction") }
        do {
            let result = try body(LMDBWriter(environment: environment, txn: txn))
            try lmdbCheck(mdb_txn_commit(txn), "mdb_txn_commit")
            return result
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
    }

    func report(_ status: String, final: Bool = false) {
        let now = ContinuousClock.now
        guard final || now - lastReport >= .seconds(1) else { return }
        lastReport = now
        progress(status)
    }
}
