import AuthdStore
import Foundation

/// A password hash made elsewhere, with what its algorithm needs to verify it (spec 4.2).
public enum ImportedPassword: Sendable, Equatable {
    case argon2(String)
    case bcrypt(String)
    case md5(String)
    case phpass(String)
    /// `version`: sha1, sha224, sha256, sha384, sha512, sha512/224, sha512/256, sha3-224..512.
    case sha(String, version: String)
    case scrypt(String, salt: String, cpu: Int, memory: Int, parallel: Int, length: Int)
    case scryptModified(String, salt: String, saltSeparator: String, signerKey: String)
}

extension Users {
    /// `Users/Create<Algorithm>User`: stores the hash as given; the first successful login
    /// re-hashes the password with Argon2id.
    public func importUser(
        userID userIDParameter: String, email rawEmail: String, password: ImportedPassword, name: String?, call: Call
    ) async throws -> UserRecord {
        let now = self.now
        var user = UserRecord(id: try Identifiers.customID(userIDParameter, name: "userId", nowMicroseconds: now * 1000), createdAt: now)
        user.email = try FieldValidation.email(rawEmail)
        if let name { try FieldValidation.name(name) }
        user.name = name ?? ""
        (user.hashAlgorithm, user.passwordHash, user.hashOptions) = try Self.validated(password)
        try FieldValidation.loginPassword(user.passwordHash)
        user.passwordUpdate = now
        try await directory.insert(user, call: call)
        return user
    }

    static func validated(_ password: ImportedPassword) throws -> (algorithm: String, hash: String, options: String) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        func json<T: Encodable>(_ value: T) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        switch password {
        case .argon2(let hash):
            guard hash.hasPrefix("$argon2") else { throw AuthdError.argumentInvalid("Invalid `password` param: not an Argon2 PHC string") }
            return ("argon2", hash, "")
        case .bcrypt(let hash):
            guard ["$2a$", "$2b$", "$2y$"].contains(where: hash.hasPrefix) else {
                throw AuthdError.argumentInvalid("Invalid `password` param: not a bcrypt hash ($2a$, $2b$ or $2y$)")
            }
            return ("bcrypt", hash, "")
        case .md5(let hash):
            return ("md5", hash, "")
        case .phpass(let hash):
            return ("phpass", hash, "")
        case .sha(let hash, let version):
            let version = version.isEmpty ? "sha256" : version
            guard ImportedHashes.shaDigests[version] != nil else {
                throw AuthdError.argumentInvalid(
                    "Invalid `passwordVersion` param: one of \(ImportedHashes.shaDigests.keys.sorted().joined(separator: ", "))")
            }
            return ("sha", hash, try json(["version": version]))
        case .scrypt(let hash, let salt, let cpu, let memory, let parallel, let length):
            let cpu = cpu == 0 ? 8 : cpu
            let memory = memory == 0 ? 14 : memory
            let parallel = parallel == 0 ? 1 : parallel
            let length = length == 0 ? 64 : length
            guard (1...128).contains(salt.count) else { throw AuthdError.argumentInvalid("Invalid `passwordSalt` param: 1 to 128 characters") }
            guard cpu > 1, cpu & (cpu - 1) == 0 else { throw AuthdError.argumentInvalid("Invalid `passwordCpu` param: a power of two above 1") }
            guard memory >= 1, parallel >= 1, (16...1024).contains(length) else {
                throw AuthdError.argumentInvalid("Invalid scrypt parameters: memory and parallel at least 1, length 16 to 1024")
            }
            // Every login pays this cost: refuse parameters that would take over 256 MiB or
            // an unbounded time.
            guard 128 * cpu * memory <= 256 << 20, parallel <= 16 else {
                throw AuthdError.argumentInvalid("Invalid scrypt parameters: N × r × 128 bytes must stay within 256 MiB and p within 16")
            }
            return ("scrypt", hash, try json(ImportedHashes.ScryptOptions(salt: salt, costCpu: cpu, costMemory: memory, costParallel: parallel, length: length)))
        case .scryptModified(let hash, let salt, let separator, let signer):
            for (name, value) in [("passwordSalt", salt), ("passwordSaltSeparator", separator), ("passwordSignerKey", signer)] {
                guard (1...128).contains(value.count), Data(base64Encoded: value) != nil else {
                    throw AuthdError.argumentInvalid("Invalid `\(name)` param: base64, 1 to 128 characters")
                }
            }
            return ("scryptMod", hash, try json(ImportedHashes.ScryptModifiedOptions(salt: salt, saltSeparator: separator, signerKey: signer)))
        }
    }
}
