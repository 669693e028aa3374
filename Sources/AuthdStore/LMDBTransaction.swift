import CLMDB

#if canImport(Glibc)
import Glibc
#endif

/// Key layouts of the named databases:
/// - `users`: user id → UserRecord
/// - `users_by_email`: email → user id
/// - `sessions`: session id → SessionRecord (without the id, since schema version 5)
/// - `sessions_by_secret`: the secret's locator (8 bytes big-endian), SHA-256 of the secret →
///   session id; SHA-256 alone for a secret without a locator (made before schema version 2)
/// - `changes`: sequence (8 bytes big-endian) → ChangeRecord
/// - `users_by_phone`: phone → user id
/// - `tokens`: token id → TokenRecord
/// - `api_keys`: key id → ApiKeyRecord; `api_keys_by_secret`: SHA-256 of the key → key id
/// - `user_entries`: one user's index entries, all under user id, 0x00, then a kind byte:
///   0x02, created-at (8 bytes big-endian), session id: a session (→ empty);
///   0x04 alone: the head of the user's change-log chain (→ the newest entry's sequence and the
///   number of entries, 8 bytes big-endian each). Each entry names the user's previous one
///   (`user_previous_sequence`). Schema version 2 had a key per entry instead (0x01 and the
///   sequence). 0x05 alone: left when the user is deleted, the newest sequence of the chain
///   that ended (8 bytes big-endian), so that pruning the log tells that chain's entries from
///   those of a user re-created under the same id. Up to schema version 5, 0x03 and a token id:
///   a token (now in `user_tokens`).
/// - `user_tokens`: user id, 0x00, token id → empty: the user's live tokens
/// - `pending_change_heads`: user id → the head of the user's change-log chain (as in
///   `user_entries`), while their newest entry comes from a write that leaves their page of
///   `user_entries` alone (a token's creation); the user's next write there folds it back in,
///   or the expiry sweep once the user's last token is gone unredeemed.
/// - `sessions_retired`: a running number (8 bytes big-endian) → a deleted session whose records
///   in `sessions` and `sessions_by_secret` are still there, left for the sweep: the length of
///   its key in `sessions_by_secret` (1 byte), that key, then the session id
/// - `rate_limits`: rule and key → window start, count (8 + 8 bytes big-endian)
/// - `meta`: name → value (`schema_version`: 4 bytes big-endian)
///
/// Why ids and locators lead keys and one user's entries share a tree: LMDB writes every page a
/// commit touches, and a commit's fsync costs about as much per page as per commit. New ids and
/// locators grow with time, so inserts land on the last page of their index and the session
/// sweep deletes from the first; one user's changes, sessions and tokens sit side by side, so
/// a sign-in dirties about one page of `user_entries` instead of one in each of three indexes.
/// A user's change history is a chain through the log, not keys of its own: with a key per
/// entry, `user_entries` grew by every change ever made and split its pages all over the tree;
/// with the chain it holds one fixed-size head per user, rewritten in place (measured: 22 %
/// fewer bytes written per sign-in, BENCHMARKS.md).
///
/// Why tokens and some heads stay out of `user_entries` (schema version 6): a token lives for
/// minutes, between its creation and the sign-in that redeems it, and each of the two writes
/// dirtied the user's page, one of the scattered pages that bound durable writes. Kept apart,
/// the live tokens and the heads their creations move fill a few pages of small trees that a
/// commit's writes share, and only the sign-in dirties the user's page.
///
/// A session is live while its key in `user_entries` is there. Deleting one (a sign-out, or the
/// trim of a user's oldest session at sign-in) removes that key at once, on the user's page that
/// the write dirties anyway, and queues the session in `sessions_retired`; once thousands are
/// queued, the writer's sweep deletes their records from `sessions` and `sessions_by_secret` in
/// chunks of hundreds, lowest ids first, so that many deletes share each page. Deleted one by one, the trim's two records were
/// each on a page of their own, anywhere in those trees (measured: 44 % of the bytes written per
/// sign-in, BENCHMARKS.md).
enum Keys {
    static func utf8(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// `body` with `text`'s UTF-8 where the string keeps it: a key used once needs no array.
    static func withUTF8<R>(_ text: String, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var text = text
        return try text.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }

    static func bigEndian64(_ v: UInt64) -> [UInt8] {
        withUnsafeBytes(of: v.bigEndian) { Array($0) }
    }

    static func hasPrefix(_ key: UnsafeRawBufferPointer, _ prefix: UnsafeRawBufferPointer) -> Bool {
        key.count >= prefix.count && (prefix.isEmpty || memcmp(key.baseAddress!, prefix.baseAddress!, prefix.count) == 0)
    }

    static func readBigEndian64(_ raw: UnsafeRawBufferPointer) -> UInt64? {
        guard raw.count == 8 else { return nil }
        return raw.reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
    }

    /// The first key after `id` in a table keyed by id (the first key of all when nil): ids
    /// never contain 0x00, so that is id + [0].
    static func firstKey(after id: String?) -> [UInt8] { id.map { joined($0, [0]) } ?? [0] }

    /// The prefix of every key of a user's entries; ids never contain 0x00.
    static func userPrefix(_ userID: String) -> [UInt8] { joined(userID, [0]) }

    /// `text`'s UTF-8, then `tail`, then `suffix`'s UTF-8, in one allocation: keys are built on
    /// the writer's thread for every write, where each intermediate array was a malloc and a
    /// free (about twenty per sign-in).
    static func joined(_ text: String, _ tail: [UInt8], _ suffix: String = "") -> [UInt8] {
        var key: [UInt8] = []
        key.reserveCapacity(text.utf8.count + tail.count + suffix.utf8.count)
        key.append(contentsOf: text.utf8)
        key.append(contentsOf: tail)
        key.append(contentsOf: suffix.utf8)
        return key
    }

    /// Two numbers, 8 bytes big-endian each, in one allocation.
    static func bigEndian64Pair(_ first: UInt64, _ second: UInt64) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 16) { bytes, count in
            UnsafeMutableRawBufferPointer(bytes).storeBytes(of: first.bigEndian, as: UInt64.self)
            UnsafeMutableRawBufferPointer(bytes).storeBytes(of: second.bigEndian, toByteOffset: 8, as: UInt64.self)
            count = 16
        }
    }

    /// The kinds of a user's entries in `user_entries`, in key order.
    enum UserEntry: UInt8 {
        /// One key per change-log entry (schema version 2); only migrations read them.
        case change = 1
        case session = 2
        /// A token (schema versions 2 to 5; `user_tokens` since).
        case token = 3
        case changeHead = 4
        /// Left by a user's deletion: the newest entry of the chain it ended (8 bytes
        /// big-endian). The user's entries up to it belong to no head, so pruning them leaves
        /// the head of a user re-created under the same id as it is.
        case endedChain = 5
    }

    static func userEntries(_ userID: String, _ kind: UserEntry) -> [UInt8] { joined(userID, [0, kind.rawValue]) }

    /// A token's key in `user_tokens`: user id, 0x00, token id.
    static func userToken(_ token: TokenRecord) -> [UInt8] { joined(token.userID, [0], token.id) }

    /// A session's key: user id, 0x00, 0x02, created-at (8 bytes big-endian), session id.
    static func userSession(_ session: SessionRecord) -> [UInt8] { withUserSession(session) { Array($0) } }

    static func userChangeHead(_ userID: String) -> [UInt8] { userEntries(userID, .changeHead) }

    /// A session's key in `user_entries`, built on the stack for `body`.
    static func withUserSession<R>(_ session: SessionRecord, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUserSession(userID: session.userID, createdAt: session.createdAt, id: session.id, body)
    }

    static func withUserSession<R>(_ session: SessionKeys, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUserSession(userID: session.userID, createdAt: session.createdAt, id: session.id, body)
    }

    private static func withUserSession<R>(
        userID: String, createdAt: Int64, id: String, _ body: (UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        var userID = userID
        var id = id
        return try userID.withUTF8 { user in
            try id.withUTF8 { id in
                try withUnsafeTemporaryAllocation(byteCount: user.count + 2 + 8 + id.count, alignment: 8) { key in
                    UnsafeMutableRawBufferPointer(rebasing: key[..<user.count]).copyMemory(from: UnsafeRawBufferPointer(user))
                    key[user.count] = 0
                    key[user.count + 1] = UserEntry.session.rawValue
                    key.storeBytes(
                        of: UInt64(bitPattern: createdAt).bigEndian, toByteOffset: user.count + 2, as: UInt64.self)
                    UnsafeMutableRawBufferPointer(rebasing: key[(user.count + 10)...]).copyMemory(from: UnsafeRawBufferPointer(id))
                    return try body(UnsafeRawBufferPointer(key))
                }
            }
        }
    }

    /// A session's key in `sessions_by_secret`, built on the stack for `body`: the locator (8 bytes
    /// big-endian) then the hash, or the hash alone when the locator is 0.
    static func withSessionSecret<R>(
        locator: UInt64, hash: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        try hash.withUnsafeBytes { try withSessionSecret(locator: locator, hash: $0, body) }
    }

    static func withSessionSecret<R>(
        locator: UInt64, hash: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        try withUnsafeTemporaryAllocation(byteCount: 8 + hash.count, alignment: 8) { key in
            key.storeBytes(of: locator.bigEndian, as: UInt64.self)
            UnsafeMutableRawBufferPointer(rebasing: key[8...]).copyMemory(from: hash)
            return try body(UnsafeRawBufferPointer(rebasing: key[(locator == 0 ? 8 : 0)...]))
        }
    }

    static func sessionSecret(locator: UInt64, hash: [UInt8]) -> [UInt8] {
        withSessionSecret(locator: locator, hash: hash) { Array($0) }
    }
}

