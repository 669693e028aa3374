import AuthdStore

/// The signed-in user's own profile (spec 3.3, 3.10, 3.17-3.22).
extension Accounts {
    private static let vagueDuplicate = AuthdError(
        type: "general_bad_request", code: 400, message: "The email or phone could not be set: choose another.")

    /// `Account/Delete`: the caller's account with its sessions and tokens.
    public func delete(call: Call) async throws {
        let (user, _) = try call.signedIn()
        let change = directory.changeRecord(
            "", audit: "user.delete", resource: "user/\(user.id)", userID: user.id, call: call, time: directory.clock.now())
        try await directory.emptyAheadOfDeletion(of: user.id, call: call, time: change.time)
        try await directory.store.write { w in
            // The entry first: deleting the user ends its chain (a failure rolls both back).
            try w.appendChange(change)
            guard try w.deleteUser(id: user.id) else { throw AuthdError.userNotFound }
        }
    }

    public func updateName(_ name: String, call: Call) async throws -> UserRecord {
        let (user, _) = try call.signedIn()
        try FieldValidation.name(name)
        return try await directory.updateUser(user.id, field: "name", call: call, duplicate: Self.vagueDuplicate) { u, _ in u.name = name }
    }

    /// Verifies the current password of a user who has one; users without one pass. `user` is
    /// the stored record (`Directory.storedUser`).
    private func requireCurrentPassword(_ password: String, of user: UserRecord, call: Call) async throws {
        guard user.passwordUpdate != 0, !user.passwordHash.isEmpty else { return }
        guard try await directory.verifyPassword(password, of: user, for: call) else { throw AuthdError.invalidCredentials }
    }

    /// `Account/UpdatePassword`: the old password when one is set; strength, dictionary,
    /// personal-data and history policies; other sessions end when asked or when the project's
    /// `invalidate_sessions` setting is on.
    public func updatePassword(_ password: String, oldPassword: String, invalidateSessions: Bool, call: Call) async throws -> UserRecord {
        let (user, current) = try call.signedIn()
        guard oldPassword.utf8.count <= 256 else { throw AuthdError.argumentInvalid("Invalid `oldPassword` param: at most 256 characters") }
        let settings = try directory.settings()
        try PasswordPolicy.check(
            password, settings: settings, personal: .init(userID: user.id, email: user.email, name: user.name, phone: user.phone))
        // Counted before the old password is checked: parallel guesses all count.
        return try await directory.rateLimiter.counted(.updatePassword, keys: [Directory.ipKey(call)], call: call) { storeCount in
            let stored = try directory.storedUser(id: user.id)
            try await requireCurrentPassword(oldPassword, of: stored, call: call)
            try await directory.checkHistory(password, of: stored, settings: settings, for: call)
            let hash = try await directory.hash(password, for: call)
            let endOthers = invalidateSessions || settings.invalidateSessions
            let time = directory.clock.now()
            if endOthers {
                try await directory.endSessionsAhead(of: user.id, except: current.id, call: call, time: time, inEachWrite: storeCount)
            }
            return try await directory.updateUser(user.id, field: "password", call: call, duplicate: Self.vagueDuplicate) { [directory] u, w in
                try storeCount?(w)
                u.passwordHistory = Directory.history(u.passwordHistory, adding: hash, settings: settings)
                u.passwordHash = hash
                u.hashAlgorithm = PasswordHasher.algorithm
                u.hashOptions = ""
                u.passwordUpdate = time
                if endOthers { try directory.endSessions(of: u.id, except: current.id, in: w, call: call, time: time) }
            }
        }
    }

    /// `Account/UpdateEmail` (and `UpdatePhone`): needs the password; a user without one (an
    /// anonymous user, say) sets it here and so becomes a full account.
    public func updateEmail(_ rawEmail: String, password: String, call: Call) async throws -> UserRecord {
        let email = try FieldValidation.email(rawEmail)
        return try await updateContact(field: "email", password: password, call: call) { u in
            guard u.email != email else { return }
            u.email = email
            u.emailVerification = false
        }
    }

