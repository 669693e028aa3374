import ArgumentParser
import AuthdClient
import AuthdCore
import AuthdProto
import Foundation
import NIOCore
import Synchronization

/// `authd-load`: measures authd's throughput and latency over its socket.
@main
struct AuthdLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authd-load",
        abstract: "Load-tests a running authd over its Unix socket.",
        discussion: """
            Every run is bounded by --duration and --max-calls. Calls that need server rights (tokens, \
            populate, the daemon's write statistics) use --api-key, or this process's Unix user when \
            authd maps it (root is an operator by default). The permission-check scenario (`check`) \
            comes with the permissions API.
            """,
        subcommands: [Validate.self, Tokens.self, Login.self, Mixed.self, Populate.self, Soak.self, Stalls.self])
}

struct CommonOptions: ParsableArguments {
    @Option(help: "authd's socket.")
    var socket = "authd.sock"

    @Option(help: "Client connections.")
    var connections = 16

    @Option(help: "Calls in flight on each connection.")
    var pipeline = 16

    @Option(help: "Seconds to measure.")
    var duration = 10.0

    @Option(help: "Seconds to run before measuring.")
    var warmUp = 1.0

    @Option(help: "Stop after this many calls, whatever the duration.")
    var maxCalls = 50_000_000

    @Option(help: "Calls per second over all connections (open loop: latency counts from each call's scheduled start); 0 to call as fast as answers come.")
    var rate = 0.0

    @Option(help: "Users to create for the run.")
    var users = 100

    @Option(help: "API key for calls that need server rights (else this process's Unix user must be mapped).")
    var apiKey: String?

    @Flag(help: "Print the result as one JSON object.")
    var json = false

    @Option(help: "Event loop threads of the pipelined driver (default: one per core).")
    var eventLoops = System.coreCount

    var server: Credentials { apiKey.map { .apiKey($0) } ?? .none }

    func connect() async throws -> [AuthdClient] {
        var clients: [AuthdClient] = []
        for _ in 0..<max(1, connections) { clients.append(try await AuthdClient.connect(socketPath: socket)) }
        return clients
    }

    var run: LoadRun {
        LoadRun(
            connections: max(1, connections), pipeline: max(1, pipeline), duration: .milliseconds(Int(duration * 1000)),
            warmUp: .milliseconds(Int(warmUp * 1000)), maximumCalls: maxCalls, rate: rate > 0 ? rate : nil)
    }

    var driver: PipelinedDriver {
        PipelinedDriver(
            socketPath: socket, connections: max(1, connections), pipeline: max(1, pipeline),
            duration: .milliseconds(Int(duration * 1000)), warmUp: .milliseconds(Int(warmUp * 1000)),
            maximumCalls: maxCalls, rate: rate > 0 ? rate : nil, eventLoops: max(1, eventLoops))
    }

    /// Creates `users` accounts with a run-specific email prefix; with a password when given
    /// (Account/Create, Argon2), else server-made (Users/Create, no hashing).
    func createUsers(_ client: AuthdClient, password: String?) async throws -> [(id: String, email: String)] {
        let prefix = "load-\(UInt32.random(in: 0...UInt32.max))"
        let emails = (0..<max(1, users)).map { "\(prefix)-\($0)@load.example" }
        let created = Collected<(id: String, email: String)>()
        // Users/Create as the server: Account/Create would be a guest's sign-up, limited to 10
        // an hour per address, when this process's Unix user is not mapped to server rights.
        try await forEachConcurrently(emails) { email in
            let user = try await client.createUser(email: email, password: password, credentials: server)
            created.append((user.id, email))
        }
        return created.values
    }

    /// Signs each user in (Argon2 per user) and returns the session secrets.
    func signIn(_ client: AuthdClient, _ users: [(id: String, email: String)], password: String) async throws -> [String] {
        let secrets = Collected<String>()
        try await forEachConcurrently(users.map(\.email)) { email in
            secrets.append(try await client.createEmailPasswordSession(email: email, password: password).secret)
        }
        return secrets.values
    }

