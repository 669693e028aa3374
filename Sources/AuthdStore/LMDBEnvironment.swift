import CLMDB
import Foundation

/// An open LMDB environment with authd's named databases.
final class LMDBEnvironment: @unchecked Sendable {
    // Thread-safety: `env` and the dbi handles are immutable after `init`; LMDB allows any
    // thread to start read transactions on them (MDB_NOTLS), and the single writer thread owns
    // write transactions.
    let env: OpaquePointer
    let users: MDB_dbi
    let usersByEmail: MDB_dbi
    let sessions: MDB_dbi
    let sessionsBySecret: MDB_dbi
    let changes: MDB_dbi
    let meta: MDB_dbi
    let usersByPhone: MDB_dbi
    let tokens: MDB_dbi
    let apiKeys: MDB_dbi
    let apiKeysBySecret: MDB_dbi
    let rateLimits: MDB_dbi
    let userEntries: MDB_dbi
    let sessionsRetired: MDB_dbi
    let userTokens: MDB_dbi
    let pendingChangeHeads: MDB_dbi
    /// The data file, and LMDB's page size in it.
    let dataPath: String
    let pageSize: Int

    init(path: String, mapSize: Int) throws {
        var envPointer: OpaquePointer?
        try lmdbCheck(mdb_env_create(&envPointer), "mdb_env_create")
        guard let env = envPointer else { throw StoreError(.io, "mdb_env_create returned no environment") }
        do {
            // The 15 trees opened below, the 3 of schema version 1 that its migration opens, and room.
            try lmdbCheck(mdb_env_set_maxdbs(env, 24), "mdb_env_set_maxdbs")
            try lmdbCheck(mdb_env_set_mapsize(env, mapSize), "mdb_env_set_mapsize")
            try lmdbCheck(mdb_env_set_maxreaders(env, 1024), "mdb_env_set_maxreaders")
            // MDB_NOTLS: read transactions are not tied to a thread, so async code and NIO event
            // loops may use them. MDB_NORDAHEAD: a page read back in from disk is cached alone,
            // not in a large folio that makes each later write of one page cost more (see
            // GrowthZone). Durability stays on: every commit is fsynced.
            try lmdbCheck(mdb_env_open(env, path, UInt32(MDB_NOTLS | MDB_NORDAHEAD), 0o600), "mdb_env_open \(path)")
        } catch {
            mdb_env_close(env)
            throw error
        }
        self.env = env
        dataPath = path + "/data.mdb"
        var stat = MDB_stat()
        pageSize = mdb_env_stat(env, &stat) == 0 ? Int(stat.ms_psize) : 4096
        var txn: OpaquePointer?
        try lmdbCheck(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
        func open(_ name: String) throws -> MDB_dbi {
            var dbi: MDB_dbi = 0
            try lmdbCheck(mdb_dbi_open(txn, name, UInt32(MDB_CREATE), &dbi), "mdb_dbi_open \(name)")
            return dbi
        }
        do {
            users = try open("users")
            usersByEmail = try open("users_by_email")
            sessions = try open("sessions")
            sessionsBySecret = try open("sessions_by_secret")
            changes = try open("changes")
            meta = try open("meta")
            usersByPhone = try open("users_by_phone")
            tokens = try open("tokens")
            apiKeys = try open("api_keys")
            apiKeysBySecret = try open("api_keys_by_secret")
            rateLimits = try open("rate_limits")
            userEntries = try open("user_entries")
            sessionsRetired = try open("sessions_retired")
            userTokens = try open("user_tokens")
            pendingChangeHeads = try open("pending_change_heads")
            try lmdbCheck(mdb_txn_commit(txn), "mdb_txn_commit")
        } catch {
            mdb_txn_abort(txn)
            mdb_env_close(env)
            throw error
        }
    }

    /// The bytes of the data file LMDB uses: up to and including its last page, as of the last
    /// commit.
    func dataBytes() throws -> Int {
        var info = MDB_envinfo()
        try lmdbCheck(mdb_env_info(env, &info), "mdb_env_info")
        return (Int(info.me_last_pgno) + 1) * pageSize
    }

    func close() {
        mdb_env_close(env)
    }
}

func lmdbCheck(_ rc: Int32, _ what: @autoclosure () -> String) throws {
    guard rc != 0 else { return }
    throw lmdbError(rc, what())
}

func lmdbError(_ rc: Int32, _ what: String) -> StoreError {
    let message = String(cString: mdb_strerror(rc))
    switch rc {
    case MDB_MAP_FULL:
        return StoreError(.unavailable, "\(what): the data file is full (raise map_size_mib): \(message)")
    case MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INVALID, MDB_VERSION_MISMATCH:
        return StoreError(.corrupt, "\(what): \(message)")
    default:
        return StoreError(.io, "\(what): \(message)")
    }
}

/// Calls `body` with an MDB_val that points at `bytes`; valid only inside `body`.
@inline(__always)
func withValue<R>(_ bytes: [UInt8], _ body: (inout MDB_val) throws -> R) rethrows -> R {
    try bytes.withUnsafeBytes { raw in
        var value = MDB_val(mv_size: raw.count, mv_data: UnsafeMutableRawPointer(mutating: raw.baseAddress))
        return try body(&value)
    }
}

@inline(__always)
func bytes(of value: MDB_val) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
}
