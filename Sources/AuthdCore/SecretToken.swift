import Crypto

/// Random secrets handed out once (session secrets, later tokens and keys) and kept only as
/// SHA-256 hashes.
public enum SecretToken {
    /// 32 bytes from the system CSPRNG, as 64 lowercase hex characters.
    public static func generate(byteCount: Int = 32) -> String {
        hexEncode(randomBytes(byteCount))
    }

    /// `count` bytes from BoringSSL's CSPRNG (through swift-crypto), seeded by the kernel; a
    /// byte at a time through SystemRandomNumberGenerator cost one system call per byte.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        SymmetricKey(size: SymmetricKeySize(bitCount: count * 8)).withUnsafeBytes { Array($0) }
    }

    public static func hash(_ secret: String) -> [UInt8] {
        digest(secret).bytes
    }

    /// The SHA-256 of `secret`, hashed from the string's own storage with no copy.
    public static func digest(_ secret: String) -> SecretDigest {
        var secret = secret
        let digest = secret.withUTF8 { SHA256.hash(data: $0) }
        return SecretDigest(digest)
    }

    /// Compares two byte strings in time that depends only on their lengths.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    public static func hexEncode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A SHA-256 digest as four words: a cheap dictionary key for caches of secrets' hashes.
public struct SecretDigest: Hashable, Sendable {
    let words: (UInt64, UInt64, UInt64, UInt64)

    init(_ digest: SHA256Digest) {
        words = digest.withUnsafeBytes { raw in
            (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
             raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        }
    }

    public var bytes: [UInt8] {
        withUnsafeBytes(of: words) { Array($0) }
    }

    public static func == (a: SecretDigest, b: SecretDigest) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    public func hash(into hasher: inout Hasher) {
        // Already uniformly distributed: one word is plenty.
        hasher.combine(words.0)
    }
}
