import Crypto

/// Random secrets handed out once (session secrets, later tokens and keys) and kept only as
/// SHA-256 hashes.
public enum SecretToken {
    /// 32 bytes from the system CSPRNG, as 64 lowercase hex characters.
    public static func generate(byteCount: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: byteCount)
        for i in bytes.indices { bytes[i] = generator.next() }
        return hexEncode(bytes)
    }

    public static func hash(_ secret: String) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: Array(secret.utf8))
        return Array(hasher.finalize())
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