    /// The daemon's statistics and when they were read.
    struct StatsReading {
        let stats: Authd_V1_StatsResponse
        let at: ContinuousClock.Instant
    }

    /// The daemon's statistics, when this process may read them.
    func stats(_ client: AuthdClient) async -> StatsReading? {
        guard let stats = try? await client.stats(credentials: server) else { return nil }
        return StatsReading(stats: stats, at: .now)
    }

    /// Commits, writes and batch sizes between two statistics readings, and where a write's
    /// time in the store went, as means per write: queued for its batch, in its batch's run and
    /// commit, and waiting for its acknowledgement to start.
    func batchFigures(before: StatsReading?, after: StatsReading?) -> [String: Any] {
        guard let before, let after else { return [:] }
        let commits = after.stats.writeCommits - before.stats.writeCommits
        let writes = after.stats.writes - before.stats.writes
        func perWrite(_ micros: KeyPath<Authd_V1_StatsResponse, UInt64>) -> Double {
            writes > 0 ? Double(after.stats[keyPath: micros] &- before.stats[keyPath: micros]) / Double(writes) : 0
        }
        return [
            "commits": commits, "writes": writes,
            "mean_batch": commits > 0 ? Double(writes) / Double(commits) : 0,
            "largest_batch_since_start": after.stats.largestBatch,
            "commits_per_second": Double(commits) / max(0.001, (after.at - before.at) / .seconds(1)),
            "write_queued_us": perWrite(\.writesQueuedMicros),
            "write_committing_us": perWrite(\.writesCommittingMicros),
            "write_acknowledging_us": perWrite(\.writesAcknowledgingMicros),
            "commits_waited_for_company": after.stats.commitsWaitedForCompany &- before.stats.commitsWaitedForCompany,
        ]
    }

    /// The daemon's CPU between two statistics readings, taken around a run of
    /// `callsPerSecond` (its warm-up included, at the same rate): the cores it kept busy, its CPU
    /// per call, and the cores' worth of its threads that were ready but waiting for a CPU. A
    /// run that falls short with the daemon waiting had its cores taken by other work; one with
    /// more CPU per call had the daemon slower.
    func cpuFigures(before: StatsReading?, after: StatsReading?, callsPerSecond: Double) -> [String: Any] {
        guard let before, let after, let cpu = DaemonCPU(from: before, to: after) else { return [:] }
        return [
            "daemon_cpu_cores": cpu.cores,
            "daemon_cpu_us_per_call": callsPerSecond > 0 ? cpu.cores * 1e6 / callsPerSecond : 0,
            "daemon_waiting_cores": cpu.waitingCores,
        ]
    }
}

/// How much a statistics counter grew between two readings. The counters only grow; a daemon
/// restarted in between reads as nothing.
func counterGrowth(_ earlier: UInt64, _ later: UInt64) -> UInt64 { later > earlier ? later - earlier : 0 }

extension CommonOptions {
    /// How the daemon's caches served between two statistics readings (a run, its warm-up
    /// included): the fraction of session checks and of `Users/Get` lookups that needed no store
    /// read, and the entries evicted to make room, for each cache that was looked up at all.
    func cacheFigures(before: StatsReading?, after: StatsReading?) -> [String: Any] {
        guard let before, let after else { return [:] }
        var figures: [String: Any] = [:]
        func add(
            _ name: String, _ hits: KeyPath<Authd_V1_StatsResponse, UInt64>, _ misses: KeyPath<Authd_V1_StatsResponse, UInt64>,
            _ evictions: KeyPath<Authd_V1_StatsResponse, UInt64>
        ) {
            func growth(_ counter: KeyPath<Authd_V1_StatsResponse, UInt64>) -> UInt64 {
                counterGrowth(before.stats[keyPath: counter], after.stats[keyPath: counter])
            }
            let (hit, missed) = (growth(hits), growth(misses))
            guard hit + missed > 0 else { return }
            figures["\(name)_hit_fraction"] = Double(hit) / Double(hit + missed)
            figures["\(name)_evictions"] = growth(evictions)
        }
        add("session_cache", \.sessionCacheHits, \.sessionCacheMisses, \.sessionCacheEvictions)
        add("user_cache", \.userCacheHits, \.userCacheMisses, \.userCacheEvictions)
        return figures
    }
}

