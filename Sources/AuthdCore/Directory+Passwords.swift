import AuthdStore

extension Directory {
    /// Checks `password` against the user's stored hash, whatever its algorithm, on the hashing
    /// pool. With no user (or no password) it verifies against a decoy hash, so that the time
    /// taken does not tell which accounts exist.
    func verifyPassword(_ password: String, of user: UserRecord?, for call: Call) async throws -> Bool {
        guard let user, !user.passwordHash.isEmpty, user.passwordUpdate != 0 else {
            _ = try await hashingPool.run(in: call.hashingLane) { [hasher, decoyHash] in hasher.verify(password, encoded: decoyHash) }
            return false
        }
        let algorithm = user.hashAlgorithm.isEmpty ? PasswordHasher.algorithm : user.hashAlgorithm
        guard let verifier = PasswordVerifiers.table[algorithm] else {
            logger.error("unknown password hash algorithm", metadata: ["user": "\(user.id)", "algorithm": "\(algorithm)"])
            return false
        }
        let stored = user.passwordHash
        let options = user.hashOptions
        return try await hashingPool.run(in: call.hashingLane) { [hasher] in
            try verifier(PasswordVerifiers.Input(password: password, stored: stored, options: options, argon2: hasher))
        }
    }

    /// After a successful login with an imported hash: the write that replaces it with an
    /// Argon2id hash of the same password, to run in the session's transaction (spec 9.6).
    func rehashIfImported(_ user: UserRecord, password: String, call: Call) async throws -> (@Sendable (any StoreWriter) throws -> Void)? {
        guard !user.hashAlgorithm.isEmpty, user.hashAlgorithm != PasswordHasher.algorithm else { return nil }
        let hash = try await hash(password, for: call)
        let userID = user.id
        let now = clock.now()
        return { w in
            guard var current = try w.user(id: userID) else { throw StoreError.notFound("user") }
            current.passwordHash = hash
            current.hashAlgorithm = PasswordHasher.algorithm
            current.hashOptions = ""
            current.updatedAt = now
            try w.updateUser(current)
        }
    }
}

extension Call {
    /// Whose turn a call's password hashing waits for: the end user's address when the service
    /// relays it, else the connected process. A flood of sign-ins from one address, or from a
    /// service in a retry loop, then waits behind itself while every other caller's hashing
    /// takes its turn with it (`BlockingPool.Lane`).
    var hashingLane: BlockingPool.Lane {
        if !context.client.ip.isEmpty { return BlockingPool.Lane(context.client.ip) }
        if let peer = context.peer { return BlockingPool.Lane(peer) }
        return .shared
    }
}
