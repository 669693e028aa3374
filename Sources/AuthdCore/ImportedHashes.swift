import CCrypt
import CLibCrypto
import Crypto
import Foundation
import _CryptoExtras

/// Verification of password hashes made by other systems (spec 4.2), each against its own
/// parameters. Digests are compared in constant time.
enum ImportedHashes {
    /// `lowercase_hex(digest(password)) == stored` for an OpenSSL digest name.
    static func digestMatches(_ password: String, stored: String, digest: String) throws -> Bool {
        guard let type = EVP_get_digestbyname(digest) else {
            throw AuthdError(type: "general_server_error", code: 500, message: "OpenSSL lacks the digest \(digest)")
        }
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let bytes = Array(password.utf8)
        guard EVP_Digest(bytes, bytes.count, &output, &length, type, nil) == 1 else {
            throw AuthdError(type: "general_server_error", code: 500, message: "digest \(digest) failed")
        }
        let computed = SecretToken.hexEncode(Array(output[..<Int(length)]))
        return SecretToken.constantTimeEquals(Array(computed.utf8), Array(stored.lowercased().utf8))
    }

    /// OpenSSL's names for the SHA versions Appwrite accepts.
    static let shaDigests: [String: String] = [
        "sha1": "sha1", "sha224": "sha224", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512",
        "sha512/224": "sha512-224", "sha512/256": "sha512-256", "sha3-224": "sha3-224", "sha3-256": "sha3-256",
        "sha3-384": "sha3-384", "sha3-512": "sha3-512",
    ]

    /// crypt(3) from libxcrypt: bcrypt (`$2a$`, `$2b$`, `$2y$`) and the other schemes it knows.
    static func cryptMatches(_ password: String, stored: String) -> Bool {
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer { data.deallocate() }
        memset(data, 0, MemoryLayout<crypt_data>.size)
        guard let result = crypt_r(password, stored, data) else { return false }
        let computed = Array(String(cString: result).utf8)
        // libxcrypt returns a string starting with "*" on failure; it never equals a real hash.
        return computed.first != UInt8(ascii: "*") && SecretToken.constantTimeEquals(computed, Array(stored.utf8))
    }

    /// phpass portable hashes (`$P$` / `$H$`): MD5 iterated 2^n times over salt and password;
    /// anything else is handed to crypt(3), as phpass itself does.
    static func phpassMatches(_ password: String, stored: String) -> Bool {
        let alphabet = Array("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        let bytes = Array(stored.utf8)
        guard bytes.count == 34, stored.hasPrefix("$P$") || stored.hasPrefix("$H$") else {
            return cryptMatches(password, stored: stored)
        }
        guard let log2 = alphabet.firstIndex(of: bytes[3]), (7...30).contains(log2) else { return false }
        let salt = Array(bytes[4..<12])
        let secret = Array(password.utf8)
        var hash = Array(Insecure.MD5.hash(data: salt + secret))
        for _ in 0..<(1 << log2) {
            hash = Array(Insecure.MD5.hash(data: hash + secret))
        }
        // phpass's base-64: little-endian groups of three bytes.
        var encoded: [UInt8] = []
        var i = 0
        while i < hash.count {
            var value = Int(hash[i])
            i += 1
            encoded.append(alphabet[value & 0x3f])
            if i < hash.count { value |= Int(hash[i]) << 8 }
            encoded.append(alphabet[(value >> 6) & 0x3f])
            if i >= hash.count { break }
            i += 1
            if i < hash.count { value |= Int(hash[i]) << 16 }
            encoded.append(alphabet[(value >> 12) & 0x3f])
            if i >= hash.count { break }
            i += 1
            encoded.append(alphabet[(value >> 18) & 0x3f])
        }
        return SecretToken.constantTimeEquals(Array(bytes[..<12]) + encoded, bytes)
    }

    struct ScryptOptions: Codable, Equatable {
        var salt: String
        var costCpu: Int
        var costMemory: Int
        var costParallel: Int
        var length: Int
    }

    /// `lowercase_hex(scrypt(password, salt, N, r, p, length)) == stored`.
    static func scryptMatches(_ password: String, stored: String, options: ScryptOptions) throws -> Bool {
        let key = try KDF.Scrypt.deriveKey(
            from: Array(password.utf8), salt: Array(options.salt.utf8), outputByteCount: options.length,
            rounds: options.costCpu, blockSize: options.costMemory, parallelism: options.costParallel)
        let computed = key.withUnsafeBytes { SecretToken.hexEncode(Array($0)) }
        return SecretToken.constantTimeEquals(Array(computed.utf8), Array(stored.lowercased().utf8))
    }

    struct ScryptModifiedOptions: Codable, Equatable {
        var salt: String
        var saltSeparator: String
        var signerKey: String
    }

    /// Firebase's modified scrypt: the first 32 bytes of scrypt(password, salt ‖ separator,
    /// N=16384, r=8, p=1) key AES-256-CTR (zero IV) over the signer key; the base64 of that is
    /// the stored hash.
    static func scryptModifiedMatches(_ password: String, stored: String, options: ScryptModifiedOptions) throws -> Bool {
        guard let salt = Data(base64Encoded: options.salt), let separator = Data(base64Encoded: options.saltSeparator),
            let signer = Data(base64Encoded: options.signerKey)
        else { return false }
        let derived = try KDF.Scrypt.deriveKey(
            from: Array(password.utf8), salt: salt + separator, outputByteCount: 64, rounds: 16384, blockSize: 8,
            parallelism: 1)
        let key = derived.withUnsafeBytes { SymmetricKey(data: Array($0.prefix(32))) }
        let cipher = try AES._CTR.encrypt(signer, using: key, nonce: AES._CTR.Nonce(nonceBytes: [UInt8](repeating: 0, count: 16)))
        return SecretToken.constantTimeEquals(Array(cipher.base64EncodedString().utf8), Array(stored.utf8))
    }

    static func decodeOptions<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(json.utf8))
        } catch {
            throw AuthdError(type: "general_server_error", code: 500, message: "stored hash options are unreadable")
        }
    }
}
