import AuthdStore

/// Server API keys, managed by the operator: shown once at creation, stored only as a hash.
public final class ApiKeys: Sendable {
    let directory: Directory

    public init(directory: Directory) {
        self.directory = directory
    }

    /// A new key with `scopes` (each one of `Scope.grantable`), expiring at `expire` (Unix ms;
    /// 0 for never). The secret is `authd_` and 32 random bytes as 43 characters of base64url:
    /// 49 characters, which SHA-256 hashes in one block on each call that presents the key
    /// (keys made with 64 hex characters, two blocks, keep working).
    public func create(name: String, scopes: [String], expire: Int64, call: Call) async throws -> (ApiKeyRecord, secret: String) {
        guard (1...128).contains(name.count) else {
            throw AuthdError.argumentInvalid("Invalid `name` param: 1 to 128 characters")
        }
        let unknown = Set(scopes).subtracting(Scope.grantable)
        guard !scopes.isEmpty, unknown.isEmpty else {
            throw AuthdError.argumentInvalid(
                "Invalid `scopes` param: give one or more of \(Scope.grantable.sorted().joined(separator: ", "))"
                    + (unknown.isEmpty ? "" : "; unknown: \(unknown.sorted().joined(separator: ", "))"))
        }
        let now = directory.clock.now()
        guard expire == 0 || expire > now else {
            throw AuthdError.argumentInvalid("Invalid `expire` param: the time is in the past")
        }
        let secret = "authd_" + SecretToken.base64URLEncode(SecretToken.randomBytes(32))
        var key = ApiKeyRecord(
            id: Identifiers.unique(nowMicroseconds: now * 1000), name: name, scopes: Array(Set(scopes)).sorted(),
            secretHash: SecretToken.hash(secret), createdAt: now)
        key.expire = expire
        let change = directory.changeRecord(
            "keys.\(key.id).create", audit: "key.create", resource: "key/\(key.id)", userID: "", call: call, time: now)
        let newKey = key
        try await directory.store.write { w in
            try w.insertApiKey(newKey)
            try w.appendChange(change)
        }
        directory.logger.notice("api key created", metadata: ["key": "\(key.id)", "name": "\(name)"])
        return (key, secret)
    }

    public func list(call: Call) throws -> [ApiKeyRecord] {
        try directory.store.read { try $0.apiKeys() }
    }

    /// Revokes a key; it stops working at once. Revoking twice is harmless.
    public func revoke(id: String, call: Call) async throws -> ApiKeyRecord {
        try Identifiers.requireKey(id, name: "keyId")
        let now = directory.clock.now()
        let change = directory.changeRecord(
            "keys.\(id).delete", audit: "key.delete", resource: "key/\(id)", userID: "", call: call, time: now)
        return try await directory.store.write { w in
            guard var key = try w.apiKey(id: id) else {
                throw AuthdError(type: "key_not_found", code: 404, message: "No API key with id \(id).")
            }
            if key.revokedAt == 0 {
                key.revokedAt = now
                try w.updateApiKey(key)
                try w.appendChange(change)
            }
            return key
        }
    }
}
