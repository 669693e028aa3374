extension Int {
    /// The smallest power of two at or above `count`, and at least `minimum` (a power of two):
    /// the size of a table indexed by a mask, `& (size - 1)`.
    public static func powerOfTwo(atLeast count: Int, minimum: Int = 1) -> Int {
        var size = minimum
        while size < count { size *= 2 }
        return size
    }
}
