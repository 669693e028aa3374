import AuthdStore
import Foundation

/// The Users API: what the server does with any user (spec section 4).
public final class Users: Sendable {
    let directory: Directory

    public init(directory: Directory) {
        self.directory = directory
    }

    var store: any AuthStore { directory.store }
    var now: Int64 { directory.clock.now() }

    /// `Users/Create`: any combination of email, phone, password and name, including none.
    public func create(
        userID userIDParameter: String, email: String?, phone: String?, password: String?, name: String?, call: Call
    ) async throws -> UserRecord {
        let now = self.now
        var user = UserRecord(id: try Identifiers.customID(userIDParameter, name: "userId", nowMicroseconds: now * 1000), createdAt: now)
        if let email { user.email = try FieldValidation.email(email) }
        if let phone { user.phone = try FieldValidation.phone(phone) }
        if let name { try FieldValidation.name(name) }
        user.name = name ?? ""
        user.hashAlgorithm = PasswordHasher.algorithm
        if let password {
            let settings = try directory.settings()
            try PasswordPolicy.check(
                password, settings: settings,
                personal: .init(userID: user.id, email: user.email, name: user.name, phone: user.phone))
            try checkUnused(user)
            user.passwordHash = try await directory.hash(password, for: call)
            user.passwordUpdate = now
            user.passwordHistory = Directory.history([], adding: user.passwordHash, settings: settings)
        }
        try await directory.insert(user, call: call)
        return user
    }

    /// Fails early, before hashing, when the id, email or phone is taken.
    func checkUnused(_ user: UserRecord) throws {
        let taken = try store.read { r in
            try r.user(id: user.id) != nil || (!user.email.isEmpty && r.userID(email: user.email) != nil)
                || (!user.phone.isEmpty && r.userID(phone: user.phone) != nil)
        }
        if taken { throw AuthdError.userAlreadyExists }
    }

    /// `Users/Get`.
    public func get(userID: String, call: Call) throws -> UserRecord {
        try lookUp(userID: userID, call: call).user
    }

    /// `Users/Get`, with the user cache's entry, so that a transport can keep its encoding of the
    /// answer with it.
    public func lookUp(userID: String, call: Call) throws -> CachedUser {
        try Identifiers.requireKey(userID, name: "userId")
        let cache = directory.users
        if let hit = cache.lookup(userID) { return hit }
        let generation = cache.generation
        let entry = CachedUser(try directory.storedUser(id: userID))
        cache.insert(entry, readAt: generation)
        return entry
    }

    /// `Users/Delete`: the user with their sessions and tokens.
    public func delete(userID: String, call: Call) async throws {
        try Identifiers.requireKey(userID, name: "userId")
        let change = directory.changeRecord(
            "users.\(userID).delete", audit: "user.delete", resource: "user/\(userID)", userID: userID, call: call,
            time: now)
        try await directory.emptyAheadOfDeletion(of: userID, call: call, time: change.time)
        try await store.write { w in
            // The entry first: deleting the user ends its chain (a failure rolls both back).
            try w.appendChange(change)
            guard try w.deleteUser(id: userID) else { throw AuthdError.userNotFound }
        }
    }

    /// Applies `change` to the stored user in one write and records `users.<id>.update.<field>`.
    func update(
        _ userID: String, field: String, call: Call, _ change: @escaping @Sendable (inout UserRecord, any StoreWriter) throws -> Void
    ) async throws -> UserRecord {
        try Identifiers.requireKey(userID, name: "userId")
        return try await directory.updateUser(
            userID, field: field, call: call, duplicate: field == "phone" ? .phoneAlreadyExists : .emailAlreadyExists, change)
    }

    public func updateStatus(userID: String, status: Bool, call: Call) async throws -> UserRecord {
        try await update(userID, field: "status", call: call) { user, _ in user.status = status }
    }

    public func updateLabels(userID: String, labels: [String], call: Call) async throws -> UserRecord {
        let labels = try FieldValidation.labels(labels)
        return try await update(userID, field: "labels", call: call) { user, _ in user.labels = labels }
    }

    public func updateName(userID: String, name: String, call: Call) async throws -> UserRecord {
        guard name.count <= 128 else { throw AuthdError.argumentInvalid("Invalid `name` param: at most 128 characters") }
        return try await update(userID, field: "name", call: call) { user, _ in user.name = name }
    }

    public func updateEmail(userID: String, email: String, call: Call) async throws -> UserRecord {
        let email = email.isEmpty ? "" : try FieldValidation.email(email)
        return try await update(userID, field: "email", call: call) { user, _ in
            user.email = email
            user.emailVerification = false
        }
    }

    public func updatePhone(userID: String, number: String, call: Call) async throws -> UserRecord {
        let phone = number.isEmpty ? "" : try FieldValidation.phone(number, name: "number")
        return try await update(userID, field: "phone", call: call) { user, _ in
            user.phone = phone
            user.phoneVerification = false
        }
    }

