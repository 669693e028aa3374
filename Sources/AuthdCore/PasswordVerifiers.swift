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
    ]
}
