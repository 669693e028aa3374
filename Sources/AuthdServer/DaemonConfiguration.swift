import AuthdCore
import Foundation

/// The daemon's settings. Each key can come from the config file (`key = value` lines, `#`
/// comments), from the environment (`AUTHD_` + the key in upper case) or from the command line;
/// the command line wins over the environment, which wins over the file. The README lists
/// every key.
public struct DaemonConfiguration: Sendable, Equatable {
    /// `socket`: the Unix socket to listen on.
    public var socketPath = "authd.sock"
    /// `socket_mode`: permission bits of the socket file, octal.
    public var socketMode: UInt32 = 0o660
    /// `data`: the data folder holding the LMDB environment.
    public var dataDirectory = "authd-data"
    /// `max_frame_bytes`: the largest request frame accepted.
    public var maximumFrameBytes = 4 << 20
    /// `map_size_mib`: the largest the data file may grow.
    public var mapSizeMiB = 8192
    /// `argon2_memory_kib`, `argon2_iterations`, `argon2_parallelism`: Argon2id parameters of
    /// new password hashes.
    public var argon2 = PasswordHasher.Parameters.owasp
    /// `hash_threads`: threads hashing passwords (default: the number of cores); as many verify
    /// the JWTs not verified lately, apart from them.
    public var hashThreads = ProcessInfo.processInfo.activeProcessorCount
    /// `hash_nice`: nice value of the hashing threads and the JWT verification threads (0-19),
    /// so that logins and forged tokens yield the cores to the event loops.
    public var hashNice: Int32 = 10
    /// `hash_queue_limit`: calls that may wait for the hashing threads before more are refused
    /// with a 503, rather than queued for longer than any caller waits. Unset:
    /// `queuedHashesPerThread` for each hashing thread.
    public var hashQueueLimitSetting: Int?
    public var hashQueueLimit: Int { hashQueueLimitSetting ?? Self.queuedHashesPerThread * hashThreads }
    /// At the default Argon2id cost a core does 45-70 hashes a second on the machines measured,
    /// so 128 waiting per thread are two or three seconds' wait, whatever the number of cores.
    public static let queuedHashesPerThread = 128
    /// JWT verifications that may wait for each verification thread: one takes about 90 µs, so
    /// 4,096 are under half a second, and a pipelining client's 1,024 calls in flight fit.
    public static let queuedVerificationsPerThread = 4096
    /// `writer_nice`: nice value the store's writer thread asks for (-20 to 0), so that the one
    /// thread every acknowledged write waits for does not queue behind the event loops.
    public var writerNice: Int32 = -10
    /// `commit_wait_us`: how long a sign-in's session write that finds the writer idle may wait
    /// for the write of a call whose hash is about to end, so that one commit and fsync serve
    /// both (0: never waits). Only when a hash is expected to end that soon; any other write,
    /// and a sign-in no hash follows, commits at once.
    public var commitWaitMicros = 8000
    /// `event_loop_threads`: NIO event loops serving connections (default: one per core but
    /// one, `defaultEventLoopThreads(cores:)`).
    public var eventLoopThreads = Self.defaultEventLoopThreads(cores: ProcessInfo.processInfo.activeProcessorCount)
    /// `session_duration`: seconds a new session lasts.
    public var sessionDurationSeconds: Int64 = 31_536_000
    /// `session_limit`: sessions kept per user, oldest evicted; 0 for no limit.
    public var sessionLimit = 10
    /// `session_cache_size`: sessions kept decoded in memory with their users; 0 turns the
    /// cache off.
    public var sessionCacheSize = 100_000
    /// `user_cache_size`: users kept decoded for `Users/Get` (a backend acting for its users);
    /// 0 turns the cache off.
    public var userCacheSize = Directory.defaultUserCacheSize
    /// `expiry_sweep_interval`: seconds between two sweeps that delete expired sessions and
    /// tokens and prune the change log (the first runs a minute after start, or sooner at a
    /// shorter interval); 0 turns the sweep off.
    public var expirySweepIntervalSeconds = 3600
    /// `change_log_retention`: seconds the change log (the audit log) keeps an entry, pruned by
    /// the expiry sweep; 0 keeps every entry. Appwrite keeps audit records 14 days.
    public var changeLogRetentionSeconds: Int64 = 1_209_600
    /// `prewarm_data`: read the data file into the page cache at start, in the background, so
    /// that a store opened cold (after a reboot) comes up to memory speed sooner than page faults
    /// alone bring it there (true or false; at most half the available memory is read).
    public var prewarmData = true
    /// `log_level`: trace, debug, info, notice, warning, error or critical.
    public var logLevel = "info"
    /// `operator_uids`: Unix users with every scope, API key management included (default:
    /// root and the user authd runs as).
    public var operatorUIDs: Set<UInt32> = [0, geteuid()]
    /// `peer_uid.<uid>` / `peer_gid.<gid>`: scopes a connecting process gets by its Unix user or
    /// group, with no API key, e.g. `peer_uid.1001 = users.read,users.write`.
    public var peerUIDScopes: [UInt32: Set<String>] = [:]
    public var peerGIDScopes: [UInt32: Set<String>] = [:]