/// The daemon's CPU between two statistics readings, from its own clocks: all of it, its
/// hashing threads', and its threads' wait for a CPU, in microseconds, over `seconds`.
/// Readings of several windows add up. None from a daemon that does not report its CPU (one
/// built before `Health/Stats` had it, as in an A/B run against an older build).
struct DaemonCPU {
    var cpuMicros: UInt64 = 0
    var hashingMicros: UInt64 = 0
    var waitMicros: UInt64 = 0
    /// The event loops', the writer's and the acknowledger's CPU (0 from a daemon that does
    /// not report them).
    var eventLoopMicros: UInt64 = 0
    var writerMicros: UInt64 = 0
    var acknowledgerMicros: UInt64 = 0
    var seconds = 0.0

    init() {}

    init?(from before: CommonOptions.StatsReading, to after: CommonOptions.StatsReading) {
        // A running daemon has used some CPU: zero is a field the daemon does not know.
        guard after.stats.cpuUserMicros + after.stats.cpuSystemMicros > 0 else { return nil }
        let (a, b) = (before.stats, after.stats)
        cpuMicros = counterGrowth(a.cpuUserMicros + a.cpuSystemMicros, b.cpuUserMicros + b.cpuSystemMicros)
        hashingMicros = counterGrowth(a.hashingCpuMicros, b.hashingCpuMicros)
        waitMicros = counterGrowth(a.cpuWaitMicros, b.cpuWaitMicros)
        eventLoopMicros = counterGrowth(a.eventLoopCpuMicros, b.eventLoopCpuMicros)
        writerMicros = counterGrowth(a.writerCpuMicros, b.writerCpuMicros)
        acknowledgerMicros = counterGrowth(a.acknowledgerCpuMicros, b.acknowledgerCpuMicros)
        seconds = (after.at - before.at) / .seconds(1)
    }

    static func + (x: DaemonCPU, y: DaemonCPU) -> DaemonCPU {
        var sum = x
        sum.cpuMicros += y.cpuMicros
        sum.hashingMicros += y.hashingMicros
        sum.waitMicros += y.waitMicros
        sum.eventLoopMicros += y.eventLoopMicros
        sum.writerMicros += y.writerMicros
        sum.acknowledgerMicros += y.acknowledgerMicros
        sum.seconds += y.seconds
        return sum
    }

    /// Cores kept busy, on average.
    var cores: Double { averageCores(cpuMicros) }
    var hashingCores: Double { averageCores(hashingMicros) }
    /// Cores' worth of the daemon's threads that were ready to run but waiting for a CPU.
    var waitingCores: Double { averageCores(waitMicros) }
    var eventLoopCores: Double { averageCores(eventLoopMicros) }
    var writerCores: Double { averageCores(writerMicros) }
    var acknowledgerCores: Double { averageCores(acknowledgerMicros) }

    private func averageCores(_ micros: UInt64) -> Double { Double(micros) / 1e6 / max(0.001, seconds) }
}