    /// `Users/UpdatePassword`: an empty password removes it; `invalidateSessions` ends every
    /// session of the user in the same write.
    public func updatePassword(userID: String, password: String, invalidateSessions: Bool, call: Call) async throws -> UserRecord {
        let existing = try get(userID: userID, call: call)
        let settings = try directory.settings()
        if !password.isEmpty {
            try PasswordPolicy.check(
                password, settings: settings,
                personal: .init(userID: existing.id, email: existing.email, name: existing.name, phone: existing.phone))
            try await directory.checkHistory(password, of: existing, settings: settings, for: call)
        }
        let hash = password.isEmpty ? "" : try await directory.hash(password, for: call)
        let time = now
        if invalidateSessions { try await directory.endSessionsAhead(of: userID, call: call, time: time) }
        return try await update(userID, field: "password", call: call) { [directory] user, w in
            if !hash.isEmpty { user.passwordHistory = Directory.history(user.passwordHistory, adding: hash, settings: settings) }
            user.passwordHash = hash
            user.hashAlgorithm = PasswordHasher.algorithm
            user.hashOptions = ""
            user.passwordUpdate = time
            if invalidateSessions { try directory.endSessions(of: userID, in: w, call: call, time: time) }
        }
    }

    public func updateEmailVerification(userID: String, verified: Bool, call: Call) async throws -> UserRecord {
        try await update(userID, field: "verification", call: call) { user, _ in user.emailVerification = verified }
    }

    public func updatePhoneVerification(userID: String, verified: Bool, call: Call) async throws -> UserRecord {
        try await update(userID, field: "verification", call: call) { user, _ in user.phoneVerification = verified }
    }

    public func updateImpersonator(userID: String, impersonator: Bool, call: Call) async throws -> UserRecord {
        try await update(userID, field: "impersonator", call: call) { user, _ in user.impersonator = impersonator }
    }

    public func updateMFA(userID: String, mfa: Bool, call: Call) async throws -> UserRecord {
        try await update(userID, field: "mfa", call: call) { user, _ in user.mfa = mfa }
    }

    /// `Users/UpdatePrefs`: replaces the preferences; over 65535 bytes or not a JSON object is
    /// refused and nothing is stored.
    public func updatePrefs(userID: String, prefs: String, call: Call) async throws -> String {
        try FieldValidation.prefs(prefs)
        return try await update(userID, field: "prefs", call: call) { user, _ in user.prefs = prefs }.prefs
    }

    // MARK: Sessions and tokens

    /// `Users/ListSessions`: the user's sessions, oldest first (at most `listedSessions`).
    public func listSessions(userID: String, call: Call) throws -> [SessionView] {
        _ = try get(userID: userID, call: call)
        return try store.read { try $0.sessions(userID: userID, limit: Directory.listedSessions).map { SessionView(record: $0, isCurrent: false) } }
    }

    /// `Users/CreateSession`: provider `server`; not trimmed by the session limit (spec 4.6).
    public func createSession(userID: String, call: Call) async throws -> SessionView {
        _ = try get(userID: userID, call: call)
        do {
            return try await directory.issueSession(userID: userID, provider: "server", factors: ["server"], call: call, trim: false)
        } catch let error as StoreError where error.kind == .notFound {
            throw AuthdError.userNotFound
        }
    }

    public func deleteSession(userID: String, sessionID: String, call: Call) async throws {
        try Identifiers.requireKey(userID, name: "userId")
        try Identifiers.requireKey(sessionID, name: "sessionId")
        let time = now
        try await store.write { [directory] w in
            guard try w.user(id: userID) != nil else { throw AuthdError.userNotFound }
            guard let session = try w.session(id: sessionID), session.userID == userID else { throw AuthdError.sessionNotFound }
            try directory.deleteSession(session.keys, in: w, call: call, time: time)
        }
    }

    public func deleteSessions(userID: String, call: Call) async throws {
        try Identifiers.requireKey(userID, name: "userId")
        let time = now
        try await directory.endSessionsAhead(of: userID, call: call, time: time)
        try await store.write { [directory] w in
            guard try w.user(id: userID) != nil else { throw AuthdError.userNotFound }
            try directory.endSessions(of: userID, in: w, call: call, time: time)
        }
    }

    /// `Users/CreateToken`: `length` lowercase hex characters (4-128, default 6), valid for
    /// `expire` seconds (60 to one year, default 15 minutes), single use (spec 4.7).
    public func createToken(userID: String, length: Int?, expire: Int?, call: Call) async throws -> (TokenRecord, secret: String) {
        let length = length ?? 6
        let expire = expire ?? 900
        guard (4...128).contains(length) else { throw AuthdError.argumentInvalid("Invalid `length` param: Value must be a valid range between 4 and 128") }
        guard (60...31_536_000).contains(expire) else {
            throw AuthdError.argumentInvalid("Invalid `expire` param: Value must be a valid range between 60 and 31,536,000")
        }
        try Identifiers.requireKey(userID, name: "userId")
        // Whether the user exists, without decoding the record.
        guard try store.read({ try $0.userStatus(id: userID) }) != nil else { throw AuthdError.userNotFound }
        let time = now
        let secret = String(SecretToken.generate(byteCount: (length + 1) / 2).prefix(length))
        var token = TokenRecord(
            id: Identifiers.unique(nowMicroseconds: time * 1000), userID: userID, type: 8,
            secretHash: SecretToken.hash(secret), createdAt: time, expire: time + Int64(expire) * 1000)
        token.ip = call.context.client.ip
        token.userAgent = call.context.client.userAgent
        // Encoded here rather than in the write, which every other write waits for.
        let record = try PreparedChange(
            directory.changeRecord(
                "users.\(userID).tokens.\(token.id).create", audit: "tokens.create", resource: "user/\(userID)",
                userID: userID, call: call, time: time))
        let newToken = try Encoded(token)
        do {
            _ = try await store.write { w in try w.insertToken(newToken, appending: record) }
        } catch let error as StoreError where error.kind == .notFound {
            throw AuthdError.userNotFound
        }
        return (token, secret)
    }
}
