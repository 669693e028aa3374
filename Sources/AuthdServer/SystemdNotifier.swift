import CSystemd

/// Tells systemd (through `$NOTIFY_SOCKET`, when set) where the daemon is in its life.
/// Without systemd, sd_notify does nothing.
enum SystemdNotifier {
    static func ready(status: String) {
        _ = sd_notify(0, "READY=1\nSTATUS=\(status)")
    }

    /// Still starting (a migration at open): systemd gives the start another `seconds` before
    /// its timeout ends it, and shows `status`.
    static func extendStartup(by seconds: Int, status: String) {
        _ = sd_notify(0, "EXTEND_TIMEOUT_USEC=\(seconds * 1_000_000)\nSTATUS=\(status)")
    }

    static func stopping() {
        _ = sd_notify(0, "STOPPING=1")
    }
}