struct Validate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Session validation: Account/Get with session credentials, as fast as the daemon answers.")

    @OptionGroup var options: CommonOptions

    @Option(help: "Validate the session secrets in this file (one per line, from `populate --secrets-out`) instead of creating users.")
    var secrets: String?

    @Option(help: "At most this many secrets, spread over the file.")
    var sample = 100_000

    @Option(help: "pipelined: pre-encoded calls straight over NIO, as redis-benchmark drives Redis; client: one AuthdClient call (a task) per call; client-on-loop: the same, the tasks on their connection's event loop (AuthdClient.taskExecutor).")
    var driver = CallDriver.pipelined

    @Option(
        name: .customLong("as"),
        help: ArgumentHelp(
            "session: each user checks their own session (Account/Get). jwt: the same with a JWT each user made from their session (Account/CreateJWT), as a backend acting for its users presents them. forged-jwt: the same JWTs with their signatures altered, each refused (user_jwt_invalid), which is what a flood of forged tokens costs the daemon; a refusal counts as a call. api-key: a backend looks the users up (Users/Get) with --api-key, or with a users.read key this tool makes as an operator peer. peer: the same with no credential, as a mapped Unix peer."
        ))
    var caller = "session"

    func run() async throws {
        guard ["session", "jwt", "forged-jwt", "api-key", "peer"].contains(caller) else {
            throw ValidationError("--as is session, jwt, forged-jwt, api-key or peer")
        }
        guard caller != "forged-jwt" || driver == .pipelined else {
            throw ValidationError("--as forged-jwt takes the pipelined driver, which counts each refusal as the call's answer")
        }
        if caller == "api-key" || caller == "peer" { return try await runAsServer() }
        var all: [Credentials]
        if let secrets {
            all = try readSecrets(secrets, sample: sample).map { .session($0) }
        } else {
            let client = try await AuthdClient.connect(socketPath: options.socket)
            let password = "load-password-1"
            all = try await options.signIn(client, try await options.createUsers(client, password: password), password: password)
                .map { .session($0) }
            await client.close()
        }
        guard !all.isEmpty else { throw ValidationError("no session secrets") }
        if caller == "jwt" || caller == "forged-jwt" {
            let client = try await AuthdClient.connect(socketPath: options.socket)
            var tokens: [Credentials] = []
            for session in all {
                let token = try await client.createJWT(credentials: session)
                tokens.append(.jwt(caller == "forged-jwt" ? Self.forged(token) : token))
            }
            await client.close()
            all = tokens
        }
        if !options.json {
            print("validate: \(all.count) \(caller == "session" ? "sessions" : caller == "jwt" ? "JWTs" : "forged JWTs"); \(options.connections) connections × \(options.pipeline) in flight; \(driver.rawValue) driver\(options.rate > 0 ? "; open loop at \(options.rate)/s" : "")")
        }
        let credentials = all
        let (result, daemonFigures) = try await drive(
            requests: {
                try credentials.map { try encodedRequest("authd.v1.Account/Get", credentials: $0) }
            },
            call: { worker, client in _ = try await client.getAccount(credentials: credentials[worker % credentials.count]) })
        let extra = daemonFigures.merging(["driver": driver.rawValue, "sessions": all.count]) { $1 }
        print(result.report(scenario: "validate", json: options.json, extra: extra))
    }

    /// `token` with the first character of its signature changed: well formed, signed by a key
    /// the daemon has, and not valid, so the daemon verifies the signature to refuse it.
    static func forged(_ token: String) -> String {
        var bytes = Array(token.utf8)
        guard let dot = bytes.lastIndex(of: UInt8(ascii: ".")), dot + 1 < bytes.count else { return token }
        bytes[dot + 1] = bytes[dot + 1] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Runs the load with the chosen driver: the pipelined one sends `requests` (serialized
    /// `authd.v1.Request`s without an id), the client one makes `call` per call. Returns the
    /// result and the daemon's CPU and caches over the run.
    private func drive(
        requests: () throws -> [[UInt8]], call: @escaping @Sendable (_ worker: Int, AuthdClient) async throws -> Void
    ) async throws -> (LoadRun.Result, daemon: [String: Any]) {
        let statsClient = try await AuthdClient.connect(socketPath: options.socket)
        let before = await options.stats(statsClient)
        let result: LoadRun.Result
        if driver == .pipelined {
            var pipelined = options.driver
            pipelined.expectsRefusals = caller == "forged-jwt"
            result = try await pipelined.run(requests: requests(), progress: !options.json)
        } else {
            let clients = try await options.connect()
            result = await options.run.run(
                clients: clients, progress: !options.json, executor: driver.executor(for:)
            ) { worker, client in
                try await call(worker, client)
                return 0
            }
            for client in clients { await client.close() }
        }
        let after = await options.stats(statsClient)
        await statsClient.close()
        let figures = options.cpuFigures(before: before, after: after, callsPerSecond: result.throughput)
        return (result, figures.merging(options.cacheFigures(before: before, after: after)) { $1 })
    }

    /// Users/Get of the run's users by a server caller: the check a backend makes when it acts
    /// for its users, with its API key or as a mapped peer.
    func runAsServer() async throws {
        let client = try await AuthdClient.connect(socketPath: options.socket)
        let credentials: Credentials
        if caller == "peer" {
            credentials = .none
        } else if let key = options.apiKey {
            credentials = .apiKey(key)
        } else {
            credentials = .apiKey(try await client.createKey(name: "authd-load", scopes: [Scope.usersRead]).secret)
        }
        let users = try await options.createUsers(client, password: nil).map(\.id)
        await client.close()
        if !options.json {
            print("validate: Users/Get of \(users.count) users as \(caller); \(options.connections) connections × \(options.pipeline) in flight; \(driver.rawValue) driver")
        }
        let (result, daemonFigures) = try await drive(
            requests: {
                try users.map { userID in
                    var input = Authd_V1_UserIdRequest()
                    input.userID = userID
                    return try encodedRequest("authd.v1.Users/Get", body: input.serializedBytes(), credentials: credentials)
                }
            },
            call: { worker, client in _ = try await client.getUser(userID: users[worker % users.count], credentials: credentials) })
        let extra = daemonFigures.merging(["driver": driver.rawValue, "caller": caller, "users": users.count]) { $1 }
        print(result.report(scenario: "validate", json: options.json, extra: extra))
    }

    func readSecrets(_ path: String, sample: Int) throws -> [String] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        let stride = max(1, lines.count / max(1, sample))
        // Shuffled: the file lists each user's sessions together, and validating them one after
        // another would find their pages in the CPU's caches, more so in a small store.
        return Swift.stride(from: 0, to: lines.count, by: stride).prefix(sample).map { String(lines[$0]) }.shuffled()
    }
}