    public func updatePhone(_ rawPhone: String, password: String, call: Call) async throws -> UserRecord {
        let phone = try FieldValidation.phone(rawPhone)
        return try await updateContact(field: "phone", password: password, call: call) { u in
            guard u.phone != phone else { return }
            u.phone = phone
            u.phoneVerification = false
        }
    }

    private func updateContact(
        field: String, password: String, call: Call, _ change: @escaping @Sendable (inout UserRecord) -> Void
    ) async throws -> UserRecord {
        let user = try directory.storedUser(id: call.signedIn().user.id)
        try FieldValidation.loginPassword(password)
        let settings = try directory.settings()
        var newHash: String?
        if user.passwordUpdate == 0 || user.passwordHash.isEmpty {
            try PasswordPolicy.check(
                password, settings: settings, personal: .init(userID: user.id, email: user.email, name: user.name, phone: user.phone))
            newHash = try await directory.hash(password, for: call)
        } else {
            try await requireCurrentPassword(password, of: user, call: call)
        }
        let time = directory.clock.now()
        let duplicate = field == "phone" ? AuthdError.phoneAlreadyExists : Self.vagueDuplicate
        let hash = newHash
        return try await directory.updateUser(user.id, field: field, call: call, duplicate: duplicate) { u, _ in
            change(&u)
            if let hash {
                u.passwordHash = hash
                u.hashAlgorithm = PasswordHasher.algorithm
                u.passwordUpdate = time
                u.passwordHistory = Directory.history(u.passwordHistory, adding: hash, settings: settings)
            }
        }
    }

    public func getPrefs(call: Call) throws -> String {
        try call.signedIn().user.prefs
    }

    public func updatePrefs(_ prefs: String, call: Call) async throws -> String {
        let (user, _) = try call.signedIn()
        try FieldValidation.prefs(prefs)
        return try await directory.updateUser(user.id, field: "prefs", call: call, duplicate: Self.vagueDuplicate) { u, _ in
            u.prefs = prefs
        }.prefs
    }

    /// `Account/UpdateStatus`: blocks the caller's own account; every session ends at once.
    public func block(call: Call) async throws -> UserRecord {
        let (user, _) = try call.signedIn()
        let time = directory.clock.now()
        try await directory.endSessionsAhead(of: user.id, call: call, time: time)
        return try await directory.updateUser(user.id, field: "status", call: call, duplicate: Self.vagueDuplicate) { [directory] u, w in
            u.status = false
            try directory.endSessions(of: u.id, in: w, call: call, time: time)
        }
    }

    /// `Account/UpdateSession`: extends a session (by id or `current`) to now + duration.
    public func updateSession(id: String, call: Call) async throws -> SessionView {
        let (user, current) = try call.signedIn()
        let sessionID = id == "current" || id.isEmpty ? current.id : id
        try Identifiers.requireKey(sessionID, name: "sessionId")
        let settings = try directory.settings()
        let time = directory.clock.now()
        let record = directory.changeRecord(
            "users.\(user.id).sessions.\(sessionID).update", audit: "session.update", resource: "user/\(user.id)",
            userID: user.id, call: call, time: time)
        let updated = try await directory.rateLimiter.counted(.updateSession, keys: [Directory.ipKey(call)], call: call) { storeCount in
            try await directory.store.write { w -> SessionRecord in
                try storeCount?(w)
                guard var session = try w.session(id: sessionID), session.userID == user.id else { throw AuthdError.sessionNotFound }
                session.expire = time + settings.duration * 1000
                session.updatedAt = time
                try w.updateSession(session)
                try w.appendChange(record)
                return session
            }
        }
        return SessionView(record: updated, isCurrent: updated.id == current.id)
    }

