/// Password verification by hash algorithm: authd's own Argon2id and the algorithms users
/// can be imported with (spec 4.2). Every entry compares in constant time.
enum PasswordVerifiers {
    struct Input {
        let password: String
        /// The stored hash in the algorithm's usual encoding.
        let stored: String
        /// The algorithm's parameters (JSON object), for scrypt and friends.
        let options: String
        let argon2: PasswordHasher
    }

    typealias Verifier = @Sendable (Input) throws -> Bool

    static let table: [String: Verifier] = [
        "argon2": { input in input.argon2.verify(input.password, encoded: input.stored) },
        "bcrypt": { input in ImportedHashes.cryptMatches(input.password, stored: input.stored) },
        "md5": { input in try ImportedHashes.digestMatches(input.password, stored: input.stored, digest: "md5") },
        "sha": { input in
            let version = try ImportedHashes.decodeOptions([String: String].self, input.options)["version"] ?? "sha256"
            guard let digest = ImportedHashes.shaDigests[version] else { return false }
            return try ImportedHashes.digestMatches(input.password, stored: input.stored, digest: digest)
        },
        "phpass": { input in ImportedHashes.phpassMatches(input.password, stored: input.stored) },
        "scrypt": { input in
            try ImportedHashes.scryptMatches(
                input.password, stored: input.stored,
                options: ImportedHashes.decodeOptions(ImportedHashes.ScryptOptions.self, input.options))
        },
        "scryptMod": { input in
            try ImportedHashes.scryptModifiedMatches(
                input.password, stored: input.stored,
                options: ImportedHashes.decodeOptions(ImportedHashes.ScryptModifiedOptions.self, input.options))
        },
    ]
}