/// How `validate` and `tokens` make their calls (`--driver`).
enum CallDriver: String, ExpressibleByArgument, CaseIterable {
    /// Pre-encoded calls straight over NIO (`PipelinedDriver`).
    case pipelined
    /// An `AuthdClient` call, a task, per call (`LoadRun`).
    case client
    /// The same, the tasks on their connection's event loop (`AuthdClient.taskExecutor`).
    case clientOnLoop = "client-on-loop"

    /// The executor the client driver's tasks prefer: none but with `client-on-loop`.
    func executor(for client: AuthdClient) -> (any TaskExecutor)? {
        self == .clientOnLoop ? client.taskExecutor : nil
    }
}

struct Tokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Durable session creation: Users/CreateToken, then Account/CreateSession redeems it (two acknowledged writes).")

    @OptionGroup var options: CommonOptions

    @Option(help: "pipelined: the two calls straight over NIO, the session's request made from the token's answer; client: AuthdClient calls (a task per pair); client-on-loop: the same, the tasks on their connection's event loop (AuthdClient.taskExecutor).")
    var driver = CallDriver.pipelined

    func run() async throws {
        let clients = try await options.connect()
        let users = try await options.createUsers(clients[0], password: nil).map(\.id)
        if !options.json {
            print("tokens: \(users.count) users; \(options.connections) connections × \(options.pipeline) in flight; \(driver.rawValue) driver")
        }
        let server = options.server
        let before = await options.stats(clients[0])
        let result: LoadRun.Result
        if driver == .pipelined {
            // Any user, not the connection's own: every user signs in, so a commit's writes
            // spread over the user index as they would in use.
            let requests = try (0..<4096).map { _ in try Self.createTokenRequest(userID: users.randomElement()!, server: server) }
            result = try await options.driver.run(requests: requests, followUp: Self.createSessionRequest, progress: !options.json)
        } else {
            result = await options.run.run(
                clients: clients, progress: !options.json, executor: driver.executor(for:)
            ) { worker, client in
                let userID = users.randomElement()!
                let token = try await client.createUserToken(userID: userID, credentials: server)
                _ = try await client.createSession(userID: userID, secret: token.secret)
                return 0
            }
        }
        let after = await options.stats(clients[0])
        var extra = options.batchFigures(before: before, after: after)
        extra.merge(options.cpuFigures(before: before, after: after, callsPerSecond: result.throughput)) { $1 }
        extra["driver"] = driver.rawValue
        print(result.report(scenario: "tokens", json: options.json, extra: extra))
        for client in clients { await client.close() }
    }

    static func createTokenRequest(userID: String, server: Credentials) throws -> [UInt8] {
        var input = Authd_V1_CreateUserTokenRequest()
        input.userID = userID
        return try encodedRequest("authd.v1.Users/CreateToken", body: input.serializedBytes(), credentials: server)
    }

    /// Redeems the token in `answerBody` (an `authd.v1.Token`) for a session.
    @Sendable static func createSessionRequest(_ answerBody: UnsafeRawBufferPointer) throws -> [UInt8] {
        let token = try Authd_V1_Token(serializedBytes: Array(answerBody))
        var input = Authd_V1_CreateSessionRequest()
        input.userID = token.userID
        input.secret = token.secret
        return try encodedRequest("authd.v1.Account/CreateSession", body: input.serializedBytes(), credentials: .none)
    }
}