/// Reads in one LMDB transaction. Shared by read-only and write transactions.
class LMDBReader: StoreReader {
    let environment: LMDBEnvironment
    let txn: OpaquePointer

    init(environment: LMDBEnvironment, txn: OpaquePointer) {
        self.environment = environment
        self.txn = txn
    }

    /// Calls `body` with the stored bytes for `key`, or returns nil when absent.
    func get<R>(_ dbi: MDB_dbi, _ key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        try key.withUnsafeBytes { try get(dbi, raw: $0, body) }
    }

    func get<R>(_ dbi: MDB_dbi, raw key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        guard !key.isEmpty, key.count <= 511 else { return nil }
        var value = MDB_val()
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        let rc = mdb_get(txn, dbi, &k, &value)
        if rc == MDB_NOTFOUND { return nil }
        try lmdbCheck(rc, "mdb_get")
        return try body(bytes(of: value))
    }

    func user(id: String) throws -> UserRecord? {
        try Keys.withUTF8(id) { key in try get(environment.users, raw: key) { try RecordCodec.decodeUser($0) } }
    }

    func userID(email: String) throws -> String? {
        try Keys.withUTF8(email) { key in try get(environment.usersByEmail, raw: key) { String(decoding: $0, as: UTF8.self) } }
    }

    /// A live session: its record, when the user's index still holds it (a deleted session's
    /// record stays until the sweep, see `Keys`).
    func session(id: String) throws -> SessionRecord? {
        guard let session = try storedSession(id: id), try isLive(session) else { return nil }
        return session
    }

    func isLive(_ session: SessionRecord) throws -> Bool {
        try Keys.withUserSession(session) { key in try get(environment.userEntries, raw: key) { _ in true } } != nil
    }

    /// A session's record, live or deleted and not yet swept.
    func storedSession(id: String) throws -> SessionRecord? {
        try Keys.withUTF8(id) { key in try get(environment.sessions, raw: key) { try RecordCodec.decodeSession($0, id: id) } }
    }

    func userStatus(id: String) throws -> Bool? {
        try Keys.withUTF8(id) { key in try get(environment.users, raw: key) { try RecordCodec.userStatus($0) } }
    }

    /// Whether the user exists, without decoding their record.
    func hasUser(id: String) throws -> Bool {
        try Keys.withUTF8(id) { key in try get(environment.users, raw: key) { _ in true } } != nil
    }

