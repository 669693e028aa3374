import AuthdStore

extension Accounts {
    /// `Account/CreateEmailPasswordSession` (spec 3.9).
    public func createEmailPasswordSession(
        email rawEmail: String, password: String, context: RequestContext
    ) async throws -> SessionView {
        let email = try FieldValidation.email(rawEmail)
        try FieldValidation.loginPassword(password)
        let (caller, candidate) = try store.read { r -> (Caller, UserRecord?) in
            let caller = try authenticate(context, in: r)
            let user = try r.userID(email: email).flatMap { try r.user(id: $0) }
            return (caller, user)
        }
        if case .user = caller { throw AuthdError.sessionAlreadyExists }

        let stored = candidate.map { $0.passwordHash.isEmpty ? decoyHash : $0.passwordHash } ?? decoyHash
        let matches = try await hashingPool.run { [hasher] in hasher.verify(password, encoded: stored) }
        guard matches, let user = candidate, !user.passwordHash.isEmpty, user.passwordUpdate != 0 else {
            throw AuthdError.invalidCredentials
        }
        guard user.status else { throw AuthdError.userBlocked }

        let now = clock.now()
        let secret = SecretToken.generate()
        var session = SessionRecord(
            id: Identifiers.unique(nowMicroseconds: now * 1000), userID: user.id, createdAt: now,
            expire: now + sessionPolicy.durationSeconds * 1000, provider: "email",
            secretHash: SecretToken.hash(secret))
        session.providerUID = email
        session.factors = ["password"]
        session.ip = context.client.ip
        session.userAgent = context.client.userAgent
        try await insertSession(session, caller: caller, context: context)
        return SessionView(record: session, isCurrent: true, secret: secret)
    }

    /// Stores a new session with its change entry, then deletes the user's oldest sessions
    /// beyond the session limit in the same transaction: they stop working at once.
    func insertSession(_ session: SessionRecord, caller: Caller, context: RequestContext) async throws {
        let created = changeRecord(
            event: "users.\(session.userID).sessions.\(session.id).create", audit: "session.create",
            resource: "user/\(session.userID)", userID: session.userID, caller: caller, context: context,
            time: session.createdAt)
        let limit = sessionPolicy.limit
        do {
            try await store.write { [self] w in
                try w.insertSession(session)
                try w.appendChange(created)
                guard limit > 0 else { return }
                let sessions = try w.sessions(userID: session.userID)
                for old in sessions.prefix(max(0, sessions.count - limit)) {
                    try w.deleteSession(id: old.id)
                    try w.appendChange(
                        changeRecord(
                            event: "users.\(old.userID).sessions.\(old.id).delete", audit: "session.delete",
                            resource: "user/\(old.userID)", userID: old.userID, caller: caller,
                            context: context, time: session.createdAt))
                }
            }
        } catch let error as StoreError where error.kind == .notFound {
            // The user was deleted between the password check and the write.
            throw AuthdError.invalidCredentials
        }
    }

    /// `Account/ListSessions`: every session of the caller, oldest first.
    public func listSessions(context: RequestContext) throws -> [SessionView] {
        try store.read { r in
            let (user, current) = try signedIn(context, in: r)
            return try r.sessions(userID: user.id).map { SessionView(record: $0, isCurrent: $0.id == current.id) }
        }
    }

    /// `Account/GetSession`: one of the caller's sessions, by id or `current`.
    public func getSession(id: String, context: RequestContext) throws -> SessionView {
        try store.read { r in
            let (user, current) = try signedIn(context, in: r)
            let sessionID = try resolveSessionID(id, current: current)
            guard let session = try r.session(id: sessionID), session.userID == user.id else {
                throw AuthdError.sessionNotFound
            }
            return SessionView(record: session, isCurrent: session.id == current.id)
        }
    }

    /// `Account/DeleteSession`: signs the caller out of one session, by id or `current`.
    public func deleteSession(id: String, context: RequestContext) async throws {
        let (caller, sessionID) = try store.read { r -> (Caller, String) in
            let (user, current) = try signedIn(context, in: r)
            return (.user(user, session: current), try resolveSessionID(id, current: current))
        }
        let now = clock.now()
        guard case .user(let user, _) = caller else { return }
        try await store.write { [self] w in
            guard let session = try w.session(id: sessionID), session.userID == user.id else {
                throw AuthdError.sessionNotFound
            }
            try w.deleteSession(id: sessionID)
            try w.appendChange(
                changeRecord(
                    event: "users.\(user.id).sessions.\(sessionID).delete", audit: "session.delete",
                    resource: "user/\(user.id)", userID: user.id, caller: caller, context: context, time: now))
        }
    }

    /// `Account/DeleteSessions`: signs the caller out everywhere.
    public func deleteSessions(context: RequestContext) async throws {
        let caller = try store.read { r -> Caller in
            let (user, current) = try signedIn(context, in: r)
            return .user(user, session: current)
        }
        let now = clock.now()
        guard case .user(let user, _) = caller else { return }
        try await store.write { [self] w in
            for session in try w.sessions(userID: user.id) {
                try w.deleteSession(id: session.id)
                try w.appendChange(
                    changeRecord(
                        event: "users.\(user.id).sessions.\(session.id).delete", audit: "session.delete",
                        resource: "user/\(user.id)", userID: user.id, caller: caller, context: context,
                        time: now))
            }
        }
    }

    private func resolveSessionID(_ id: String, current: SessionRecord) throws -> String {
        if id == "current" || id.isEmpty { return current.id }
        try Identifiers.requireKey(id, name: "sessionId")
        return id
    }
}
