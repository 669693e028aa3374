import ArgumentParser
import AuthdClient
import AuthdCore
import AuthdProto
import Foundation
import Synchronization

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Email/password logins (CreateEmailPasswordSession): Argon2 verification plus a durable session write.",
        discussion: """
            Measures the Argon2id ceiling, hashes per second of libargon2 on every core at the daemon's \
            parameters (give them with --argon2-*, if not the defaults), before and after the storm, and \
            reports the logins as a fraction of it. A shared machine's speed drifts within a minute: with \
            --windows N the storm is cut into N windows with a ceiling window before, between and after \
            them, and the fraction is of the storm's and the ceiling's totals. With --validate-rate, session \
            validations run at that fixed rate on their own connection during the storm, and their latency \
            is reported apart. The machine's CPU during the storm windows is reported from /proc/stat, \
            and, when this process may read the daemon's statistics, the daemon's and its hashing \
            threads' shares of the machine from the daemon's own clocks: the fraction cannot be above \
            the hashing share, unless hashes run faster in the storm than in the ceiling windows. This \
            process's own share over the storm windows is reported too: on the same machine, its calls' \
            CPU is not the hashing threads'.
            """)

    @OptionGroup var options: CommonOptions

    @Option(help: "The daemon's argon2_memory_kib.")
    var argon2MemoryKib: UInt32 = PasswordHasher.Parameters.owasp.memoryKiB
    @Option(help: "The daemon's argon2_iterations.")
    var argon2Iterations: UInt32 = PasswordHasher.Parameters.owasp.iterations
    @Option(help: "The daemon's argon2_parallelism.")
    var argon2Parallelism: UInt32 = PasswordHasher.Parameters.owasp.parallelism
    @Option(help: "Seconds of each ceiling window before and after the storm (0: no ceiling); with --windows, the same total is spread over the windows' ceilings.")
    var ceilingSeconds = 5.0
    @Option(help: "Session validations per second during the storm (open loop, one connection; 0: none).")
    var validateRate = 0.0
    @Option(help: "Storm windows, alternating with ceiling windows (--duration is their total).")
    var windows = 1

    func validate() throws {
        guard (1...100).contains(windows) else { throw ValidationError("--windows must be 1-100") }
        guard ceilingSeconds >= 0 else { throw ValidationError("--ceiling-seconds must not be negative") }
    }

    func run() async throws {
        // For the set-up and the statistics: the storm's calls go over connections of their own.
        let client = try await AuthdClient.connect(socketPath: options.socket)
        let password = "load-password-1"
        let emails = try await options.createUsers(client, password: password).map(\.email)
        let validationRequest = validateRate > 0 ? try await validationRequest(client, password: password) : nil
        if !options.json {
            print("login: \(emails.count) users; \(options.connections) connections × \(options.pipeline) in flight, \(windows) storm window(s)")
        }
        let storm = try await storm(client: client, emails: emails, password: password, validationRequest: validationRequest)
        print(storm.logins.report(scenario: "login", json: options.json, extra: figures(of: storm)))
        await client.close()
    }

    /// What the storm measured: its logins, the validations beside them, the ceiling windows
    /// around its windows, and the machine's CPU during them.
    struct Storm {
        var logins: LoadRun.Result
        /// Logins per second of each storm window.
        var windowRates: [Double]
        var validations: LoadRun.Result?
        /// Hashes per second of each ceiling window, in order: one more than the storm windows.
        var ceilings: [Double]
        var cpu: CPUTimes
        /// The daemon's CPU over the storm windows; nil when this process may not read the
        /// daemon's statistics, or the daemon does not report its CPU.
        var daemon: DaemonCPU?
        /// This process's own CPU over the storm windows (its logins' clients and the
        /// validator: the ceilings hash between the windows), and the windows' length.
        var loadToolCPUSeconds: Double
        var stormSeconds: Double
        /// The writer's commits over the storm windows, the writes they held, and the commits
        /// whose first write waited for a second (`commit_wait_us`).
        var commits: UInt64 = 0
        var writes: UInt64 = 0
        var commitsWaitedForCompany: UInt64 = 0
    }

    /// An `Account/Get` of a session of its own user: the storm's logins would evict one of theirs.
    private func validationRequest(_ client: AuthdClient, password: String) async throws -> [UInt8] {
        let email = "load-validate-\(UInt32.random(in: 0...UInt32.max))@load.example"
        _ = try await client.createUser(email: email, password: password, credentials: options.server)
        let secret = try await client.createEmailPasswordSession(email: email, password: password).secret
        return try encodedRequest("authd.v1.Account/Get", credentials: .session(secret))
    }

    private func storm(client: AuthdClient, emails: [String], password: String, validationRequest: [UInt8]?) async throws -> Storm {
        let parameters = PasswordHasher.Parameters(
            memoryKiB: argon2MemoryKib, iterations: argon2Iterations, parallelism: argon2Parallelism)
        // The ceiling's windows share out before-and-after's total: C S C, or C S C S ... S C.
        let ceilingWindow = ceilingSeconds * 2 / Double(windows + 1)
        var ceilings: [Double] = []
        // Hashing warms up before the first ceiling window, as each storm window does: a first
        // window that ran slow (the VM waking its vCPUs, each thread's first 19 MiB faulted in)
        // would lower the ceiling, and so raise the fraction.
        if ceilingSeconds > 0 {
            _ = Argon2Ceiling.measure(parameters, seconds: min(1, ceilingWindow))
            ceilings.append(Argon2Ceiling.measure(parameters, seconds: ceilingWindow))
        }
        var logins: LoadRun.Result?
        var validations: LoadRun.Result?
        var windowRates: [Double] = []
        var cpu = CPUTimes.zero
        var daemon: DaemonCPU? = DaemonCPU()
        var loadToolCPUSeconds = 0.0
        var stormSeconds = 0.0
        var commits: (commits: UInt64, writes: UInt64, waited: UInt64) = (0, 0, 0)
        // The logins go straight over NIO, as the pipelined driver sends any call: one wake-up
        // of its thread per answer. Through `AuthdClient`, a task and a continuation per call,
        // this process took 0.6-0.8 % of a 2-core machine for its 60-78 logins a second (half as
        // much as the daemon's writer), out of the hashing threads' share; now 0.2 %. Counted by
        // when they end, as before: a window's hashes in progress at its start are its work.
        var loginDriver = options.driver
        loginDriver.duration = loginDriver.duration / windows
        loginDriver.eventLoops = 1
        loginDriver.countsCallsEndingInWindow = true
        // As many users as calls in flight (fewer if there are fewer). Each call takes the next,
        // so a user may have more than one login in flight.
        let loginRequests = try emails.prefix(options.connections * options.pipeline).map { email in
            var input = Authd_V1_CreateEmailPasswordSessionRequest()
            input.email = email
            input.password = password
            return try encodedRequest("authd.v1.Account/CreateEmailPasswordSession", body: input.serializedData(), credentials: .none)
        }
        for _ in 0..<windows {
            // Every window warms up, the daemon's first for its sake, and each so that its logins
            // are in flight when it is measured: counted by when they end, a window that began
            // empty would leave out the hashes in progress at its end and gain none at its start.
            let validation = validationRequest.map { request in
                Task { [loginDriver] in
                    try await OpenLoopCaller(
                        socketPath: options.socket, rate: validateRate, pipeline: 16, duration: loginDriver.duration,
                        warmUp: loginDriver.warmUp, maximumCalls: options.maxCalls
                    ).run(request: request)
                }
            }
            let statsBefore = await options.stats(client)
            let cpuBefore = CPUTimes.read()
            let ownCPUBefore = Self.processCPUSeconds()
            let windowStart = ContinuousClock.now
            let result = try await loginDriver.run(requests: loginRequests, progress: !options.json)
            // Over the whole window, warm-up included: that is storm too.
            cpu = cpu + (CPUTimes.read() - cpuBefore)
            loadToolCPUSeconds += Self.processCPUSeconds() - ownCPUBefore
            stormSeconds += windowStart.duration(to: .now) / .seconds(1)
            let statsAfter = await options.stats(client)
            if let before = statsBefore, let after = statsAfter, let part = DaemonCPU(from: before, to: after) {
                daemon = daemon.map { $0 + part }
            } else {
                daemon = nil
            }
            if let before = statsBefore?.stats, let after = statsAfter?.stats {
                commits.commits += after.writeCommits &- before.writeCommits
                commits.writes += after.writes &- before.writes
                commits.waited += after.commitsWaitedForCompany &- before.commitsWaitedForCompany
            }
            windowRates.append(result.throughput)
            logins = logins.map { $0.adding(result) } ?? result
            if let validation {
                let part = try await validation.value
                validations = validations.map { $0.adding(part) } ?? part
            }
            if ceilingSeconds > 0 { ceilings.append(Argon2Ceiling.measure(parameters, seconds: ceilingWindow)) }
        }
        // `validate()` allows no fewer than one window.
        return Storm(
            logins: logins!, windowRates: windowRates, validations: validations, ceilings: ceilings, cpu: cpu, daemon: daemon,
            loadToolCPUSeconds: loadToolCPUSeconds, stormSeconds: stormSeconds, commits: commits.commits, writes: commits.writes,
            commitsWaitedForCompany: commits.waited)
    }

    /// CPU time of this whole process so far, in seconds.
    private static func processCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// The report's figures besides the logins' own: as numbers for --json, as text otherwise.
    private func figures(of storm: Storm) -> [String: Any] {
        let cpuShares = storm.cpu.shares
        let ceilings = storm.ceilings
        var extra: [String: Any] = ["windows": windows, "cpu_during_storm": cpuShares]
        if !ceilings.isEmpty {
            // Every ceiling window lasts as long, so the ceiling over them all is their mean.
            let ceiling = ceilings.reduce(0, +) / Double(ceilings.count)
            extra["argon2_ceiling_before"] = ceilings.first
            extra["argon2_ceiling_after"] = ceilings.last
            extra["argon2_ceilings"] = ceilings
            extra["argon2_ceiling_hashes_per_second"] = ceiling
            extra["fraction_of_ceiling"] = storm.logins.throughput / ceiling
            // Each storm window against the mean of the ceilings on either side of it.
            extra["fraction_per_window"] = storm.windowRates.enumerated().map { index, rate in
                rate / ((ceilings[index] + ceilings[index + 1]) / 2)
            }
        }
        let cores = Double(ProcessInfo.processInfo.activeProcessorCount)
        if let daemon = storm.daemon, daemon.seconds > 0 {
            // Shares of the whole machine over the storm windows, from the daemon's own clocks:
            // /proc/stat charges each tick to the thread it interrupts, which favours the
            // hashing threads over the loops' short runs.
            extra["hashing_share"] = daemon.hashingCores / cores
            extra["daemon_cpu_share"] = daemon.cores / cores
            // Where the daemon's CPU besides hashing went: its event loops (calls and the
            // logins' hand-offs), the writer (a commit per login or so) and the acknowledger.
            extra["event_loop_cpu_share"] = daemon.eventLoopCores / cores
            extra["writer_cpu_share"] = daemon.writerCores / cores
            extra["acknowledger_cpu_share"] = daemon.acknowledgerCores / cores
        }
        if storm.commits > 0 {
            // About a commit per login unless the writer waits for company (`commit_wait_us`).
            extra["commits"] = storm.commits
            extra["mean_batch"] = Double(storm.writes) / Double(storm.commits)
            extra["commits_waited_for_company"] = storm.commitsWaitedForCompany
        }
        if storm.stormSeconds > 0 {
            // On the same machine, what this process spends on its calls (the validator above
            // all: two wake-ups a call) is not the hashing threads'.
            extra["load_tool_cpu_share"] = storm.loadToolCPUSeconds / storm.stormSeconds / cores
        }
        if let validations = storm.validations {
            extra["validate_during_storm"] = [
                "calls": validations.calls, "errors": validations.errors, "calls_per_second": validations.throughput,
                "latency_us": LoadRun.Result.latencies(validations.histogram),
            ] as [String: Any]
        }
        guard !options.json else { return extra }
        if let validations = storm.validations {
            extra["validate_during_storm"] = String(
                format: "%.0f/s, %d errors, latency µs: ", validations.throughput, validations.errors)
                + LoadRun.Result.latencyLine(validations.histogram)
        }
        for key in [
            "hashing_share", "daemon_cpu_share", "event_loop_cpu_share", "writer_cpu_share", "acknowledger_cpu_share",
            "load_tool_cpu_share",
        ] {
            if let share = extra[key] as? Double { extra[key] = String(format: "%.1f %% of the machine", 100 * share) }
        }
        extra["cpu_during_storm"] = CPUTimes.kinds.map { String(format: "%@ %.1f %%", $0, cpuShares[$0] ?? 0) }.joined(separator: ", ")
        for key in ["argon2_ceilings", "fraction_per_window"] {
            if let values = extra[key] as? [Double] { extra[key] = values.map { String(format: "%.2f", $0) }.joined(separator: " ") }
        }
        return extra
    }
}

