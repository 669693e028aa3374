import AuthdStore

extension Accounts {
    /// `Account/CreateEmailPasswordSession` (spec 3.9).
    public func createEmailPasswordSession(email rawEmail: String, password: String, call: Call) async throws -> SessionView {
        if case .user = call.caller { throw AuthdError.sessionAlreadyExists }
        try directory.requireMethod("email-password", call: call, settings: try directory.settings())
        let email = try FieldValidation.email(rawEmail)
        try FieldValidation.loginPassword(password)
        // The slot is taken before the password is checked: parallel guesses all count. A
        // success's reset clears it, so it is stored only if the attempt fails.
        let limitKeys = ["email:\(email)"]
        return try await directory.rateLimiter.counted(.emailPasswordSession, keys: limitKeys, call: call) { _ in
            let candidate = try directory.store.read { r in try r.userID(email: email).flatMap { try r.user(id: $0) } }
            let verified = try await directory.verifyPassword(password, of: candidate, for: call)
            guard verified, let user = candidate else { throw AuthdError.invalidCredentials }
            guard user.status else { throw AuthdError.userBlocked }
            let rehash = try await directory.rehashIfImported(user, password: password, call: call)
            let reset = directory.rateLimiter.resetting(.emailPasswordSession, keys: limitKeys, call: call)
            do {
                // In a storm of sign-ins the next one's hash ends within milliseconds, and its
                // write may share this one's commit.
                return try await WriteCompany.$mayWait.withValue(true) {
                    try await directory.issueSession(
                        userID: user.id, provider: "email", providerUID: email, factors: ["password"], call: call, trim: true,
                        inSameWrite: { w in
                            try rehash?(w)
                            try reset?(w)
                        })
                }
            } catch let error as StoreError where error.kind == .notFound {
                // The user was deleted between the password check and the write.
                throw AuthdError.invalidCredentials
            }
        }
    }

    /// `Account/CreateSession`: redeems a token (`Users/CreateToken`) for a session; the token
    /// is used up in the same transaction (spec 3.11).
    public func createSession(userID: String, secret: String, call: Call) async throws -> SessionView {
        if case .user = call.caller { throw AuthdError.sessionAlreadyExists }
        guard Identifiers.isValidKey(userID) || userID == Identifiers.uniqueLiteral else {
            throw AuthdError.argumentInvalid("Invalid `userId` param: UID must contain at most 36 chars.")
        }
        guard (1...256).contains(secret.count) else {
            throw AuthdError.argumentInvalid("Invalid `secret` param: Value must be a valid string and at least 1 chars and no longer than 256 chars")
        }
        let limitKeys = ["\(Directory.ipKey(call))|user:\(userID)"]
        return try await directory.rateLimiter.counted(.tokenSession, keys: limitKeys, call: call) { _ in
            let now = directory.clock.now()
            let presented = SecretToken.hash(secret)
            // The user's status alone: the record itself is not needed here.
            let (status, token) = try directory.store.read { r -> (Bool?, TokenRecord?) in
                guard let status = try r.userStatus(id: userID) else { return (nil, nil) }
                return (status, try r.token(userID: userID, secretHash: presented, validAt: now))
            }
            guard let status, let token else {
                throw AuthdError(type: "user_invalid_token", code: 401, message: "Invalid token passed in the request.")
            }
            guard status else { throw AuthdError.userBlocked }
            let reset = directory.rateLimiter.resetting(.tokenSession, keys: limitKeys, call: call)
            do {
                return try await directory.issueSession(
                    userID: userID, provider: "token", factors: ["token"], call: call, trim: true,
                    inSameWrite: { w in
                        // A token redeemed twice at once: the second write finds it gone.
                        guard try w.deleteToken(token) else {
                            throw AuthdError(type: "user_invalid_token", code: 401, message: "Invalid token passed in the request.")
                        }
                        try reset?(w)
                    })
            } catch let error as StoreError where error.kind == .notFound {
                throw AuthdError(type: "user_invalid_token", code: 401, message: "Invalid token passed in the request.")
            }
        }
    }

    /// `Account/ListSessions`: the caller's sessions, oldest first (at most `listedSessions`).
    public func listSessions(call: Call) throws -> [SessionView] {
        let (user, current) = try call.signedIn()
        return try directory.store.read { r in
            try r.sessions(userID: user.id, limit: Directory.listedSessions).map { SessionView(record: $0, isCurrent: $0.id == current.id) }
        }
    }

    /// `Account/GetSession`: one of the caller's sessions, by id or `current`.
    public func getSession(id: String, call: Call) throws -> SessionView {
        let (user, current) = try call.signedIn()
        let sessionID = try resolveSessionID(id, current: current)
        guard let session = try directory.store.read({ try $0.session(id: sessionID) }), session.userID == user.id else {
            throw AuthdError.sessionNotFound
        }
        return SessionView(record: session, isCurrent: session.id == current.id)
    }

    /// `Account/DeleteSession`: signs the caller out of one session, by id or `current`.
    public func deleteSession(id: String, call: Call) async throws {
        let (user, current) = try call.signedIn()
        let sessionID = try resolveSessionID(id, current: current)
        let now = directory.clock.now()
        try await directory.rateLimiter.counted(.deleteSessions, keys: [Directory.ipKey(call)], call: call) { storeCount in
            try await directory.store.write { [directory] w in
                try storeCount?(w)
                guard let session = try w.session(id: sessionID), session.userID == user.id else {
                    throw AuthdError.sessionNotFound
                }
                try directory.deleteSession(session.keys, in: w, call: call, time: now)
            }
        }
    }

    /// `Account/DeleteSessions`: signs the caller out everywhere.
    public func deleteSessions(call: Call) async throws {
        let (user, _) = try call.signedIn()
        let now = directory.clock.now()
        try await directory.rateLimiter.counted(.deleteSessions, keys: [Directory.ipKey(call)], call: call) { storeCount in
            try await directory.endSessionsAhead(of: user.id, call: call, time: now, inEachWrite: storeCount)
            try await directory.store.write { [directory] w in
                try storeCount?(w)
                try directory.endSessions(of: user.id, in: w, call: call, time: now)
            }
        }
    }

    private func resolveSessionID(_ id: String, current: SessionRecord) throws -> String {
        if id == "current" || id.isEmpty { return current.id }
        try Identifiers.requireKey(id, name: "sessionId")
        return id
    }
}
