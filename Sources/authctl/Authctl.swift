import ArgumentParser
import AuthdClient
import AuthdProto
import Foundation

/// `authctl`: the operator's command line. It talks to the running daemon over its socket;
/// operator rights come from the Unix user it runs as (root, or the daemon's own user).
@main
struct Authctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authctl",
        abstract: "Operate a running authd.",
        subcommands: [Keys.self, Settings.self, JWT.self, Health.self, Stats.self])
}

struct Connection: ParsableArguments {
    @Option(help: "authd's socket (also AUTHD_SOCKET).")
    var socket: String = ProcessInfo.processInfo.environment["AUTHD_SOCKET"] ?? "authd.sock"

    func connect() async throws -> AuthdClient {
        try await AuthdClient.connect(socketPath: socket)
    }
}

/// Runs `body`, turning authd's errors into a one-line message and a failing exit status.
func withClient(_ connection: Connection, _ body: (AuthdClient) async throws -> Void) async throws {
    do {
        let client = try await connection.connect()
        defer { Task { await client.close() } }
        try await body(client)
    } catch let error as AuthdClientError {
        FileHandle.standardError.write(Data("authctl: \(error.type) (\(error.code)): \(error.message)\n".utf8))
        throw ExitCode(1)
    }
}

struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that authd answers.")
    @OptionGroup var connection: Connection

    func run() async throws {
        try await withClient(connection) { client in
            let health = try await client.healthCheck()
            print("\(health.status) \(health.version)")
        }
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the daemon's figures: write batches, records, data size, memory, open files.")
    @OptionGroup var connection: Connection

    func run() async throws {
        try await withClient(connection) { client in
            let stats = try await client.stats()
            let mean = stats.writeCommits > 0 ? Double(stats.writes) / Double(stats.writeCommits) : 0
            print("write_commits \(stats.writeCommits)")
            print("writes \(stats.writes)")
            print(String(format: "mean_batch %.1f", mean))
            print("largest_batch \(stats.largestBatch)")
            // Means per write since start: the write's wait for its batch, the batch's run and
            // commit, and the wait for the acknowledgement to start.
            let writes = Double(max(1, stats.writes))
            print(String(format: "mean_write_queued_us %.1f", Double(stats.writesQueuedMicros) / writes))
            print(String(format: "mean_write_committing_us %.1f", Double(stats.writesCommittingMicros) / writes))
            print(String(format: "mean_write_acknowledging_us %.1f", Double(stats.writesAcknowledgingMicros) / writes))
            print("commits_waited_for_company \(stats.commitsWaitedForCompany)")
            print("company_wait_micros \(stats.companyWaitMicros)")
            print("users \(stats.users)")
            print("sessions \(stats.sessions)")
            print("sessions_cached \(stats.sessionsCached)")
            print("users_cached \(stats.usersCached)")
            print("api_keys_cached \(stats.apiKeysCached)")
            print("session_cache_hits \(stats.sessionCacheHits)")
            print("session_cache_misses \(stats.sessionCacheMisses)")
            print("session_cache_evictions \(stats.sessionCacheEvictions)")
            print("user_cache_hits \(stats.userCacheHits)")
            print("user_cache_misses \(stats.userCacheMisses)")
            print("user_cache_evictions \(stats.userCacheEvictions)")
            print("data_bytes \(stats.dataBytes)")
            print("data_bytes_prewarmed \(stats.dataBytesPrewarmed)")
            print("data_bytes_prewarm_limit \(stats.dataBytesPrewarmLimit)")
            print("data_prewarm_done \(stats.dataPrewarmDone)")
            print("resident_bytes \(stats.residentBytes)")
            print("anonymous_bytes \(stats.anonymousBytes)")
            print("open_files \(stats.openFiles)")
            print("cpu_user_micros \(stats.cpuUserMicros)")
            print("cpu_system_micros \(stats.cpuSystemMicros)")
            print("cpu_wait_micros \(stats.cpuWaitMicros)")
            print("hashing_cpu_micros \(stats.hashingCpuMicros)")
            print("event_loop_cpu_micros \(stats.eventLoopCpuMicros)")
            print("writer_cpu_micros \(stats.writerCpuMicros)")
            print("acknowledger_cpu_micros \(stats.acknowledgerCpuMicros)")
            print("jwt_verifications \(stats.jwtVerifications)")
            print("jwts_refused \(stats.jwtsRefused)")
            print("jwt_verification_cpu_micros \(stats.jwtVerificationCpuMicros)")
            print("connection_reads_paused \(stats.connectionReadsPaused)")
            print("connection_reads_paused_unread \(stats.connectionReadsPausedUnread)")
            print("query_cpu_micros \(stats.queryCpuMicros)")
            print("calls_refused_busy \(stats.callsRefusedBusy)")
            print("sweeps \(stats.sweeps)")
            print("expired_sessions_deleted \(stats.expiredSessionsDeleted)")
            print("expired_tokens_deleted \(stats.expiredTokensDeleted)")
            print("changes_pruned \(stats.changesPruned)")
        }
    }
}

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage server API keys.", subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key; its secret is printed once.")
        @OptionGroup var connection: Connection
        @Option(help: "A name for the key.")
        var name: String
        @Option(help: "Comma-separated scopes, e.g. users.read,users.write,sessions.write.")
        var scopes: String
        @Option(help: "Seconds until the key expires (default: never).")
        var expire: Int64?

        func run() async throws {
            let scopeList = scopes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let expireAt = expire.map { Int64(Date().timeIntervalSince1970 * 1000) + $0 * 1000 } ?? 0
            try await withClient(connection) { client in
                let key = try await client.createKey(name: name, scopes: scopeList, expire: expireAt)
                print("id: \(key.id)")
                print("scopes: \(key.scopes.joined(separator: ","))")
                print("secret: \(key.secret)")
                FileHandle.standardError.write(Data("authctl: the secret is shown only now; authd keeps only its hash.\n".utf8))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never their secrets).")
        @OptionGroup var connection: Connection

        func run() async throws {
            try await withClient(connection) { client in
                for key in try await client.listKeys().keys {
                    let state = key.revokedAt != 0 ? "revoked" : "active"
                    print("\(key.id)\t\(key.name)\t\(state)\t\(key.scopes.joined(separator: ","))\texpire=\(key.expire)")
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key; it stops working at once.")
        @OptionGroup var connection: Connection
        @Argument(help: "The key's id.")
        var id: String

        func run() async throws {
            try await withClient(connection) { client in
                let key = try await client.revokeKey(id: id)
                print("revoked \(key.id)")
            }
        }
    }
}

struct Settings: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read and change the project's auth settings.", subcommands: [Get.self, Set.self])

    static func show(_ settings: Authd_V1_AuthSettings) throws {
        var options = JSONEncodingOptions()
        options.useDeterministicOrdering = true
        options.preserveProtoFieldNames = true
        print(try settings.jsonString(options: options))
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the settings as JSON (fields at their zero value are left out).")
        @OptionGroup var connection: Connection

        func run() async throws {
            try await withClient(connection) { client in try Settings.show(try await client.getSettings()) }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change settings: key=value ... (lists comma-separated; mock_numbers as +phone:otp,...).")
        @OptionGroup var connection: Connection
        @Argument(help: "Settings to change, e.g. password_history=5 disabled_methods=anonymous,phone.")
        var assignments: [String]

        func run() async throws {
            var object: [String: Any] = [:]
            for assignment in assignments {
                guard let equals = assignment.firstIndex(of: "=") else {
                    throw ValidationError("expected key=value, not `\(assignment)`")
                }
                let key = String(assignment[..<equals])
                let value = String(assignment[assignment.index(after: equals)...])
                let list = value.split(separator: ",").map(String.init)
                switch key {
                case "disabled_methods": object[key] = list
                case "mock_numbers":
                    object[key] = try list.map { entry -> [String: String] in
                        let parts = entry.split(separator: ":").map(String.init)
                        guard parts.count == 2 else { throw ValidationError("mock_numbers entries are +phone:otp") }
                        return ["phone": parts[0], "otp": parts[1]]
                    }
                default:
                    if let number = Int(value) { object[key] = number }
                    else if value == "true" || value == "false" { object[key] = value == "true" }
                    else { throw ValidationError("\(key) takes a number or true/false, not `\(value)`") }
                }
            }
            let json = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
            let settings: Authd_V1_AuthSettings
            do {
                settings = try Authd_V1_AuthSettings(jsonString: json)
            } catch {
                throw ValidationError("unknown setting in \(assignments.joined(separator: " ")): \(error)")
            }
            let mask = Array(object.keys)
            try await withClient(connection) { client in
                try Settings.show(try await client.updateSettings(settings, mask: mask))
            }
        }
    }
}

struct JWT: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jwt", abstract: "Manage the JWT signing keys.", subcommands: [Rotate.self])

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign new JWTs with a new key; the old public key stays in the JWKS until its tokens expire.")
        @OptionGroup var connection: Connection

        func run() async throws {
            try await withClient(connection) { client in print("kid: \(try await client.rotateJWTKey())") }
        }
    }
}
