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
/// cannot slip past the limit: each one counts before its hash is checked). The count is
/// stored before the call is answered, so a restart is no way around a limit: in the call's own
/// transaction where it has one (`counted`: sign-ups, anonymous sessions, session and password
/// updates, sign-outs), else in a write of its own before the call goes on (`hit`: JWTs); a
/// sign-in's success stores its reset instead. A failed call's count is stored on its own
/// before its answer.
/// Server callers (API keys, mapped peers) are exempt, as in Appwrite.
public final class RateLimiter: Sendable {
    let store: any AuthStore
    let clock: any WallClock
    /// The counters of the current windows, by rule and key: the exact counts; the store
    /// holds what a restart needs.
    private let counters = Mutex<[String: (windowStart: Int64, count: Int)]>([:])

    public init(store: any AuthStore, clock: any WallClock) {
        self.store = store
        self.clock = clock
    }

    /// Counts one call against every key of `rule` and stores the counts before returning, or
    /// throws `general_rate_limit_exceeded` (429) naming the limit, the calls remaining and
    /// when the window resets.
    func hit(_ rule: RateRule, keys: [String], call: Call) async throws {
        guard let storeCount = try take(rule, keys: keys, call: call) else { return }
        try await store.write(storeCount)
    }

    /// A call counted against every key of `rule` (or refused as `hit` refuses) whose count is
    /// stored with its own writes: `attempt` gets the write that stores the count, to run in
    /// its transaction (nil for a server caller, which is not counted). If the attempt fails,
    /// the count is stored on its own before the error is thrown, so that every answer comes
    /// after its count is durable. A sign-in need not store it when it succeeds: its reset
    /// (`resetting`) clears the counter in the same transaction.
    func counted<Result>(
        _ rule: RateRule, keys: [String], call: Call,
        _ attempt: (_ storeCount: (@Sendable (any StoreWriter) throws -> Void)?) async throws -> Result
    ) async throws -> Result {
        guard let storeCount = try take(rule, keys: keys, call: call) else { return try await attempt(nil) }
        do {
            return try await attempt(storeCount)
        } catch {
            try await store.write(storeCount)
            throw error
        }
    }

    /// Takes a slot of `rule` for every key in memory, under the lock; returns the write that
    /// stores the counts, or nil for a server caller, which is not counted.
    private func take(_ rule: RateRule, keys: [String], call: Call) throws -> (@Sendable (any StoreWriter) throws -> Void)? {
        guard !call.caller.isServer else { return nil }
        let now = clock.now() / 1000
        let windowStart = now - now % rule.windowSeconds
        let names = Self.counterNames(rule, keys)
        try counters.withLock { counters in
            if counters.count > 100_000 { counters = counters.filter { $0.value.windowStart >= windowStart } }
            var current: [Int] = []
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
                current.append(count)
            }
            for (name, count) in zip(names, current) { counters[name] = (windowStart, count + 1) }
        }
        return { [self] w in try storeCounts(names, in: w) }
    }

    /// The stored counters' names: the rule's, then the key.
    private static func counterNames(_ rule: RateRule, _ keys: [String]) -> [String] {
        keys.map { "\(rule.name)|\($0)" }
    }

    /// Stores the counters as they are in memory when the writer runs this. The writer runs
    /// writes one at a time, so the last stored count is always the newest: a slower write
    /// cannot put back an older count, and a counter reset since (a success cleared it) is
    /// left reset.
    private func storeCounts(_ names: [String], in w: any StoreWriter) throws {
        let current = counters.withLock { counters in names.map { counters[$0] } }
        for (name, entry) in zip(names, current) {
            guard let entry else { continue }
            try w.putRateCounter(name, windowStart: entry.windowStart, count: entry.count)
        }
    }

    /// Clears the counters of `rule` for `keys` after a success where the rule says so: the
    /// returned write goes into the success's own transaction, so that the session and the
    /// reset commit together. Nil for server callers, which are never counted. The in-memory
    /// counters are cleared now: until the commit, a concurrent call counts from the stored
    /// value (every answered attempt's count), and if the transaction fails the stored count
    /// stands.
    func resetting(_ rule: RateRule, keys: [String], call: Call) -> (@Sendable (any StoreWriter) throws -> Void)? {
        guard !call.caller.isServer else { return nil }
        let names = Self.counterNames(rule, keys)
        counters.withLock { counters in for name in names { counters[name] = nil } }
        return { w in
            for name in names where try w.rateCounter(name) != nil { try w.putRateCounter(name, windowStart: 0, count: 0) }
        }
    }
}
