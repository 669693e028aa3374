/// Comparisons of secrets' hashes whose time depends only on the lengths compared, so that how
/// long a refusal takes says nothing of how much of a presented hash was right. The store uses
/// it on hashes read off record bytes; the domain (`SecretToken.constantTimeEquals`) on arrays.
public enum ConstantTime {
    public static func equals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
