import CArgon2

/// Argon2id password hashing with libargon2, PHC-encoded (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
/// Verification reads the parameters from the stored string, so hashes made with other
/// parameters (older settings, imports) keep working.
///
/// Calls are blocking and CPU-heavy: run them on a `BlockingPool`.
public struct PasswordHasher: Sendable {
    public struct Parameters: Sendable, Equatable {
        /// Memory in KiB.
        public var memoryKiB: UInt32
        public var iterations: UInt32
        public var parallelism: UInt32

        public init(memoryKiB: UInt32, iterations: UInt32, parallelism: UInt32) {
            self.memoryKiB = memoryKiB
            self.iterations = iterations
            self.parallelism = parallelism
        }

        /// OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane (about 20 ms here).
        public static let owasp = Parameters(memoryKiB: 19456, iterations: 2, parallelism: 1)
        /// The cheapest libargon2 accepts; for tests only.
        public static let testing = Parameters(memoryKiB: 64, iterations: 1, parallelism: 1)
    }

    public static let algorithm = "argon2"
    public let parameters: Parameters

    public init(parameters: Parameters = .owasp) {
        self.parameters = parameters
    }

    /// A PHC string for `password` with a fresh 16-byte salt.
    public func hash(_ password: String) throws -> String {
        let salt = SecretToken.randomBytes(16)
        let hashLength = 32
        let encodedLength = argon2_encodedlen(
            parameters.iterations, parameters.memoryKiB, parameters.parallelism, UInt32(salt.count),
            UInt32(hashLength), Argon2_id)
        var encoded = [CChar](repeating: 0, count: encodedLength)
        let password = Array(password.utf8)
        let rc = argon2id_hash_encoded(
            parameters.iterations, parameters.memoryKiB, parameters.parallelism,
            password, password.count, salt, salt.count, hashLength, &encoded, encodedLength)
        guard rc == ARGON2_OK.rawValue else {
            throw AuthdError(
                type: "general_server_error", code: 500,
                message: "argon2 hashing failed: \(String(cString: argon2_error_message(rc)))")
        }
        let end = encoded.firstIndex(of: 0) ?? encoded.endIndex
        return String(decoding: encoded[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// True when `password` matches the PHC string `encoded` (argon2id, argon2i or argon2d).
    /// libargon2 compares the digests in constant time.
    public func verify(_ password: String, encoded: String) -> Bool {
        let type: argon2_type
        if encoded.hasPrefix("$argon2id$") {
            type = Argon2_id
        } else if encoded.hasPrefix("$argon2i$") {
            type = Argon2_i
        } else if encoded.hasPrefix("$argon2d$") {
            type = Argon2_d
        } else {
            return false
        }
        let password = Array(password.utf8)
        return argon2_verify(encoded, password, password.count, type) == ARGON2_OK.rawValue
    }
}