    public var peerPolicy: PeerPolicy {
        PeerPolicy(operatorUIDs: operatorUIDs, uidScopes: peerUIDScopes, gidScopes: peerGIDScopes)
    }

    public init() {}

    /// Every client of authd runs on its host (it listens on a Unix socket only), so a loop on
    /// every core makes the loops and the clients they answer take turns on the same cores: on
    /// 2 cores with a pipelining client, 2 loops served 0.82-1.04 of Redis's rate where 1 loop
    /// served 0.87-1.22 (BENCHMARKS.md, twelfth and thirteenth passes). One core is left to the
    /// clients, as Redis advises for its I/O threads.
    public static func defaultEventLoopThreads(cores: Int) -> Int { max(1, cores - 1) }

    /// Every key, in the order the README lists them.
    public static let keys = [
        "socket", "socket_mode", "data", "max_frame_bytes", "map_size_mib", "argon2_memory_kib",
        "argon2_iterations", "argon2_parallelism", "hash_threads", "hash_nice", "hash_queue_limit", "writer_nice", "commit_wait_us", "event_loop_threads",
        "session_duration", "session_limit", "session_cache_size", "user_cache_size", "expiry_sweep_interval", "change_log_retention", "prewarm_data", "log_level", "operator_uids", "peer_uid.<uid>", "peer_gid.<gid>",
    ]

    public static func environmentVariable(for key: String) -> String { "AUTHD_" + key.uppercased() }

