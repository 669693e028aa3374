import AuthdStore
import Synchronization

/// One rate limit (spec 12): at most `limit` calls per fixed window of `windowSeconds`,
/// aligned to multiples of the window.
public struct RateRule: Sendable {
    public let name: String
    public let limit: Int
    public let windowSeconds: Int64

    public init(_ name: String, limit: Int, windowSeconds: Int64) {
        self.name = name
        self.limit = limit
        self.windowSeconds = windowSeconds
    }

    static let createAccount = RateRule("account.create", limit: 10, windowSeconds: 3600)
    static let emailPasswordSession = RateRule("account.sessions.email", limit: 10, windowSeconds: 3600)
    static let anonymousSession = RateRule("account.sessions.anonymous", limit: 50, windowSeconds: 3600)
    static let tokenSession = RateRule("account.sessions.token", limit: 10, windowSeconds: 3600)
    static let createJWT = RateRule("account.jwts", limit: 120, windowSeconds: 60)
    static let updatePassword = RateRule("account.password", limit: 10, windowSeconds: 3600)
    static let updateSession = RateRule("account.sessions.update", limit: 10, windowSeconds: 3600)
    static let deleteSessions = RateRule("account.sessions.delete", limit: 100, windowSeconds: 3600)
}

/// Fixed-window counters, exact under concurrency and kept across restarts.
///
/// A call takes its slot under a lock before any work (so parallel wrong-password attempts
/// cannot slip past the limit: each one counts before its hash is checked), and the new count
/// is committed to the store before the call goes on, so a restart is no way around a limit.
/// Server callers (API keys, mapped peers) are exempt, as in Appwrite.
public final class RateLimiter: Sendable {
    let store: any AuthStore
    let clock: any WallClock
    /// The counters of the current windows, by rule and key.
    private let counters = Mutex<[String: (windowStart: Int64, count: Int)]>([:])

    public init(store: any AuthStore, clock: any WallClock) {
        self.store = store
        self.clock = clock
    }

    /// Counts one call against every key of `rule`, or throws `general_rate_limit_exceeded`
    /// (429) naming the limit, the calls remaining and when the window resets.
    func hit(_ rule: RateRule, keys: [String], call: Call) async throws {
        guard !call.caller.isServer else { return }
        let now = clock.now() / 1000
        let windowStart = now - now % rule.windowSeconds
        let names = keys.map { "\(rule.name)|\($0)" }
        let taken = try counters.withLock { counters -> [(String, Int)] in
            if counters.count > 100_000 { counters = counters.filter { $0.value.windowStart >= windowStart } }
            var current: [(String, Int)] = []
            for name in names {
                var entry = counters[name]
                if entry == nil, let stored = try store.read({ try $0.rateCounter(name) }) { entry = stored }
                let count = entry.map { $0.windowStart == windowStart ? $0.count : 0 } ?? 0
                guard count < rule.limit else {
                    throw AuthdError(
                        type: "general_rate_limit_exceeded", code: 429,
                        message: "Rate limit for the current endpoint has been exceeded. Please try again after some time. "
                            + "(limit \(rule.limit), remaining 0, reset at \(windowStart + rule.windowSeconds))")
                }
                current.append((name, count))
            }
            for (name, count) in current { counters[name] = (windowStart, count + 1) }
            return current
        }
        try await store.write { w in
            for (name, count) in taken {
                // Never lower a stored count that a concurrent call raised further.
                let stored = try w.rateCounter(name)
                let base = stored.map { $0.windowStart == windowStart ? $0.count : 0 } ?? 0
                try w.putRateCounter(name, windowStart: windowStart, count: max(base, count + 1))
            }
        }
    }

    /// Clears the counters of `rule` for `keys` after a success where the rule says so: the
    /// returned write goes into the success's own transaction, so that the session and the
    /// reset commit together (one fsync, not two). Nil for server callers, which are never
    /// counted. The in-memory counters are cleared now: until the commit, a concurrent call
    /// counts from the stored value, which is never lower, and if the transaction fails the
    /// stored count stands.
    func resetting(_ rule: RateRule, keys: [String], call: Call) -> (@Sendable (any StoreWriter) throws -> Void)? {
        guard !call.caller.isServer else { return nil }
        let names = keys.map { "\(rule.name)|\($0)" }
        counters.withLock { counters in for name in names { counters[name] = nil } }
        return { w in
            for name in names where try w.rateCounter(name) != nil { try w.putRateCounter(name, windowStart: 0, count: 0) }
        }
    }
}