    /// `Account/CreateAnonymousSession` (spec 3.10).
    public func createAnonymousSession(call: Call) async throws -> SessionView {
        if case .user = call.caller { throw AuthdError.sessionAlreadyExists }
        let settings = try directory.settings()
        try directory.requireMethod("anonymous", call: call, settings: settings)
        // The count, the user and the session: one transaction, one durable write.
        return try await directory.rateLimiter.counted(.anonymousSession, keys: [Directory.ipKey(call)], call: call) { storeCount in
            let now = directory.clock.now()
            let user = UserRecord(id: Identifiers.unique(nowMicroseconds: now * 1000), createdAt: now)
            let insertion = directory.insertion(of: user, call: call, userLimit: settings.userLimit)
            let session = try await Directory.duplicateIsTaken {
                try await directory.issueSession(
                    userID: user.id, provider: "anonymous", factors: ["anonymous"], call: call, trim: true,
                    inSameWrite: { w in
                        try storeCount?(w)
                        try insertion(w)
                    })
            }
            directory.logger.info("user created", metadata: ["user": "\(user.id)"])
            return session
        }
    }

    /// `Account/ListLogs`: the caller's audit records, newest first.
    public func listLogs(limit: Int, offset: Int, beforeSequence: UInt64?, call: Call) async throws -> (entries: [ChangeRecord], total: Int) {
        let (user, _) = try call.signedIn()
        return try await directory.logs(userID: user.id, limit: limit, offset: offset, beforeSequence: beforeSequence)
    }
}

extension Accounts {
    /// `Account/CreateJWT`: a token for the caller's current session; not from a JWT (spec 10).
    public func createJWT(duration: Int?, jwt: JWTIssuer, call: Call) async throws -> String {
        let (user, session) = try call.signedIn()
        if case .jwt = call.context.credential {
            throw AuthdError(type: "user_jwt_creation_denied", code: 403, message: "A JWT cannot be created from a JWT: use the session.")
        }
        let duration = try Self.jwtDuration(duration)
        try await directory.rateLimiter.hit(.createJWT, keys: ["user:\(user.id)"], call: call)
        return try jwt.sign(userID: user.id, sessionID: session.id, duration: duration)
    }

    static func jwtDuration(_ duration: Int?) throws -> Int64 {
        let duration = duration ?? 900
        guard (0...Int(JWTIssuer.maximumDuration)).contains(duration) else {
            throw AuthdError.argumentInvalid("Invalid `duration` param: Value must be a valid range between 0 and 3,600")
        }
        return Int64(duration)
    }
}

extension Users {
    /// `Users/CreateJWT`: for a session of the user (`recent`: the newest); with no session, a
    /// token bound to none (spec 4.8).
    public func createJWT(userID: String, sessionID: String, duration: Int?, jwt: JWTIssuer, call: Call) throws -> String {
        _ = try get(userID: userID, call: call)
        let duration = try Accounts.jwtDuration(duration)
        let sessions = try store.read { try $0.sessions(userID: userID) }
        let chosen = sessionID.isEmpty || sessionID == "recent" ? sessions.last : sessions.first { $0.id == sessionID }
        return try jwt.sign(userID: userID, sessionID: chosen?.id ?? "", duration: duration)
    }
}

extension Directory {
    /// A page of a user's change log, read on the query pool: with an offset of 5000 the walk
    /// down the chain takes milliseconds.
    func logs(userID: String, limit: Int, offset: Int, beforeSequence: UInt64?) async throws -> (entries: [ChangeRecord], total: Int) {
        let limit = limit == 0 ? 25 : limit
        guard (1...100).contains(limit) else { throw AuthdError.argumentInvalid("Invalid `limit` param: 1 to 100") }
        guard offset <= 5000 else { throw AuthdError.argumentInvalid("Invalid `offset` param: at most 5000") }
        return try await query { try $0.changes(userID: userID, before: beforeSequence, offset: offset, limit: limit) }
    }
}

extension Users {
    /// `Users/ListLogs`: a user's audit records, newest first.
    public func listLogs(userID: String, limit: Int, offset: Int, beforeSequence: UInt64?, call: Call) async throws -> (entries: [ChangeRecord], total: Int) {
        _ = try get(userID: userID, call: call)
        return try await directory.logs(userID: userID, limit: limit, offset: offset, beforeSequence: beforeSequence)
    }
}
