import AuthdStore
import CLibCrypto
import Crypto
import Synchronization

/// Random secrets handed out once (session secrets, later tokens and keys) and kept only as
/// SHA-256 hashes.
public enum SecretToken {
    /// 32 bytes from the system CSPRNG, as 64 lowercase hex characters.
    public static func generate(byteCount: Int = 32) -> String {
        hexEncode(randomBytes(byteCount))
    }

    /// A session secret: its locator (the time it was made, in microseconds since 1970, as 8
    /// bytes big-endian, each one above the last: `SessionLocators`), then 32 random bytes, the
    /// 40 bytes written as 54 characters of unpadded base64url. The locator leads the session's
    /// key in the store's secret index, so new sessions are appended to that index instead of
    /// dirtying a random page of it on every sign-in; it is no secret (session ids carry the
    /// same time), the 32 random bytes are. 54 characters keep the secret's SHA-256, done on
    /// every session check, to one 64-byte block (a message of 55 bytes or fewer); the 80 hex
    /// characters of earlier secrets, with the same 256 random bits, took two (about 40 ns more
    /// per check, issue 5).
    public static func generateSession(locator: UInt64) -> String {
        base64URLEncode(withUnsafeBytes(of: locator.bigEndian) { Array($0) } + randomBytes(32))
    }

    /// The length of a session secret with a locator.
    static let locatedSecretLength = 54
    /// The length of a located secret made before the base64url ones: 16 hex digits of its
    /// locator, then 64 of random bytes. Those sessions keep working until they end.
    static let hexLocatedSecretLength = 80

    /// The locator a session secret begins with, or 0 when it has none (secrets made before
    /// schema version 2 are 64 hex characters with no locator).
    @inline(__always)
    static func locator(of bytes: UnsafeRawBufferPointer) -> UInt64 {
        switch bytes.count {
        case locatedSecretLength: base64URLLocator(bytes)
        case hexLocatedSecretLength: hexLocator(bytes)
        default: 0
        }
    }

    /// The top 64 bits of the first 11 base64url characters (66 bits: the last two belong to
    /// the random bytes), or 0 when one of them is not base64url.
    @inline(__always)
    private static func base64URLLocator(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let (high, invalid) = leadingDigits(of: bytes, count: 10, bits: 6, table: base64URLDigits)
        let last = base64URLDigits.withUnsafeBufferPointer { $0[Int(bytes[10])] }
        return (invalid | last) & 0xC0 == 0 ? high << 4 | UInt64(last >> 2) : 0
    }

    /// The first 16 hex digits' value, or 0 when one of them is not a lowercase hex digit.
    @inline(__always)
    private static func hexLocator(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let (value, invalid) = leadingDigits(of: bytes, count: 16, bits: 4, table: hexDigits)
        return invalid & 0xF0 == 0 ? value : 0
    }

    /// The first `count` characters of `bytes` read as big-endian digits of `bits` bits each,
    /// through `table` (which gives a character outside the alphabet a bit above the digit's),
    /// and those characters' table entries or-ed together, to tell whether any was outside.
    /// Through a table, with no branch per character: the two range checks per hex character
    /// were half of the locator's time on every session check (perf).
    @inline(__always)
    private static func leadingDigits(
        of bytes: UnsafeRawBufferPointer, count: Int, bits: Int, table: [UInt8]
    ) -> (value: UInt64, invalid: UInt8) {
        table.withUnsafeBufferPointer { table in
            let digitMask = UInt8((1 << bits) - 1)
            var value: UInt64 = 0
            var invalid: UInt8 = 0
            for i in 0..<count {
                let digit = table[Int(bytes[i])]
                invalid |= digit
                value = value << UInt64(bits) | UInt64(digit & digitMask)
            }
            return (value, invalid)
        }
    }

    /// Each byte's value as a lowercase hex digit, or 0xF0 when it is not one.
    private static let hexDigits: [UInt8] = (0...255).map { byte in
        switch UInt8(byte) {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt8(byte) - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt8(byte) - UInt8(ascii: "a") + 10
        default: 0xF0
        }
    }

    /// The base64url alphabet (RFC 4648, section 5).
    private static let base64URLAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Each byte's value as a base64url digit, or 0xC0 when it is not one.
    private static let base64URLDigits: [UInt8] = {
        var table = [UInt8](repeating: 0xC0, count: 256)
        for (value, character) in base64URLAlphabet.enumerated() { table[Int(character)] = UInt8(value) }
        return table
    }()

