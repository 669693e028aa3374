import Foundation

/// Where the domain reads the time, so tests can control it.
public protocol WallClock: Sendable {
    /// Unix time in milliseconds.
    func now() -> Int64
}

public struct SystemWallClock: WallClock {
    public init() {}

    public func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