    func session(secretHash: UnsafeRawBufferPointer, locator: UInt64) throws -> SessionRecord? {
        // The key stays on the stack: this runs on every session check the cache misses.
        guard let id = try Keys.withSessionSecret(locator: locator, hash: secretHash, { key in
            try get(environment.sessionsBySecret, raw: key) { String(decoding: $0, as: UTF8.self) }
        }) else { return nil }
        return try session(id: id)
    }

    func sessions(userID: String) throws -> [SessionRecord] {
        try sessions(userID: userID, limit: .max)
    }

    func sessions(userID: String, limit: Int) throws -> [SessionRecord] {
        // The ids come from the user's index, so each is live.
        try sessionIDs(userID: userID, limit: limit).compactMap { try storedSession(id: $0) }
    }

    func sessionKeys(userID: String, beyondNewest keeping: Int, atMost limit: Int) throws -> [SessionKeys] {
        // The entries come from the user's index, so each is live. They stay where LMDB keeps
        // them (valid until this transaction's next write), and only the ones returned become
        // strings: this runs at every sign-in. The walk stops once `keeping` entries are seen
        // past the first `limit`, so a user with a hundred thousand sessions costs a part of
        // them no more than one with a thousand. The index key holds the creation time and id;
        // of the record only the secret is read.
        guard limit > 0 else { return [] }
        let keeping = max(0, keeping)
        var oldest: [UnsafeRawBufferPointer] = []
        var seen = 0
        let enough = limit > Int.max - keeping ? Int.max : limit + keeping
        try forEachUserEntry(userID, .session) { rest in
            guard rest.count > 8 else { return false }
            if oldest.count < limit { oldest.append(rest) }
            seen += 1
            return seen < enough
        }
        return try oldest.prefix(max(0, seen - keeping)).compactMap { entry in
            let id = UnsafeRawBufferPointer(rebasing: entry[8...])
            return try get(environment.sessions, raw: id) { raw in
                let (secretHash, locator) = try RecordCodec.sessionSecret(raw)
                return SessionKeys(
                    id: String(decoding: id, as: UTF8.self), userID: userID,
                    createdAt: Int64(bitPattern: Keys.readBigEndian64(UnsafeRawBufferPointer(rebasing: entry[0..<8]))!),
                    secretHash: Array(raw[secretHash]), secretLocator: locator)
            }
        }
    }

    func sessionIDs(userID: String) throws -> [String] {
        try sessionIDs(userID: userID, limit: .max)
    }

    /// The ids of the user's `limit` oldest sessions; the rest of the index is not walked.
    private func sessionIDs(userID: String, limit: Int) throws -> [String] {
        var ids: [String] = []
        guard limit > 0 else { return ids }
        try forEachSessionID(userID: userID) { id in
            ids.append(String(decoding: id, as: UTF8.self))
            return ids.count < limit
        }
        return ids
    }

    /// The ids in the user's session index, oldest first (after each key's 8 bytes of
    /// created-at), as LMDB holds them, while `visit` returns true.
    private func forEachSessionID(userID: String, _ visit: (UnsafeRawBufferPointer) -> Bool) throws {
        try forEachUserEntry(userID, .session) { rest in
            guard rest.count > 8 else { return false }
            return visit(UnsafeRawBufferPointer(rebasing: rest[8...]))
        }
    }