    /// `bytes` as unpadded base64url: safe as it is in headers, cookies, URLs and file names.
    public static func base64URLEncode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index < bytes.count {
            let count = min(3, bytes.count - index)
            var group = UInt32(bytes[index]) << 16
            if count > 1 { group |= UInt32(bytes[index + 1]) << 8 }
            if count > 2 { group |= UInt32(bytes[index + 2]) }
            for shift in [18, 12, 6, 0].prefix(count + 1) {
                out.append(base64URLAlphabet[Int(group >> UInt32(shift) & 0x3F)])
            }
            index += count
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `count` bytes from OpenSSL's CSPRNG (`RAND_bytes`: a DRBG per thread, seeded and reseeded
    /// by the kernel), drawn from `RandomPool`. swift-crypto's SymmetricKey made a `getrandom`
    /// system call for every secret, 7 % of the pool's time when tokens and sessions are made at
    /// full rate, and SystemRandomNumberGenerator one per 8 bytes.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: count) { bytes, initialized in
            randomPool.fill(UnsafeMutableRawBufferPointer(bytes))
            initialized = count
        }
    }

    private static let randomPool = RandomPool()

    public static func hash(_ secret: String) -> [UInt8] {
        digest(secret).bytes
    }

    /// The SHA-256 of `secret`, hashed from the string's own storage with no copy.
    public static func digest(_ secret: String) -> SecretDigest {
        var secret = secret
        return secret.withUTF8 { digest(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// The SHA-256 of a secret's UTF-8 bytes, with libcrypto's SHA-256 on a stack context into
    /// a digest on the stack. swift-crypto's `SHA256` (a context object, generic updates, a
    /// digest wrapper) cost twice the hashing itself on every session check (perf, issue 5).
    public static func digest(bytes: UnsafeRawBufferPointer) -> SecretDigest {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &words) { out in
            authd_sha256(bytes.baseAddress, bytes.count, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return SecretDigest(words: words, locator: locator(of: bytes))
    }

    /// Compares two byte strings in time that depends only on their lengths (`ConstantTime`).
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { a in b.withUnsafeBytes { b in ConstantTime.equals(a, b) } }
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

/// A SHA-256 digest as four words: a cheap dictionary key for caches of secrets' hashes. It
/// carries the secret's locator (0 when it has none), which the store's index needs with it.
public struct SecretDigest: Hashable, Sendable {
    let words: (UInt64, UInt64, UInt64, UInt64)
    public let locator: UInt64

    init(words: (UInt64, UInt64, UInt64, UInt64), locator: UInt64) {
        self.words = words
        self.locator = locator
    }

    public var bytes: [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// The digest's 32 bytes, lent to `body`.
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: words, body)
    }

    /// The key under which the session cache holds what a JWT signs in, for this digest of the
    /// token: every word flipped by a constant. No session secret's digest equals it, since
    /// finding a secret whose SHA-256 is a given value is a preimage of SHA-256. Keyed by the
    /// token's plain digest, a JWT presented as a session secret would find the JWT's entry and
    /// skip the token's own checks (its expiry, and that it may not make more JWTs).
    var jwtSessionKey: SecretDigest {
        let flip: UInt64 = 0x6A77_742D_7365_7373  // "jwt-sess"
        return SecretDigest(words: (words.0 ^ flip, words.1 ^ flip, words.2 ^ flip, words.3 ^ flip), locator: 0)
    }

    public static func == (a: SecretDigest, b: SecretDigest) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    public func hash(into hasher: inout Hasher) {
        // Already uniformly distributed: one word is plenty.
        hasher.combine(words.0)
    }

    /// The dictionaries' hash, without running SipHash over a word that is already a hash:
    /// SipHash's seeding and finalization were 2-3 % of a session check. Its protection against
    /// chosen colliding keys is not needed here: the session cache only holds digests of
    /// secrets the daemon generated, which a caller cannot choose.
    public func _rawHashValue(seed: Int) -> Int {
        Int(truncatingIfNeeded: words.0) ^ seed
    }
}

/// Random bytes fetched from OpenSSL's CSPRNG 4 KiB at a time and handed out once each: every
/// `RAND_bytes` call costs about a microsecond whatever its length (the DRBG's generate and
/// update steps), 7 % of an event loop's time when a secret is made for every token and
/// session (perf, `authd-load tokens`). A byte handed out is zeroed in the pool at once, so
/// the pool never holds a secret already given; what it holds is the generator's output to
/// come, as the generator's own state is. authd never forks, so no two processes share it.
final class RandomPool: Sendable {
    private static let capacity = 4096

    private struct State {
        var bytes = [UInt8](repeating: 0, count: RandomPool.capacity)
        /// Bytes before this offset have been handed out.
        var used = RandomPool.capacity
    }

    private let state = Mutex(State())

    func fill(_ out: UnsafeMutableRawBufferPointer) {
        guard out.count < Self.capacity / 4 else {
            // A large request goes to the generator straight away.
            Self.generate(out)
            return
        }
        state.withLock { state in
            let start = state.used
            let refill = Self.capacity - start < out.count
            state.bytes.withUnsafeMutableBytes { pool in
                var from = start
                if refill {
                    Self.generate(pool)
                    from = 0
                }
                let taken = UnsafeMutableRawBufferPointer(rebasing: pool[from..<(from + out.count)])
                out.copyMemory(from: UnsafeRawBufferPointer(taken))
                taken.initializeMemory(as: UInt8.self, repeating: 0)
            }
            state.used = (refill ? 0 : start) + out.count
        }
    }

    private static func generate(_ out: UnsafeMutableRawBufferPointer) {
        // RAND_bytes fails only when the generator cannot be seeded; no secret is handed out then.
        guard RAND_bytes(out.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(out.count)) == 1 else {
            fatalError("OpenSSL's RAND_bytes failed: the system's random source is unavailable")
        }
    }
}
