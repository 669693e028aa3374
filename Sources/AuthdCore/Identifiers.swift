import Synchronization

/// Ids of users, sessions and the other records (spec 1.7).
public enum Identifiers {
    /// The literal a caller passes to have an id generated.
    public static let uniqueLiteral = "unique()"

    /// A new id like Appwrite's `ID::unique()`: 13 hex characters of the time in microseconds
    /// (sortable by creation) followed by 7 hex characters that are different for each id this
    /// process makes.
    ///
    /// The last 7 are a counter from a random start, not 28 fresh random bits: the clock here
    /// has millisecond steps, and at tens of thousands of sign-ins a second random bits gave two
    /// sessions the same id within minutes (the second write failed). A counter repeats only
    /// after 2^28 ids within one clock step; a restart begins at another random point.
    public static func unique(nowMicroseconds: Int64) -> String {
        let seconds = UInt64(max(0, nowMicroseconds / 1_000_000))
        let micros = UInt64(max(0, nowMicroseconds % 1_000_000))
        let count = UInt64(sequence.add(1, ordering: .relaxed).oldValue) & 0xFFF_FFFF
        // Written straight into the string's storage: no intermediate strings per part.
        return String(unsafeUninitializedCapacity: 20) { out in
            hex(seconds, width: 8, into: out, at: 0)
            hex(micros, width: 5, into: out, at: 8)
            hex(count, width: 7, into: out, at: 13)
            return 20
        }
    }

    private static let sequence = Atomic<UInt32>(UInt32.random(in: 0...UInt32.max))

    /// The low `width` hex digits of `value`, zero-padded, at `start`.
    private static func hex(_ value: UInt64, width: Int, into out: UnsafeMutableBufferPointer<UInt8>, at start: Int) {
        var rest = value
        for index in stride(from: start + width - 1, through: start, by: -1) {
            let digit = UInt8(rest & 0xf)
            out[index] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
            rest >>= 4
        }
    }

    /// A key: 1-36 characters of `[A-Za-z0-9._-]`, not starting with `.`, `_` or `-`.
    public static func isValidKey(_ id: String) -> Bool {
        // Over the bytes where they lie, borrowed: walking the string's UTF-8 view a byte at a
        // time was 4 % of a backend's `Users/Get`, which checks its `userId` so on every call
        // (perf). Every native string, small or not, has its bytes in one piece.
        id.utf8.withContiguousStorageIfAvailable(isValidKey) ?? isValidKey(Array(id.utf8))
    }

    private static func isValidKey(_ bytes: some Collection<UInt8>) -> Bool {
        guard (1...36).contains(bytes.count), let first = bytes.first, isAlphanumeric(first) else { return false }
        return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    private static func isAlphanumeric(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
            || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }

    /// Resolves a custom id parameter: `unique()` becomes a new id, anything else must be a key.
    public static func customID(_ parameter: String, name: String, nowMicroseconds: Int64) throws -> String {
        if parameter == uniqueLiteral { return unique(nowMicroseconds: nowMicroseconds) }
        guard isValidKey(parameter) else {
            throw AuthdError.argumentInvalid(
                "Invalid `\(name)` param: Parameter must contain at most 36 chars. Valid chars are a-z, A-Z, 0-9, period, hyphen, and underscore. Can't start with a special char")
        }
        return parameter
    }

    /// Checks a plain id parameter (no `unique()`).
    public static func requireKey(_ parameter: String, name: String) throws {
        guard isValidKey(parameter) else {
            throw AuthdError.argumentInvalid(
                "Invalid `\(name)` param: UID must contain at most 36 chars. Valid chars are a-z, A-Z, 0-9, period, hyphen, and underscore. Can't start with a special char")
        }
    }
}