    /// Calls `visit` with what follows the kind byte in each of the user's entries of `kind`, in
    /// key order, while it returns true. The bytes are LMDB's, valid until the transaction's
    /// next write.
    private func forEachUserEntry(
        _ userID: String, _ kind: Keys.UserEntry, _ visit: (UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try forEachKey(in: environment.userEntries, after: Keys.userEntries(userID, kind), visit)
    }

    /// Calls `visit` with what follows `prefix` in each key of `dbi` that starts with it, in key
    /// order, while it returns true. The bytes are LMDB's, valid until the transaction's next
    /// write.
    private func forEachKey(
        in dbi: MDB_dbi, after prefix: [UInt8], _ visit: (UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try prefix.withUnsafeBytes { rawPrefix in
            try scan(dbi, from: prefix) { key, _ in
                guard Keys.hasPrefix(key, rawPrefix) else { return false }
                return try visit(UnsafeRawBufferPointer(rebasing: key[prefix.count...]))
            }
        }
    }

    func userID(phone: String) throws -> String? {
        try get(environment.usersByPhone, Keys.utf8(phone)) { String(decoding: $0, as: UTF8.self) }
    }

    func forEachUser(after afterID: String?, _ visit: (UserRecord) throws -> Bool) throws {
        try scan(environment.users, from: Keys.firstKey(after: afterID)) { _, value in try visit(RecordCodec.decodeUser(value)) }
    }

    func forEachUserFields(reversed: Bool, _ visit: (borrowing UserFields) throws -> Bool) throws {
        try scan(environment.users, from: reversed ? .lastKey : .atOrAfter(Keys.firstKey(after: nil))) { _, value in
            try RecordCodec.withUserFields(value, visit)
        }
    }

    func forEachUser(after afterID: String?, mayMatch: (UserFields) -> Bool, _ visit: (UserRecord) throws -> Bool) throws {
        try scan(environment.users, from: Keys.firstKey(after: afterID)) { _, value in
            guard try RecordCodec.withUserFields(value, mayMatch) else { return true }
            return try visit(RecordCodec.decodeUser(value))
        }
    }

    func token(id: String) throws -> TokenRecord? {
        try Keys.withUTF8(id) { key in try get(environment.tokens, raw: key) { try RecordCodec.decodeToken($0) } }
    }

    func tokens(userID: String) throws -> [TokenRecord] {
        try tokens(userID: userID, limit: .max)
    }

    func tokens(userID: String, limit: Int) throws -> [TokenRecord] {
        var ids: [String] = []
        guard limit > 0 else { return [] }
        try forEachTokenID(userID: userID) { id in
            ids.append(String(decoding: id, as: UTF8.self))
            return ids.count < limit
        }
        return try ids.compactMap { try token(id: $0) }
    }

    /// Calls `visit` with the id of each of the user's live tokens (`user_tokens`), while it
    /// returns true. The bytes are LMDB's, valid until the transaction's next write.
    fileprivate func forEachTokenID(userID: String, _ visit: (UnsafeRawBufferPointer) throws -> Bool) throws {
        try forEachKey(in: environment.userTokens, after: Keys.userPrefix(userID), visit)
    }

    func token(userID: String, secretHash presented: [UInt8], validAt now: Int64) throws -> TokenRecord? {
        // The ids stay where LMDB keeps them; a record is read off its bytes for the check, and
        // decoded only when it matches (this runs at every token sign-in).
        var ids: [UnsafeRawBufferPointer] = []
        try forEachTokenID(userID: userID) { id in
            ids.append(id)
            return true
        }
        for id in ids {
            let found = try get(environment.tokens, raw: id) { raw -> TokenRecord? in
                let (secretHash, expire) = try RecordCodec.tokenSecretAndExpiry(raw)
                guard expire >= now,
                    presented.withUnsafeBytes({ ConstantTime.equals(UnsafeRawBufferPointer(rebasing: raw[secretHash]), $0) })
                else { return nil }
                return try RecordCodec.decodeToken(raw)
            }
            if let found = found ?? nil { return found }
        }
        return nil
    }

    func expiredSessions(after afterID: String?, before now: Int64, limit: Int) throws -> (expired: [SessionKeys], next: String?) {
        var expired: [SessionKeys] = []
        // A deleted session's record waits for the retired sweep: not live, so not expired.
        let next = try walk(environment.sessions, after: afterID, limit: limit) { key, raw in
            guard try RecordCodec.sessionExpiry(raw) < now else { return }
            let session = try RecordCodec.decodeSession(raw, id: String(decoding: key, as: UTF8.self))
            if try isLive(session) { expired.append(session.keys) }
        }
        return (expired, next)
    }

    func expiredTokens(after afterID: String?, before now: Int64, limit: Int) throws -> (expired: [TokenRecord], next: String?) {
        var expired: [TokenRecord] = []
        let next = try walk(environment.tokens, after: afterID, limit: limit) { _, raw in
            guard try RecordCodec.tokenSecretAndExpiry(raw).expire < now else { return }
            expired.append(try RecordCodec.decodeToken(raw))
        }
        return (expired, next)
    }

    /// Calls `visit` with the values of at most `limit` records of a table keyed by id, in key
    /// order after `afterID` (from the first when nil); returns the last id visited when the
    /// table goes on, nil when the walk reached its end.
    private func walk(
        _ dbi: MDB_dbi, after afterID: String?, limit: Int,
        _ visit: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Void
    ) throws -> String? {
        var visited = 0
        var last: String?
        var more = false
        try scan(dbi, from: Keys.firstKey(after: afterID)) { key, value in
            guard visited < max(1, limit) else {
                more = true
                return false
            }
            visited += 1
            try visit(key, value)
            last = String(decoding: key, as: UTF8.self)
            return true
        }
        return more ? last : nil
    }

    func apiKey(id: String) throws -> ApiKeyRecord? {
        try get(environment.apiKeys, Keys.utf8(id)) { try RecordCodec.decodeApiKey($0) }
    }

    func apiKeyID(secretHash: [UInt8]) throws -> String? {
        try get(environment.apiKeysBySecret, secretHash) { String(decoding: $0, as: UTF8.self) }
    }

    func apiKeys() throws -> [ApiKeyRecord] {
        var keys: [ApiKeyRecord] = []
        try scan(environment.apiKeys, from: [0]) { _, value in
            keys.append(try RecordCodec.decodeApiKey(value))
            return true
        }
        return keys
    }

    func settings() throws -> AuthSettings? {
        try get(environment.meta, Keys.utf8("settings")) { try RecordCodec.decodeSettings($0) }
    }

    func jwtKeys() throws -> [JWTKeyRecord] {
        try get(environment.meta, Keys.utf8("jwt_keys")) { try RecordCodec.decodeJWTKeys($0) } ?? []
    }

    func rateCounter(_ key: String) throws -> (windowStart: Int64, count: Int)? {
        try get(environment.rateLimits, Array(Keys.utf8(key).prefix(511))) { raw -> (Int64, Int)? in
            guard raw.count == 16, let start = Keys.readBigEndian64(UnsafeRawBufferPointer(rebasing: raw[0..<8])),
                let count = Keys.readBigEndian64(UnsafeRawBufferPointer(rebasing: raw[8..<16]))
            else { return nil }
            return (Int64(bitPattern: start), Int(count))
        } ?? nil
    }

    func userCount() throws -> Int {
        try entries(environment.users)
    }

    func entries(_ dbi: MDB_dbi) throws -> Int {
        var stat = MDB_stat()
        try lmdbCheck(mdb_stat(txn, dbi, &stat), "mdb_stat")
        return stat.ms_entries
    }

    /// The head of a user's change-log chain: their newest entry's sequence and how many they
    /// have. A head in `pending_change_heads` is the newer one (see `Keys`).
    func changeHead(userID: String) throws -> (newest: UInt64, count: UInt64)? {
        try pendingChangeHead(userID: userID) ?? changeHead(key: Keys.userChangeHead(userID))
    }

    /// The head kept in `user_entries` alone.
    func changeHead(key: [UInt8]) throws -> (newest: UInt64, count: UInt64)? {
        try get(environment.userEntries, key) { try Self.decodeChangeHead($0) }
    }

    func pendingChangeHead(userID: String) throws -> (newest: UInt64, count: UInt64)? {
        try Keys.withUTF8(userID) { key in try get(environment.pendingChangeHeads, raw: key) { try Self.decodeChangeHead($0) } }
    }

    private static func decodeChangeHead(_ raw: UnsafeRawBufferPointer) throws -> (newest: UInt64, count: UInt64) {
        guard raw.count == 16, let newest = Keys.readBigEndian64(UnsafeRawBufferPointer(rebasing: raw[..<8])),
            let count = Keys.readBigEndian64(UnsafeRawBufferPointer(rebasing: raw[8...]))
        else { throw StoreError(.corrupt, "a change-log head of \(raw.count) bytes") }
        return (newest, count)
    }

    func changes(userID: String, before beforeSequence: UInt64?, offset: Int, limit: Int) throws -> (entries: [ChangeRecord], total: Int) {
        guard let head = try changeHead(userID: userID) else { return ([], 0) }
        let total = Int(min(head.count, 5000))
        // An entry of someone else, or one that does not point further back, ends the walk: a
        // damaged chain gives a short list, never a loop.
        var previous = UInt64.max
        func step(to sequence: UInt64) throws -> ChangeRecord? {
            guard sequence != 0, sequence < previous,
                let entry = try get(environment.changes, Keys.bigEndian64(sequence), { try RecordCodec.decodeChange($0) }),
                entry.userID == userID
            else { return nil }
            previous = sequence
            return entry
        }
        // The chain runs newest first. A bound that is one of the user's entries (the last of
        // the previous page) starts the walk right behind it; any other bound walks from the head.
        var current: ChangeRecord?
        switch beforeSequence {
        case 0?:
            current = nil
        case let before? where before <= head.newest:
            if let bound = try step(to: before) {
                current = try step(to: bound.userPreviousSequence)
            } else {
                current = try step(to: head.newest)
                while let entry = current, entry.sequence >= before { current = try step(to: entry.userPreviousSequence) }
            }
        default:
            current = try step(to: head.newest)
        }
        var entries: [ChangeRecord] = []
        var skipped = 0
        while let entry = current, entries.count < limit {
            if skipped < offset { skipped += 1 } else { entries.append(entry) }
            current = entries.count < limit ? try step(to: entry.userPreviousSequence) : nil
        }
        return (entries, total)
    }

    func changes(after sequence: UInt64, limit: Int) throws -> [ChangeRecord] {
        var result: [ChangeRecord] = []
        guard limit > 0, sequence < UInt64.max else { return result }
        try scan(environment.changes, from: Keys.bigEndian64(sequence + 1)) { _, value in
            result.append(try RecordCodec.decodeChange(value))
            return result.count < limit
        }
        return result
    }

    /// Where a scan begins, and so which way it walks.
    enum ScanStart {
        /// At the first key at or after these bytes, walking up.
        case atOrAfter([UInt8])
        /// At the last key, walking down.
        case lastKey
    }

    /// Walks keys from the first one at or after `start` while `visit` returns true.
    func scan(
        _ dbi: MDB_dbi, from start: [UInt8],
        _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try scan(dbi, from: .atOrAfter(start), visit)
    }

    /// Walks keys from `start`, up or down as it says, while `visit` returns true.
    func scan(
        _ dbi: MDB_dbi, from start: ScanStart,
        _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        var cursor: OpaquePointer?
        try lmdbCheck(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val()
        var value = MDB_val()
        var rc: Int32
        let step: MDB_cursor_op
        switch start {
        case .atOrAfter(let bytes):
            rc = withValue(bytes) { k in
                key = k
                return mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
            }
            step = MDB_NEXT
        case .lastKey:
            rc = mdb_cursor_get(cursor, &key, &value, MDB_LAST)
            step = MDB_PREV
        }
        while rc == 0 {
            guard try visit(bytes(of: key), bytes(of: value)) else { return }
            rc = mdb_cursor_get(cursor, &key, &value, step)
        }
        if rc != MDB_NOTFOUND { try lmdbCheck(rc, "mdb_cursor_get") }
    }

    /// The last key of `dbi`, or nil when it is empty.
    func lastKey(_ dbi: MDB_dbi) throws -> [UInt8]? {
        var cursor: OpaquePointer?
        try lmdbCheck(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val()
        var value = MDB_val()
        let rc = mdb_cursor_get(cursor, &key, &value, MDB_LAST)
        if rc == MDB_NOTFOUND { return nil }
        try lmdbCheck(rc, "mdb_cursor_get")
        return Array(bytes(of: key))
    }
}

/// A deleted session waiting in `sessions_retired` for the sweep.
struct RetiredSession {
    let number: [UInt8]
    let secretKey: [UInt8]
    let id: [UInt8]
}

/// What a batch of write transactions changed; read once the batch has committed.
final class ChangeCollector {
    var userIDs: Set<String> = []
    var apiKeys = false

    var committed: CommittedChanges { CommittedChanges(userIDs: userIDs, apiKeys: apiKeys) }
}

/// Reads and writes in one LMDB (child) write transaction, owned by the group-commit writer.
final class LMDBWriter: LMDBReader, StoreWriter {
    /// Collects what this transaction changed for the commit observers; a rolled-back child
    /// may leave entries behind, which only costs a cache a needless drop.
    let changes: ChangeCollector?

    init(environment: LMDBEnvironment, txn: OpaquePointer, changes: ChangeCollector? = nil) {
        self.changes = changes
        super.init(environment: environment, txn: txn)
    }

    func put(_ dbi: MDB_dbi, _ key: [UInt8], _ value: [UInt8], flags: Int32 = 0) throws {
        try key.withUnsafeBytes { try put(dbi, raw: $0, value, flags: flags) }
    }

    func put(_ dbi: MDB_dbi, raw key: UnsafeRawBufferPointer, _ value: [UInt8], flags: Int32 = 0) throws {
        guard !key.isEmpty, key.count <= 511 else {
            throw StoreError(.io, "key of \(key.count) bytes is outside LMDB's 1-511")
        }
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        let rc = withValue(value) { v in mdb_put(txn, dbi, &k, &v, UInt32(flags)) }
        if rc == MDB_KEYEXIST { throw StoreError.duplicate("key exists") }
        try lmdbCheck(rc, "mdb_put")
    }

    @discardableResult
    func delete(_ dbi: MDB_dbi, _ key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { try delete(dbi, raw: $0) }
    }

    @discardableResult
    func delete(_ dbi: MDB_dbi, raw key: UnsafeRawBufferPointer) throws -> Bool {
        guard !key.isEmpty, key.count <= 511 else { return false }
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        let rc = mdb_del(txn, dbi, &k, nil)
        if rc == MDB_NOTFOUND { return false }
        try lmdbCheck(rc, "mdb_del")
        return true
    }

    func insertUser(_ user: UserRecord) throws {
        changes?.userIDs.insert(user.id)
        if try get(environment.users, Keys.utf8(user.id), { _ in true }) != nil {
            throw StoreError.duplicate("user id")
        }
        if !user.email.isEmpty, try userID(email: user.email) != nil {
            throw StoreError.duplicate("email")
        }
        if !user.phone.isEmpty, try userID(phone: user.phone) != nil {
            throw StoreError.duplicate("phone")
        }
        // A new user's history starts empty, even under the id of a deleted one: a chain head
        // left by that user (folders written before deletion dropped it) would show the earlier
        // owner's records, their IPs and user agents, as the new user's.
        try deleteChangeHead(userID: user.id)
        try put(environment.users, Keys.utf8(user.id), RecordCodec.encode(user))
        if !user.email.isEmpty {
            try put(environment.usersByEmail, Keys.utf8(user.email), Keys.utf8(user.id))
        }
        if !user.phone.isEmpty {
            try put(environment.usersByPhone, Keys.utf8(user.phone), Keys.utf8(user.id))
        }
    }

    func updateUser(_ user: UserRecord) throws {
        changes?.userIDs.insert(user.id)
        guard let previous = try self.user(id: user.id) else { throw StoreError.notFound("user") }
        if previous.email != user.email {
            if !user.email.isEmpty {
                if let owner = try userID(email: user.email), owner != user.id {
                    throw StoreError.duplicate("email")
                }
                try put(environment.usersByEmail, Keys.utf8(user.email), Keys.utf8(user.id))
            }
            if !previous.email.isEmpty {
                try delete(environment.usersByEmail, Keys.utf8(previous.email))
            }
        }
        if previous.phone != user.phone {
            if !user.phone.isEmpty {
                if let owner = try userID(phone: user.phone), owner != user.id {
                    throw StoreError.duplicate("phone")
                }
                try put(environment.usersByPhone, Keys.utf8(user.phone), Keys.utf8(user.id))
            }
            if !previous.phone.isEmpty {
                try delete(environment.usersByPhone, Keys.utf8(previous.phone))
            }
        }
        try put(environment.users, Keys.utf8(user.id), RecordCodec.encode(user))
    }

    @discardableResult
    func deleteUser(id: String) throws -> Bool {
        guard let user = try user(id: id) else { return false }
        changes?.userIDs.insert(id)
        for session in try sessions(userID: id) { try deleteSession(id: session.id) }
        for token in try tokens(userID: id) { try deleteToken(id: token.id) }
        if !user.email.isEmpty { try delete(environment.usersByEmail, Keys.utf8(user.email)) }
        if !user.phone.isEmpty { try delete(environment.usersByPhone, Keys.utf8(user.phone)) }
        try delete(environment.users, Keys.utf8(id))
        // The history's entries stay in the log; its chain ends with the user. (Append the
        // deletion's own entry before this, or it starts a chain of its own.)
        if let head = try changeHead(userID: id) {
            try put(environment.userEntries, Keys.userEntries(id, .endedChain), Keys.bigEndian64(head.newest))
        }
        try deleteChangeHead(userID: id)
        return true
    }

    func insertToken(_ token: TokenRecord) throws {
        try insertToken(Encoded(token))
    }

    func insertToken(_ encoded: Encoded<TokenRecord>) throws {
        let token = encoded.record
        guard try hasUser(id: token.userID) else { throw StoreError.notFound("user") }
        try Keys.withUTF8(token.id) { try put(environment.tokens, raw: $0, encoded.bytes, flags: MDB_NOOVERWRITE) }
        try put(environment.userTokens, Keys.userToken(token), [])
    }

    @discardableResult
    func deleteToken(id: String) throws -> Bool {
        guard let token = try token(id: id) else { return false }
        return try deleteToken(token)
    }

    @discardableResult
    func deleteToken(_ token: TokenRecord) throws -> Bool {
        // A token's id and user never change, so the record read earlier names the same keys.
        guard try Keys.withUTF8(token.id, { try delete(environment.tokens, raw: $0) }) else { return false }
        try delete(environment.userTokens, Keys.userToken(token))
        return true
    }

    /// A token deleted for its expiry. Once its user has no other live token, the head that
    /// their tokens' creations left pending goes back to their page of `user_entries` (see
    /// `Keys`): `pending_change_heads` then holds only users with tokens in flight, however
    /// many tokens are never redeemed.
    @discardableResult
    func deleteExpiredToken(_ token: TokenRecord) throws -> Bool {
        guard try deleteToken(token) else { return false }
        var othersLive = false
        try forEachTokenID(userID: token.userID) { _ in
            othersLive = true
            return false
        }
        if !othersLive, let pending = try pendingChangeHead(userID: token.userID) {
            try putChangeHead(userID: token.userID, newest: pending.newest, count: pending.count)
        }
        return true
    }

    func putRateCounter(_ key: String, windowStart: Int64, count: Int) throws {
        // A key longer than LMDB takes is cut: at worst two very long keys share a counter.
        let bytes = Array(Keys.utf8(key).prefix(511))
        try put(environment.rateLimits, bytes, Keys.bigEndian64Pair(UInt64(bitPattern: windowStart), UInt64(count)))
    }

    func putJWTKeys(_ keys: [JWTKeyRecord]) throws {
        try put(environment.meta, Keys.utf8("jwt_keys"), RecordCodec.encode(keys))
    }

    func putSettings(_ settings: AuthSettings) throws {
        try put(environment.meta, Keys.utf8("settings"), RecordCodec.encode(settings))
    }

    func insertApiKey(_ key: ApiKeyRecord) throws {
        changes?.apiKeys = true
        try put(environment.apiKeysBySecret, key.secretHash, Keys.utf8(key.id), flags: MDB_NOOVERWRITE)
        try put(environment.apiKeys, Keys.utf8(key.id), RecordCodec.encode(key), flags: MDB_NOOVERWRITE)
    }

    func updateApiKey(_ key: ApiKeyRecord) throws {
        changes?.apiKeys = true
        guard let previous = try apiKey(id: key.id) else { throw StoreError.notFound("api key") }
        guard previous.secretHash == key.secretHash else {
            throw StoreError(.io, "an API key's secret is immutable")
        }
        try put(environment.apiKeys, Keys.utf8(key.id), RecordCodec.encode(key))
    }

    func insertSession(_ session: SessionRecord) throws {
        try insertSession(Encoded(session))
    }

    func insertSession(_ encoded: Encoded<SessionRecord>) throws {
        let session = encoded.record
        changes?.userIDs.insert(session.userID)
        guard try hasUser(id: session.userID) else { throw StoreError.notFound("user") }
        // The put refuses an existing id itself: no separate look-up.
        do {
            try Keys.withUTF8(session.id) { try put(environment.sessions, raw: $0, encoded.bytes, flags: MDB_NOOVERWRITE) }
        } catch let error as StoreError where error.kind == .duplicate {
            throw StoreError.duplicate("session id")
        }
        try Keys.withSessionSecret(locator: session.secretLocator, hash: session.secretHash) { key in
            try put(environment.sessionsBySecret, raw: key, Keys.utf8(session.id), flags: MDB_NOOVERWRITE)
        }
        try Keys.withUserSession(session) { try put(environment.userEntries, raw: $0, []) }
    }

    func updateSession(_ session: SessionRecord) throws {
        changes?.userIDs.insert(session.userID)
        guard let previous = try self.session(id: session.id) else { throw StoreError.notFound("session") }
        guard previous.userID == session.userID, previous.createdAt == session.createdAt,
            previous.secretHash == session.secretHash, previous.secretLocator == session.secretLocator
        else {
            throw StoreError(.io, "a session's user, creation time and secret are immutable")
        }
        try put(environment.sessions, Keys.utf8(session.id), RecordCodec.encode(session))
    }

    @discardableResult
    func deleteSession(id: String) throws -> Bool {
        guard let session = try session(id: id) else { return false }
        try deleteSession(session.keys)
        return true
    }

    /// Ends the session at once (its key in the user's index goes) and queues its records for
    /// the sweep.
    func deleteSession(_ session: SessionKeys) throws {
        changes?.userIDs.insert(session.userID)
        guard try Keys.withUserSession(session, { key in try delete(environment.userEntries, raw: key) }) else { return }
        let secretKey = Keys.sessionSecret(locator: session.secretLocator, hash: session.secretHash)
        try appendNumbered(environment.sessionsRetired) { _ in
            var value: [UInt8] = []
            value.reserveCapacity(1 + secretKey.count + session.id.utf8.count)
            value.append(UInt8(secretKey.count))
            value.append(contentsOf: secretKey)
            value.append(contentsOf: session.id.utf8)
            return value
        }
    }

    /// The first `limit` queued sessions (the longest queued), lowest id first. Ids and secret
    /// locators grow with time, so the lowest ids lie together at the start of `sessions` and
    /// `sessions_by_secret`: swept in this order a chunk at a time, each chunk shares pages as
    /// the whole list would. The limit bounds the memory a very long queue (a mass deletion of
    /// users) takes; the rest is swept in later rounds.
    func retiredSessionsByID(limit: Int) throws -> [RetiredSession] {
        var queued: [RetiredSession] = []
        guard limit > 0 else { return queued }
        try scan(environment.sessionsRetired, from: [0]) { key, value in
            guard let length = value.first, value.count > 1 + Int(length) else {
                throw StoreError(.corrupt, "a retired session entry of \(value.count) bytes")
            }
            queued.append(
                RetiredSession(
                    number: Array(key), secretKey: Array(value[1...Int(length)]), id: Array(value[(1 + Int(length))...])))
            return queued.count < limit
        }
        queued.sort { $0.id.lexicographicallyPrecedes($1.id) }
        return queued
    }

    /// Deletes these queued sessions' records. A queued session is never live again: its id
    /// stays taken in `sessions` until this deletes its record. Their entries in the queue stay
    /// until the whole list is swept (`dropRetired(count:)`): deleted a chunk at a time in id
    /// order, they dirtied most of the queue's pages at every chunk (measured: half the sweep's
    /// time went to its commits). A session swept again after a restart is no longer there.
    func sweep(_ retired: ArraySlice<RetiredSession>) throws {
        for session in retired {
            try delete(environment.sessions, session.id)
            try delete(environment.sessionsBySecret, session.secretKey)
        }
    }

    /// Deletes the first `count` entries of the queue, the longest queued: those that
    /// `retiredSessionsByID` read, once all of them are swept. One pass over the queue's first
    /// pages.
    func dropRetired(count: Int) throws {
        var dropped = 0
        try deleteFirst(environment.sessionsRetired) { _, _ in
            dropped += 1
            return dropped <= count
        }
    }

    /// Deletes `dbi`'s first entry while `shouldDelete` says so of it, and stops at the first
    /// it refuses or when the table is empty: a table emptied from its start (a queue, the
    /// change log) loses its first pages one after the other.
    func deleteFirst(
        _ dbi: MDB_dbi, while shouldDelete: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        var cursor: OpaquePointer?
        try lmdbCheck(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val()
        var value = MDB_val()
        while true {
            let rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST)
            if rc == MDB_NOTFOUND { return }
            try lmdbCheck(rc, "mdb_cursor_get")
            guard try shouldDelete(bytes(of: key), bytes(of: value)) else { return }
            try lmdbCheck(mdb_cursor_del(cursor, 0), "mdb_cursor_del")
        }
    }

    /// The last number of each numbered table (`changes`, `sessions_retired`) in this
    /// transaction once read, so that later appends in it skip the cursor. A writer belongs to
    /// one transaction: one that is rolled back takes its writer with it.
    private var lastNumbers: [MDB_dbi: UInt64] = [:]

    /// Appends to a table keyed by a running number (8 bytes big-endian) the value made for the
    /// next number, its last key + 1; returns that number.
    @discardableResult
    private func appendNumbered(_ dbi: MDB_dbi, _ makeValue: (UInt64) throws -> [UInt8]) throws -> UInt64 {
        let last = try lastNumbers[dbi] ?? lastKey(dbi).flatMap { key in key.withUnsafeBytes { Keys.readBigEndian64($0) } } ?? 0
        try put(dbi, Keys.bigEndian64(last + 1), makeValue(last + 1), flags: MDB_APPEND)
        lastNumbers[dbi] = last + 1
        return last + 1
    }

    @discardableResult
    func appendChange(_ change: ChangeRecord) throws -> UInt64 {
        try appendChange(PreparedChange(change))
    }

    @discardableResult
    func appendChange(_ change: PreparedChange) throws -> UInt64 {
        try appendChange(change, headOnUserPage: true)
    }

    /// With `headOnUserPage` false, the user's new head goes to `pending_change_heads`, for a
    /// write that leaves their page of `user_entries` alone otherwise (see `Keys`); with it
    /// true, to that page, taking the pending one back in.
    private func appendChange(_ change: PreparedChange, headOnUserPage: Bool) throws -> UInt64 {
        // An entry without a user (a project-wide change) belongs to no chain.
        guard !change.userID.isEmpty else {
            return try appendNumbered(environment.changes) { RecordCodec.encode(change, sequence: $0, userPreviousSequence: 0) }
        }
        let pending = try pendingChangeHead(userID: change.userID)
        let headKey = Keys.userChangeHead(change.userID)
        let head = try pending ?? changeHead(key: headKey) ?? (0, 0)
        let sequence = try appendNumbered(environment.changes) { sequence in
            RecordCodec.encode(change, sequence: sequence, userPreviousSequence: head.newest)
        }
        if headOnUserPage {
            try putChangeHead(key: headKey, newest: sequence, count: head.count + 1)
            if pending != nil { try deletePendingChangeHead(userID: change.userID) }
        } else {
            try Keys.withUTF8(change.userID) { key in
                try put(environment.pendingChangeHeads, raw: key, Keys.bigEndian64Pair(sequence, head.count + 1))
            }
        }
        return sequence
    }

    /// A token and its creation's entry in the log, kept off the user's page of `user_entries`
    /// (see `Keys`): the token in `user_tokens`, the head in `pending_change_heads`.
    @discardableResult
    func insertToken(_ token: Encoded<TokenRecord>, appending change: PreparedChange) throws -> UInt64 {
        try insertToken(token)
        // An entry about another user than the token's (none is made today) goes on their page.
        return try appendChange(change, headOnUserPage: change.userID != token.record.userID)
    }
}

extension LMDBWriter {
    func pruneChanges(before cutoff: Int64, limit: Int) throws -> (pruned: Int, more: Bool) {
        // The newest entry stays whatever its age: the next sequence is the last one + 1.
        guard let lastKey = try lastKey(environment.changes), let last = lastKey.withUnsafeBytes({ Keys.readBigEndian64($0) })
        else { return (0, false) }
        var chains: [String: PrunedChain] = [:]
        var pruned = 0
        var more = false
        try deleteFirst(environment.changes) { key, raw in
            guard let sequence = Keys.readBigEndian64(key) else {
                throw StoreError(.corrupt, "a change-log key of \(key.count) bytes")
            }
            let entry = try RecordCodec.changeTimeAndUser(raw)
            guard sequence != last, entry.time < cutoff else { return false }
            guard pruned < limit else {
                more = true
                return false
            }
            if !entry.userID.isEmpty {
                let userID = String(decoding: raw[entry.userID], as: UTF8.self)
                var chain = try chains[userID] ?? PrunedChain(endedAt: endedChain(userID: userID))
                chain.count(sequence)
                chains[userID] = chain
            }
            pruned += 1
            return true
        }
        for (userID, chain) in chains { try settle(chain, of: userID) }
        return (pruned, more)
    }

    /// What one prune took of a user's entries.
    private struct PrunedChain {
        /// The user's ended chain (see `Keys.UserEntry.endedChain`): entries up to it are no
        /// head's.
        let endedAt: UInt64?
        var endedChainIsGone = false
        /// Entries of the user's live chain, and the newest of them.
        var live: UInt64 = 0
        var newestLive: UInt64 = 0

        mutating func count(_ sequence: UInt64) {
            if let endedAt, sequence <= endedAt {
                if sequence == endedAt { endedChainIsGone = true }
            } else {
                live += 1
                newestLive = sequence
                // The log is pruned oldest first: an ended chain's entries are older than these.
                if endedAt != nil { endedChainIsGone = true }
            }
        }
    }

    /// Keeps the user's head in step with what the prune took of their chain: its count lower,
    /// or the head gone with the chain's newest entry. A user re-created before their ended
    /// chain was marked (before this version) keeps a count of at least one.
    private func settle(_ chain: PrunedChain, of userID: String) throws {
        if chain.endedChainIsGone { try delete(environment.userEntries, Keys.userEntries(userID, .endedChain)) }
        guard chain.live > 0, let head = try changeHead(userID: userID) else { return }
        if chain.newestLive >= head.newest {
            try deleteChangeHead(userID: userID)
        } else {
            try putChangeHead(userID: userID, newest: head.newest, count: max(1, head.count - min(head.count, chain.live)))
        }
    }

    private func endedChain(userID: String) throws -> UInt64? {
        try get(environment.userEntries, Keys.userEntries(userID, .endedChain)) { Keys.readBigEndian64($0) } ?? nil
    }

    /// Rewritten in place on every append: the value keeps its size, so the page never splits.
    /// It replaces a pending head of the user's, which goes.
    func putChangeHead(userID: String, newest: UInt64, count: UInt64) throws {
        try putChangeHead(key: Keys.userChangeHead(userID), newest: newest, count: count)
        try deletePendingChangeHead(userID: userID)
    }

    /// Both of a user's heads, the one in `user_entries` and a pending one.
    func deleteChangeHead(userID: String) throws {
        try delete(environment.userEntries, Keys.userChangeHead(userID))
        try deletePendingChangeHead(userID: userID)
    }

    private func deletePendingChangeHead(userID: String) throws {
        try Keys.withUTF8(userID) { key in _ = try delete(environment.pendingChangeHeads, raw: key) }
    }

    func putChangeHead(key: [UInt8], newest: UInt64, count: UInt64) throws {
        try put(environment.userEntries, key, Keys.bigEndian64Pair(newest, count))
    }
}