/// A workload mixing validations, logins and token sign-ins by weight.
struct MixedWorkload {
    static let kinds = ["validate", "login", "tokens"]
    let weights: [Int]
    let users: [(id: String, email: String)]
    let secrets: [String]
    let password: String
    let server: Credentials

    static func prepare(_ options: CommonOptions, weights: [Int]) async throws -> MixedWorkload {
        guard weights.allSatisfy({ $0 >= 0 }), weights.reduce(0, +) > 0 else {
            throw ValidationError("the weights must be non-negative and not all zero")
        }
        guard options.users >= 2 else { throw ValidationError("mixed workloads need --users 2 or more") }
        let client = try await AuthdClient.connect(socketPath: options.socket)
        let password = "load-password-1"
        let users = try await options.createUsers(client, password: password)
        // Validations use the first half of the users, whose sessions nothing else touches:
        // the logins and token sign-ins of the other half would otherwise evict them (the
        // per-user session limit).
        let validated = Array(users.prefix(users.count / 2))
        let secrets = try await options.signIn(client, validated, password: password)
        await client.close()
        return MixedWorkload(
            weights: weights, users: Array(users.dropFirst(validated.count)), secrets: secrets, password: password,
            server: options.server)
    }

    /// One call of a kind drawn by weight; returns the kind's index.
    func call(worker: Int, client: AuthdClient) async throws -> Int {
        var draw = Int.random(in: 0..<weights.reduce(0, +))
        var kind = 0
        while draw >= weights[kind] {
            draw -= weights[kind]
            kind += 1
        }
        let user = users[Int.random(in: 0..<users.count)]
        switch kind {
        case 0: _ = try await client.getAccount(credentials: .session(secrets[worker % secrets.count]))
        case 1: _ = try await client.createEmailPasswordSession(email: user.email, password: password)
        default:
            let token = try await client.createUserToken(userID: user.id, credentials: server)
            _ = try await client.createSession(userID: user.id, secret: token.secret)
        }
        return kind
    }
}

/// How often each kind of call comes in a mixed workload.
struct MixWeights: ParsableArguments {
    @Option(help: "Relative weight of session validations.")
    var validateWeight = 90
    @Option(help: "Relative weight of email/password logins.")
    var loginWeight = 5
    @Option(help: "Relative weight of token sign-ins (two writes each).")
    var tokensWeight = 5

    var values: [Int] { [validateWeight, loginWeight, tokensWeight] }
}

