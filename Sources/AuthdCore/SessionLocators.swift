import Synchronization

/// Hands out session secrets' locators: the time in microseconds, strictly growing, one per
/// session, in the order they are asked for.
///
/// Why: the locator leads a session's key in the store's secret index (`sessions_by_secret`),
/// and LMDB fills a page only when its keys come in order. A key below the last one lands inside
/// the last page, which a full page then splits in the middle, and its left half is never
/// filled again. With the millisecond clock alone, the sessions of one millisecond shared a
/// locator and went in by the order of their secrets' hashes: the index's pages were 53 % full
/// (`scripts/bench-size`, 1M users: 132 bytes per entry of 70).
///
/// Within a millisecond the locators count up by one microsecond each. Past 1,000 sessions in
/// one millisecond, or after the clock steps back, they run ahead of the clock until it catches
/// up: the locator orders sessions, it does not time them.
final class SessionLocators: Sendable {
    private let last = Atomic<UInt64>(0)

    init() {}

    /// The next locator: `nowMicroseconds`, or one more than the last one handed out if that is
    /// not below it.
    func next(nowMicroseconds: Int64) -> UInt64 {
        let now = UInt64(max(1, nowMicroseconds))
        var seen = last.load(ordering: .relaxed)
        while true {
            let next = max(now, seen + 1)
            let (exchanged, current) = last.compareExchange(expected: seen, desired: next, ordering: .relaxed)
            if exchanged { return next }
            seen = current
        }
    }
}