/// Hashes per second of libargon2 with every core hashing, for the login ceiling.
enum Argon2Ceiling {
    static func measure(_ parameters: PasswordHasher.Parameters, seconds: Double) -> Double {
        let hasher = PasswordHasher(parameters: parameters)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let hashes = Atomic<Int>(0)
        let started = ContinuousClock.now
        let end = started.advanced(by: .milliseconds(Int(seconds * 1000)))
        DispatchQueue.concurrentPerform(iterations: cores) { _ in
            while ContinuousClock.now < end {
                _ = try? hasher.hash("correct horse battery staple")
                hashes.add(1, ordering: .relaxed)
            }
        }
        let elapsed = started.duration(to: .now)
        return Double(hashes.load(ordering: .relaxed)) / (elapsed / .seconds(1))
    }
}

/// The machine's CPU time by kind, in clock ticks, from the first line of /proc/stat.
struct CPUTimes {
    static let kinds = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    var ticks: [Int]

    static let zero = CPUTimes(ticks: Array(repeating: 0, count: kinds.count))

    static func read() -> CPUTimes {
        let text = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8)) ?? ""
        let fields = text.prefix { $0 != "\n" }.split(separator: " ").dropFirst().prefix(kinds.count).map { Int($0) ?? 0 }
        return fields.count == kinds.count ? CPUTimes(ticks: fields) : .zero
    }

    static func + (a: CPUTimes, b: CPUTimes) -> CPUTimes { CPUTimes(ticks: zip(a.ticks, b.ticks).map(+)) }
    static func - (a: CPUTimes, b: CPUTimes) -> CPUTimes { CPUTimes(ticks: zip(a.ticks, b.ticks).map(-)) }

    /// Each kind's share of the total, in per cent; nice is the daemon's niced hashing threads.
    var shares: [String: Double] {
        let total = max(1, ticks.reduce(0, +))
        return Dictionary(uniqueKeysWithValues: zip(Self.kinds, ticks.map { 100 * Double($0) / Double(total) }))
    }
}