struct Mixed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validations, logins and token sign-ins at configurable ratios; latency is reported per kind.")

    @OptionGroup var options: CommonOptions
    @OptionGroup var weights: MixWeights

    func run() async throws {
        let workload = try await MixedWorkload.prepare(options, weights: weights.values)
        let clients = try await options.connect()
        if !options.json {
            print("mixed: validate:login:tokens = \(weights.values.map(String.init).joined(separator: ":")); \(options.connections) connections × \(options.pipeline) in flight")
        }
        let before = await options.stats(clients[0])
        let result = await options.run.run(clients: clients, progress: !options.json, kinds: 3) { worker, client in
            try await workload.call(worker: worker, client: client)
        }
        let after = await options.stats(clients[0])
        let extra = options.cpuFigures(before: before, after: after, callsPerSecond: result.throughput)
            .merging(options.cacheFigures(before: before, after: after)) { $1 }
        print(result.report(scenario: "mixed", json: options.json, kindNames: MixedWorkload.kinds, extra: extra))
        for client in clients { await client.close() }
    }
}

struct Populate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bulk-loads users (Users/Create, no password) and sessions (Users/CreateSession) for scale runs.")

    @Option(help: "authd's socket.")
    var socket = "authd.sock"
    @Option(help: "Users to create.")
    var users = 10_000
    @Option(help: "Sessions per user.")
    var sessionsPerUser = 5
    @Option(help: "Writes in flight.")
    var concurrency = 256
    @Option(help: "Write up to --keep-secrets session secrets here, spread over the users, for `validate --secrets`.")
    var secretsOut: String?
    @Option(help: "How many secrets to keep.")
    var keepSecrets = 100_000
    @Option(help: "API key with users.write (else this process's Unix user must be mapped).")
    var apiKey: String?
    @Flag(help: "Print the result as one JSON object.")
    var json = false

    func run() async throws {
        let server: Credentials = apiKey.map { .apiKey($0) } ?? .none
        var connected: [AuthdClient] = []
        for _ in 0..<4 { connected.append(try await AuthdClient.connect(socketPath: socket)) }
        let clients = connected
        let sessionsPerUser = self.sessionsPerUser
        let prefix = "pop-\(UInt32.random(in: 0...UInt32.max))"
        let keepEvery = max(1, users / max(1, keepSecrets / max(1, sessionsPerUser)))
        let kept = Collected<String>()
        let done = Atomic<Int>(0)
        let started = ContinuousClock.now
        let progress = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if Task.isCancelled { break }
                let count = done.load(ordering: .relaxed)
                let fraction = Double(count) / Double(max(1, users))
                let seconds = max(0.001, (ContinuousClock.now - started) / .seconds(1))
                let bar = String(repeating: "#", count: Int(fraction * 30)) + String(repeating: ".", count: 30 - Int(fraction * 30))
                let line = String(
                    format: "\r  [%@] %3.0f%%  %d/%d users  %.0f writes/s", bar, fraction * 100, count, users,
                    Double(count * (1 + sessionsPerUser)) / seconds)
                FileHandle.standardError.write(Data(line.utf8))
            }
        }
        try await forEachConcurrently(Array(0..<users), width: max(1, concurrency / max(1, sessionsPerUser))) { index in
            let client = clients[index % clients.count]
            let user = try await client.createUser(email: "\(prefix)-\(index)@load.example", credentials: server)
            try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<sessionsPerUser {
                    group.addTask { try await client.createUserSession(userID: user.id, credentials: server).secret }
                }
                for try await secret in group where index % keepEvery == 0 { kept.append(secret) }
            }
            done.add(1, ordering: .relaxed)
        }
        progress.cancel()
        await progress.value
        let seconds = (ContinuousClock.now - started) / .seconds(1)
        FileHandle.standardError.write(Data("\n".utf8))
        if let secretsOut {
            try (kept.values.joined(separator: "\n") + "\n").write(toFile: secretsOut, atomically: true, encoding: .utf8)
        }
        let stats = try? await clients[0].stats(credentials: server)
        var figures: [String: Any] = [
            "users_created": users, "sessions_created": users * sessionsPerUser, "seconds": seconds,
            "writes_per_second": Double(users * (1 + sessionsPerUser)) / max(seconds, 0.001),
            "secrets_kept": kept.values.count,
        ]
        if let stats {
            figures["store_users"] = stats.users
            figures["store_sessions"] = stats.sessions
            figures["data_bytes"] = stats.dataBytes
            figures["resident_bytes"] = stats.residentBytes
            figures["anonymous_bytes"] = stats.anonymousBytes
            figures["bytes_per_record"] = Double(stats.dataBytes) / Double(max(1, stats.users + stats.sessions))
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: figures, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for (key, value) in figures.sorted(by: { $0.key < $1.key }) { print("  \(key): \(value)") }
        }
        for client in clients { await client.close() }
    }
}