    /// Builds the configuration from the file (if any), the environment and the overrides.
    public static func load(
        file: String?, environment: [String: String], overrides: [String: String]
    ) throws -> DaemonConfiguration {
        var configuration = DaemonConfiguration()
        if let file {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw DaemonError("cannot read the config file \(file): \(error.localizedDescription)")
            }
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                let trimmed = content.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty { continue }
                guard let equals = trimmed.firstIndex(of: "=") else {
                    throw DaemonError("\(file):\(number + 1): expected `key = value`")
                }
                let key = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
                var value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                    value = String(value.dropFirst().dropLast())
                }
                try configuration.set(key, value, source: "\(file):\(number + 1)")
            }
        }
        for key in keys where !key.contains("<") {
            let variable = environmentVariable(for: key)
            if let value = environment[variable] {
                try configuration.set(key, value, source: variable)
            }
        }
        // AUTHD_PEER_UID_1001=users.read,users.write and AUTHD_PEER_GID_<gid>=...
        for (variable, value) in environment.sorted(by: { $0.key < $1.key }) {
            for kind in ["UID", "GID"] where variable.hasPrefix("AUTHD_PEER_\(kind)_") {
                let id = variable.dropFirst("AUTHD_PEER_\(kind)_".count)
                try configuration.set("peer_\(kind.lowercased()).\(id)", value, source: variable)
            }
        }
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
            try configuration.set(key, value, source: "--\(key.replacingOccurrences(of: "_", with: "-"))")
        }
        return configuration
    }

    mutating func set(_ key: String, _ value: String, source: String) throws {
        func integer(_ range: ClosedRange<Int>) throws -> Int {
            guard let n = Int(value), range.contains(n) else {
                throw DaemonError("\(source): \(key) must be a whole number in \(range.lowerBound)...\(range.upperBound), not `\(value)`")
            }
            return n
        }
        switch key {
        case "socket":
            guard !value.isEmpty else { throw DaemonError("\(source): socket must not be empty") }
            socketPath = value
        case "socket_mode":
            guard let mode = UInt32(value, radix: 8), mode <= 0o777 else {
                throw DaemonError("\(source): socket_mode must be octal permission bits such as 660, not `\(value)`")
            }
            socketMode = mode
        case "data":
            guard !value.isEmpty else { throw DaemonError("\(source): data must not be empty") }
            dataDirectory = value
        case "max_frame_bytes": maximumFrameBytes = try integer(1024...(1 << 30))
        case "map_size_mib": mapSizeMiB = try integer(16...(1 << 24))
        case "argon2_memory_kib": argon2.memoryKiB = UInt32(try integer(8...(4 << 20)))
        case "argon2_iterations": argon2.iterations = UInt32(try integer(1...64))
        case "argon2_parallelism": argon2.parallelism = UInt32(try integer(1...64))
        case "hash_threads": hashThreads = try integer(1...1024)
        case "hash_nice": hashNice = Int32(try integer(0...19))
        case "hash_queue_limit": hashQueueLimitSetting = try integer(1...1_000_000)
        case "writer_nice": writerNice = Int32(try integer(-20...0))
        case "commit_wait_us": commitWaitMicros = try integer(0...100_000)
        case "event_loop_threads": eventLoopThreads = try integer(1...1024)
        case "session_duration": sessionDurationSeconds = Int64(try integer(60...31_536_000))
        case "session_limit": sessionLimit = try integer(0...100)
        case "session_cache_size": sessionCacheSize = try integer(0...100_000_000)
        case "user_cache_size": userCacheSize = try integer(0...100_000_000)
        case "expiry_sweep_interval": expirySweepIntervalSeconds = try integer(0...604_800)
        case "change_log_retention": changeLogRetentionSeconds = Int64(try integer(0...3_153_600_000))
        case "prewarm_data":
            switch value {
            case "true": prewarmData = true
            case "false": prewarmData = false
            default: throw DaemonError("\(source): prewarm_data must be true or false, not `\(value)`")
            }
        case "log_level":
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(value) else {
                throw DaemonError("\(source): log_level must be one of trace, debug, info, notice, warning, error, critical")
            }
            logLevel = value
        case "operator_uids":
            var uids = Set<UInt32>()
            for part in value.split(separator: ",") {
                guard let uid = UInt32(part.trimmingCharacters(in: .whitespaces)) else {
                    throw DaemonError("\(source): operator_uids is a comma-separated list of uids, not `\(value)`")
                }
                uids.insert(uid)
            }
            operatorUIDs = uids
        case _ where key.hasPrefix("peer_uid.") || key.hasPrefix("peer_gid."):
            guard let id = UInt32(key.dropFirst("peer_uid.".count)) else {
                throw DaemonError("\(source): \(key) must name a numeric uid or gid, e.g. peer_uid.1001")
            }
            let scopes = Set(value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
            let unknown = scopes.subtracting(Scope.grantable)
            guard unknown.isEmpty else {
                throw DaemonError("\(source): unknown scopes \(unknown.sorted().joined(separator: ", ")); known: \(Scope.grantable.sorted().joined(separator: ", "))")
            }
            if key.hasPrefix("peer_uid.") { peerUIDScopes[id] = scopes } else { peerGIDScopes[id] = scopes }
        default:
            throw DaemonError("\(source): unknown key `\(key)`; known keys: \(Self.keys.joined(separator: ", "))")
        }
    }
}