struct Soak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A mixed workload for a bounded time, sampling the daemon's resident memory and open files as it goes.")

    @OptionGroup var options: CommonOptions
    @OptionGroup var weights: MixWeights
    @Option(help: "Seconds between samples.")
    var every = 5.0

    func run() async throws {
        let workload = try await MixedWorkload.prepare(options, weights: weights.values)
        let clients = try await options.connect()
        let samples = Collected<[String: Any]>()
        let started = ContinuousClock.now
        let server = options.server
        let json = options.json
        let interval = every
        let sampler = Task {
            while !Task.isCancelled {
                if let stats = try? await clients[0].stats(credentials: server) {
                    let sample: [String: Any] = [
                        "seconds": (ContinuousClock.now - started) / .seconds(1), "resident_bytes": stats.residentBytes,
                        "anonymous_bytes": stats.anonymousBytes,
                        "open_files": stats.openFiles, "sessions": stats.sessions, "data_bytes": stats.dataBytes,
                        "sessions_cached": stats.sessionsCached,
                    ]
                    samples.append(sample)
                    if !json {
                        print(String(
                            format: "  t=%5.0fs  rss %7.1f MiB (own %7.1f MiB)  fds %4d  sessions %8d  data %7.1f MiB",
                            sample["seconds"] as! Double, Double(stats.residentBytes) / 1_048_576,
                            Double(stats.anonymousBytes) / 1_048_576, stats.openFiles, stats.sessions, Double(stats.dataBytes) / 1_048_576))
                    }
                }
                try? await Task.sleep(for: .seconds(interval))
            }
        }
        let result = await options.run.run(clients: clients, progress: !options.json, kinds: 3) { worker, client in
            try await workload.call(worker: worker, client: client)
        }
        sampler.cancel()
        print(result.report(scenario: "soak", json: options.json, kindNames: MixedWorkload.kinds, extra: options.json ? ["samples": samples.values] : [:]))
        for client in clients { await client.close() }
    }
}

/// Prints calls per second to stderr once a second until cancelled.
func progressLine(_ counters: Counters) -> Task<Void, Never> {
    Task {
        var last = 0
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            if Task.isCancelled { break }
            let now = counters.completed.load(ordering: .relaxed)
            let line = String(format: "\r  %8d calls/s  %10d calls  %6d errors", now - last, now, counters.failures.load(ordering: .relaxed))
            FileHandle.standardError.write(Data(line.utf8))
            last = now
        }
    }
}

/// Runs `body` on every item, `width` at a time.
func forEachConcurrently<T: Sendable>(
    _ items: [T], width: Int = 32, _ body: @escaping @Sendable (T) async throws -> Void
) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var iterator = items.makeIterator()
        for _ in 0..<width {
            guard let item = iterator.next() else { break }
            group.addTask { try await body(item) }
        }
        while try await group.next() != nil {
            if let item = iterator.next() { group.addTask { try await body(item) } }
        }
    }
}

/// Collects values from concurrent tasks.
final class Collected<Value>: @unchecked Sendable {
    // Guarded by `lock`; Value is only ever appended and read whole.
    private var storage: [Value] = []
    private let lock = NSLock()
    func append(_ value: Value) { lock.withLock { storage.append(value) } }
    var values: [Value] { lock.withLock { storage } }
}

/// A serialized `authd.v1.Request` without an id (the pipelined driver numbers them), with its
/// credentials as the client sends them.
func encodedRequest(_ method: String, body: Data = Data(), credentials: Credentials) throws -> [UInt8] {
    var request = Authd_V1_Request()
    request.method = method
    request.body = body
    if let wire = credentials.wire { request.credentials = wire }
    return try request.serializedBytes()
}
