import AuthdClient
import Foundation
import XCTest

/// `Health/Stats` and every `authd-load` scenario, bounded to a fraction of a second, against
/// the real daemon. The figures themselves belong to the benchmarks; here each scenario must
/// run its calls without errors and report them.
final class LoadToolTests: XCTestCase {
    var daemon: DaemonProcess!

    override func tearDown() async throws {
        await daemon?.cleanUp()
    }

    /// A daemon that maps this test's Unix user to what the load tool needs: signing users in,
    /// managing users (tokens, populate) and reading the statistics.
    private func startMapped(_ settings: [String] = []) async throws -> AuthdClient {
        daemon = try await DaemonProcess.start(extraArguments: [
            "--set", "peer_uid.\(getuid())=sessions.write,users.read,users.write,settings.read",
        ] + settings.flatMap { ["--set", $0] })
        return try await daemon.connect()
    }

    private func load(_ arguments: [String]) throws -> [String: Any] {
        let binary = DaemonProcess.binary.deletingLastPathComponent().appendingPathComponent("authd-load")
        let (status, output) = try runProcess(binary, arguments + ["--socket", daemon.socketPath, "--json"])
        XCTAssertEqual(status, 0, output)
        let line = try XCTUnwrap(output.split(separator: "\n").last(where: { $0.hasPrefix("{") }), "status \(status), arguments \(arguments): \(output)")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    func testADaemonReadsItsDataFileIntoThePageCacheAtStartUnlessToldNotTo() async throws {
        var client = try await startMapped()
        for n in 0..<20 { _ = try await client.createAccount(email: "u\(n)@example.com", password: "password-1") }
        await client.close()
        try await daemon.stop()

        try await daemon.launch()
        client = try await daemon.connect()
        let deadline = Date().addingTimeInterval(15)
        // The warmer logs just after its count reaches the end: wait for both. (Each launch
        // starts the log file afresh.)
        let logged = "data file read into the page cache"
        var stats = try await client.stats()
        while !stats.dataPrewarmDone || !daemon.log_().contains(logged), Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
            stats = try await client.stats()
        }
        XCTAssertTrue(stats.dataPrewarmDone)
        XCTAssertGreaterThan(stats.dataBytes, 0)
        XCTAssertEqual(stats.dataBytesPrewarmed, stats.dataBytes, "the data file, read once at start")
        XCTAssertEqual(stats.dataBytesPrewarmLimit, stats.dataBytes)
        XCTAssertTrue(daemon.log_().contains(logged), daemon.log_())
        await client.close()
        let (status, output) = try daemon.authctl(["stats"])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("data_bytes_prewarmed \(stats.dataBytes)\n"), output)
        XCTAssertTrue(output.contains("data_bytes_prewarm_limit \(stats.dataBytes)\ndata_prewarm_done true\n"), output)
        try await daemon.stop()

        let cold = try DaemonProcess(directory: daemon.directory, extraArguments: daemon.extraArguments + ["--set", "prewarm_data=false"])
        try await cold.launch()
        client = try await cold.connect()
        try await Task.sleep(for: .milliseconds(200))
        let coldStats = try await client.stats()
        XCTAssertEqual(coldStats.dataBytesPrewarmed, 0)
        XCTAssertEqual(coldStats.dataBytesPrewarmLimit, 0)
        XCTAssertTrue(coldStats.dataPrewarmDone)
        XCTAssertEqual(coldStats.users, 20, "the same store")
        await client.close()
        try await cold.stop()
    }

    private let quick = ["--duration", "0.5", "--warm-up", "0", "--connections", "2", "--pipeline", "2", "--users", "4"]

    func testStatsNeedSettingsReadAndCountTheStore() async throws {
        daemon = try await DaemonProcess.start()
        let plain = try await daemon.connect()
        do {
            _ = try await plain.stats()
            XCTFail("a plain client may not read the statistics")
        } catch let error as AuthdClientError {
            XCTAssertEqual(error.type, "general_unauthorized_scope")
        }
        await plain.close()
        await daemon.cleanUp()

        let client = try await startMapped()
        let session = try await client.createAccount(email: "a@example.com", password: "password-1")
        _ = try await client.createAccount(email: "b@example.com", password: "password-1")
        let signedIn = try await client.createEmailPasswordSession(email: "a@example.com", password: "password-1")
        _ = try await client.getAccount(credentials: .session(signedIn.secret))
        _ = try await client.getUser(userID: session.id)
        let stats = try await client.stats()
        XCTAssertEqual(stats.users, 2)
        XCTAssertEqual(stats.sessions, 1)
        XCTAssertEqual(stats.sessionsCached, 1, "the validated session is held in memory")
        XCTAssertEqual(stats.usersCached, 1, "the user looked up is held in memory")
        XCTAssertEqual(stats.apiKeysCached, 0)
        XCTAssertEqual(
            [stats.sessionCacheHits, stats.sessionCacheMisses, stats.userCacheHits, stats.userCacheMisses], [0, 1, 0, 1],
            "each cache read the store once")
        XCTAssertGreaterThan(stats.writes, 0)
        XCTAssertGreaterThanOrEqual(stats.writes, stats.writeCommits)
        XCTAssertGreaterThan(stats.writesCommittingMicros, 0, "every write waited for its commit")
        XCTAssertGreaterThan(stats.dataBytes, 0)
        XCTAssertGreaterThan(stats.residentBytes, 1 << 20)
        XCTAssertGreaterThan(stats.anonymousBytes, 0)
        XCTAssertLessThanOrEqual(stats.anonymousBytes, stats.residentBytes)
        XCTAssertGreaterThan(stats.openFiles, 3)
        XCTAssertFalse(session.id.isEmpty)
        // The daemon's CPU only grows: more calls, more CPU.
        XCTAssertGreaterThan(stats.cpuUserMicros + stats.cpuSystemMicros, 0)
        for _ in 0..<300 { _ = try await client.getAccount(credentials: .session(signedIn.secret)) }
        let later = try await client.stats()
        XCTAssertEqual(later.sessionCacheHits, 300, "every check after the first is served from memory")
        XCTAssertEqual(later.sessionCacheMisses, 1)
        XCTAssertGreaterThan(later.cpuUserMicros + later.cpuSystemMicros, stats.cpuUserMicros + stats.cpuSystemMicros)
        XCTAssertGreaterThanOrEqual(later.cpuUserMicros, stats.cpuUserMicros)
        XCTAssertGreaterThanOrEqual(later.cpuWaitMicros, stats.cpuWaitMicros, "the daemon's threads live as long as it does")
        // Three passwords hashed (two accounts, one sign-in): some of the CPU, not more than all of it.
        XCTAssertGreaterThan(later.hashingCpuMicros, 0)
        XCTAssertLessThanOrEqual(later.hashingCpuMicros, later.cpuUserMicros + later.cpuSystemMicros)
        // The CPU by thread: the loops served the 300 checks; the writer and the acknowledger
        // ran the writes (the users and the session); together no more than the whole.
        XCTAssertGreaterThan(later.eventLoopCpuMicros, stats.eventLoopCpuMicros)
        XCTAssertGreaterThan(stats.writerCpuMicros, 0)
        XCTAssertGreaterThan(stats.acknowledgerCpuMicros, 0)
        XCTAssertGreaterThanOrEqual(later.writerCpuMicros, stats.writerCpuMicros)
        XCTAssertLessThanOrEqual(
            later.eventLoopCpuMicros + later.writerCpuMicros + later.acknowledgerCpuMicros + later.hashingCpuMicros,
            later.cpuUserMicros + later.cpuSystemMicros)
        await client.close()
        let (status, output) = try daemon.authctl(["stats"])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("users 2\n"), output)
        XCTAssertTrue(output.contains("sessions_cached 1\n"), output)
        XCTAssertTrue(output.contains("users_cached 1\n"), output)
        XCTAssertTrue(output.contains("session_cache_hits 300\nsession_cache_misses 1\nsession_cache_evictions 0\n"), output)
        XCTAssertTrue(output.contains("\nevent_loop_cpu_micros "), output)
        XCTAssertTrue(output.contains("\nwriter_cpu_micros "), output)
        XCTAssertTrue(output.contains("user_cache_hits 0\nuser_cache_misses 1\nuser_cache_evictions 0\n"), output)
        for line in ["cpu_user_micros", "cpu_system_micros", "cpu_wait_micros", "hashing_cpu_micros"] {
            XCTAssertNotNil(output.range(of: "\n\(line) [0-9]+\n", options: .regularExpression), "\(line): \(output)")
        }
    }

    /// `user_cache_size` sizes the users kept for `Users/Get`: with two places, three users
    /// read in turn leave two held, and each read takes the place of the oldest (what the
    /// evictions tell an operator); with none, none.
    func testUserCacheSizeBoundsTheUsersHeld() async throws {
        for (size, held, evictions) in [(2, 2, 4), (0, 0, 0)] {
            let client = try await startMapped(["user_cache_size=\(size)"])
            var ids: [String] = []
            for name in ["a", "b", "c"] {
                ids.append(try await client.createAccount(email: "\(name)@example.com", password: "password-1").id)
            }
            for _ in 0..<2 {
                for id in ids {
                    let user = try await client.getUser(userID: id)
                    XCTAssertEqual(user.id, id)
                }
            }
            let stats = try await client.stats()
            XCTAssertEqual(stats.usersCached, UInt64(held), "user_cache_size=\(size)")
            XCTAssertEqual(stats.userCacheEvictions, UInt64(evictions), "user_cache_size=\(size)")
            XCTAssertEqual([stats.userCacheHits, stats.userCacheMisses], [0, 6], "user_cache_size=\(size): read in turn, none is held long enough")
            await client.close()
            await daemon.cleanUp()
        }
    }

    /// The pipelined driver reads answers from raw bytes: a refused call must count as an
    /// error, with the daemon's error type, and not as a validation.
    func testRefusedCallsCountAsErrorsWithTheirType() async throws {
        daemon = try await DaemonProcess.start()
        let secrets = FileManager.default.temporaryDirectory.appendingPathComponent("authd-load-secrets-\(getpid())")
        defer { try? FileManager.default.removeItem(at: secrets) }
        let unknown = (0..<3).map { _ in SecretTokenText.random(length: 80) }
        try unknown.joined(separator: "\n").write(to: secrets, atomically: true, encoding: .utf8)
        let validate = try load(["validate", "--secrets", secrets.path] + quick)
        XCTAssertEqual(validate["calls"] as? Int, 0, "\(validate)")
        XCTAssertGreaterThan(validate["errors"] as? Int ?? 0, 0, "\(validate)")
        XCTAssertTrue((validate["first_error"] as? String ?? "").hasPrefix("general_unauthorized_scope: "), "an unknown session is a guest: \(validate)")
    }

    func testEveryScenarioRunsWithoutErrors() async throws {
        let client = try await startMapped()
        await client.close()
        for driver in ["pipelined", "client", "client-on-loop"] {
            let validate = try load(["validate", "--driver", driver] + quick)
            XCTAssertGreaterThan(validate["calls"] as? Int ?? 0, 0, "validate (\(driver))")
            XCTAssertEqual(validate["errors"] as? Int, 0, "validate (\(driver)): \(validate)")
            let latency = try XCTUnwrap(validate["latency_us"] as? [String: Any])
            XCTAssertNotNil(latency["p99_9"])
            // The daemon's CPU over the run, from its statistics before and after.
            XCTAssertGreaterThan(validate["daemon_cpu_cores"] as? Double ?? 0, 0, "validate (\(driver)): \(validate)")
            XCTAssertGreaterThan(validate["daemon_cpu_us_per_call"] as? Double ?? 0, 0, "validate (\(driver)): \(validate)")
            XCTAssertGreaterThanOrEqual(validate["daemon_waiting_cores"] as? Double ?? -1, 0, "validate (\(driver)): \(validate)")
            // And how the session cache served it: the run's few sessions are checked over and
            // over, so all but their first checks are hits; no user was looked up.
            XCTAssertGreaterThan(validate["session_cache_hit_fraction"] as? Double ?? 0, 0.9, "validate (\(driver)): \(validate)")
            XCTAssertEqual(validate["session_cache_evictions"] as? Int, 0, "validate (\(driver)): \(validate)")
            XCTAssertNil(validate["user_cache_hit_fraction"], "validate (\(driver)): \(validate)")
        }
        for driver in ["pipelined", "client", "client-on-loop"] {
            let tokens = try load(["tokens", "--driver", driver] + quick)
            XCTAssertEqual(tokens["driver"] as? String, driver)
            XCTAssertGreaterThan(tokens["calls"] as? Int ?? 0, 0, "tokens (\(driver))")
            XCTAssertEqual(tokens["errors"] as? Int, 0, "tokens (\(driver)): \(tokens)")
            XCTAssertGreaterThan(tokens["commits"] as? Int ?? 0, 0, "the write statistics were read")
            // Each pair counted is a token and the session redeemed for it: two writes.
            XCTAssertGreaterThanOrEqual(tokens["writes"] as? Int ?? 0, 2 * (tokens["calls"] as? Int ?? 0), "tokens (\(driver))")
            XCTAssertGreaterThan(tokens["commits_per_second"] as? Double ?? 0, 0, "tokens (\(driver)): \(tokens)")
            XCTAssertGreaterThan(tokens["daemon_cpu_cores"] as? Double ?? 0, 0, "tokens (\(driver)): \(tokens)")
        }

        let login = try load(
            ["login", "--argon2-memory-kib", "64", "--argon2-iterations", "1", "--ceiling-seconds", "0.2", "--validate-rate", "100"]
                + quick)
        XCTAssertGreaterThan(login["calls"] as? Int ?? 0, 0)
        XCTAssertEqual(login["errors"] as? Int, 0, "\(login)")
        XCTAssertGreaterThan(login["argon2_ceiling_hashes_per_second"] as? Double ?? 0, 0)
        XCTAssertGreaterThan(login["argon2_ceiling_before"] as? Double ?? 0, 0)
        XCTAssertGreaterThan(login["argon2_ceiling_after"] as? Double ?? 0, 0, "measured again after the storm")
        XCTAssertNotNil(login["fraction_of_ceiling"])
        let during = try XCTUnwrap(login["validate_during_storm"] as? [String: Any], "\(login)")
        XCTAssertGreaterThan(during["calls"] as? Int ?? 0, 0)
        XCTAssertEqual(during["errors"] as? Int, 0)
        // The daemon's shares of the machine over the storm, from its own clocks: hashing is part
        // of its CPU.
        let hashing = try XCTUnwrap(login["hashing_share"] as? Double, "\(login)")
        let daemonShare = try XCTUnwrap(login["daemon_cpu_share"] as? Double, "\(login)")
        XCTAssertGreaterThan(hashing, 0)
        XCTAssertLessThanOrEqual(hashing, daemonShare)
        XCTAssertLessThanOrEqual(daemonShare, 1.05, "a share of the whole machine")
        // The load tool's own share over the same windows: its clients and validator did run.
        let loadShare = try XCTUnwrap(login["load_tool_cpu_share"] as? Double, "\(login)")
        XCTAssertGreaterThan(loadShare, 0)
        XCTAssertLessThanOrEqual(loadShare, 1.05, "a share of the whole machine")
        let cpu = try XCTUnwrap(login["cpu_during_storm"] as? [String: Double], "\(login)")
        XCTAssertEqual(Set(cpu.keys), ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"])
        XCTAssertEqual(cpu.values.reduce(0, +), 100, accuracy: 0.01, "shares of the machine's CPU: \(cpu)")

        // Three storm windows: four ceiling windows around them, and a fraction for each window
        // against the ceilings on either side. Each window lasts 0.5 s: in windows of 0.17 s (a
        // storm of 0.5 s) one window now and then saw no login end at all, when the VM's disk
        // held a commit's fsync that long.
        let windowed = try load(
            ["login", "--argon2-memory-kib", "64", "--argon2-iterations", "1", "--ceiling-seconds", "0.2", "--windows", "3",
             "--validate-rate", "100", "--duration", "1.5", "--warm-up", "0", "--connections", "2", "--pipeline", "2",
             "--users", "4"])
        XCTAssertEqual(windowed["errors"] as? Int, 0, "\(windowed)")
        XCTAssertEqual(windowed["windows"] as? Int, 3)
        let ceilings = try XCTUnwrap(windowed["argon2_ceilings"] as? [Double], "\(windowed)")
        let fractions = try XCTUnwrap(windowed["fraction_per_window"] as? [Double], "\(windowed)")
        XCTAssertEqual(ceilings.count, 4)
        XCTAssertEqual(fractions.count, 3)
        XCTAssertTrue(ceilings.allSatisfy { $0 > 0 }, "\(ceilings)")
        XCTAssertEqual(
            try XCTUnwrap(windowed["argon2_ceiling_hashes_per_second"] as? Double), ceilings.reduce(0, +) / 4, accuracy: 1e-6)
        XCTAssertTrue(fractions.allSatisfy { $0 > 0 }, "every window logged users in: \(fractions)")
        let validatedInWindows = try XCTUnwrap(windowed["validate_during_storm"] as? [String: Any])
        // 100/s over the storm's 1.5 s, in three windows: the calls of each window add up.
        XCTAssertTrue((120...180).contains(validatedInWindows["calls"] as? Int ?? 0), "\(validatedInWindows)")
        let (refused, message) = try runProcess(
            DaemonProcess.binary.deletingLastPathComponent().appendingPathComponent("authd-load"), ["login", "--windows", "0"])
        XCTAssertNotEqual(refused, 0)
        XCTAssertTrue(message.contains("--windows must be 1-100"), message)

        let mixed = try load(["mixed", "--validate-weight", "2", "--login-weight", "1", "--tokens-weight", "1"] + quick)
        XCTAssertEqual(mixed["errors"] as? Int, 0, "\(mixed)")
        for kind in ["validate", "login", "tokens"] {
            let figures = try XCTUnwrap(mixed[kind] as? [String: Any], kind)
            XCTAssertGreaterThan(figures["calls"] as? Int ?? 0, 0, kind)
        }
        XCTAssertGreaterThan(mixed["daemon_cpu_us_per_call"] as? Double ?? 0, 0, "\(mixed)")

        let soak = try load(["soak", "--every", "0.2"] + quick)
        XCTAssertEqual(soak["errors"] as? Int, 0, "\(soak)")
        let samples = try XCTUnwrap(soak["samples"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(samples.count, 2)
        XCTAssertGreaterThan(samples.first?["resident_bytes"] as? Int ?? 0, 0)
        XCTAssertGreaterThan(samples.first?["open_files"] as? Int ?? 0, 0)
    }

    func testValidateAsAServerLooksTheUsersUp() async throws {
        // api-key: the tool makes a users.read key as an operator peer; peer: Users/Get with no
        // credential, as that peer.
        daemon = try await DaemonProcess.start(extraArguments: ["--set", "operator_uids=\(getuid())"])
        for caller in ["api-key", "peer"] {
            for driver in ["pipelined", "client"] {
                let run = try load(["validate", "--as", caller, "--driver", driver] + quick)
                XCTAssertEqual(run["caller"] as? String, caller)
                XCTAssertGreaterThan(run["calls"] as? Int ?? 0, 0, "\(caller) (\(driver))")
                XCTAssertEqual(run["errors"] as? Int, 0, "\(caller) (\(driver)): \(run)")
                // The run's four users, looked up over and over, come from the user cache.
                XCTAssertGreaterThan(run["user_cache_hit_fraction"] as? Double ?? 0, 0.9, "\(caller) (\(driver)): \(run)")
            }
        }
    }

    func testValidateWithJWTsChecksEachUsersToken() async throws {
        let client = try await startMapped()
        for driver in ["pipelined", "client"] {
            let run = try load(["validate", "--as", "jwt", "--driver", driver] + quick)
            XCTAssertEqual(run["sessions"] as? Int, 4, "a JWT for each user's session: \(run)")
            XCTAssertGreaterThan(run["calls"] as? Int ?? 0, 0, driver)
            XCTAssertEqual(run["errors"] as? Int, 0, "\(driver): \(run)")
            // A JWT's sign-in is kept in the session cache: the four, over and over, are found there.
            XCTAssertGreaterThan(run["session_cache_hit_fraction"] as? Double ?? 0, 0.9, "\(driver): \(run)")
        }
        await client.close()
    }

    func testValidateWithForgedJWTsCountsEachRefusalAsTheAnswer() async throws {
        let client = try await startMapped()
        let before = try await client.stats()
        let run = try load(["validate", "--as", "forged-jwt"] + quick)
        let calls = run["calls"] as? Int ?? 0
        XCTAssertGreaterThan(calls, 0, "\(run)")
        XCTAssertEqual(run["errors"] as? Int, 0, "each call refused, as meant: \(run)")
        // Each refusal was a verification in full: forged tokens are never kept.
        let after = try await client.stats()
        XCTAssertGreaterThanOrEqual(after.jwtsRefused - before.jwtsRefused, UInt64(calls))
        let binary = DaemonProcess.binary.deletingLastPathComponent().appendingPathComponent("authd-load")
        let (status, output) = try runProcess(
            binary, ["validate", "--as", "forged-jwt", "--driver", "client", "--socket", daemon.socketPath] + quick)
        XCTAssertNotEqual(status, 0, "the client driver counts refusals as errors: refused up front")
        XCTAssertTrue(output.contains("pipelined driver"), output)
        await client.close()
    }

    func testPopulateLoadsTheStoreAndItsSecretsValidate() async throws {
        let client = try await startMapped()
        let secrets = daemon.directory.appendingPathComponent("secrets.txt").path
        let populate = try load(["populate", "--users", "50", "--sessions-per-user", "3", "--secrets-out", secrets])
        XCTAssertEqual(populate["store_users"] as? Int, 50)
        XCTAssertEqual(populate["store_sessions"] as? Int, 150)
        XCTAssertGreaterThan(populate["bytes_per_record"] as? Double ?? 0, 0)
        let kept = try String(contentsOfFile: secrets, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(kept.count, 150)
        let user = try await client.getAccount(credentials: .session(String(kept[0])))
        XCTAssertTrue(user.email.hasPrefix("pop-"))
        await client.close()

        let validate = try load(["validate", "--secrets", secrets, "--sample", "20"] + quick)
        XCTAssertEqual(validate["sessions"] as? Int, 20)
        XCTAssertEqual(validate["errors"] as? Int, 0, "\(validate)")
    }

    func testOpenLoopCallsFollowTheSchedule() async throws {
        let client = try await startMapped()
        await client.close()
        // 200 calls/s for one second: the count follows the schedule, not the daemon's speed.
        for driver in ["pipelined", "client"] {
            let run = try load([
                "validate", "--driver", driver, "--rate", "200", "--duration", "1", "--warm-up", "0", "--connections", "2",
                "--pipeline", "4", "--users", "2",
            ])
            let calls = run["calls"] as? Int ?? 0
            XCTAssertTrue((120...230).contains(calls), "\(driver): \(calls) calls at 200/s for 1 s")
            XCTAssertEqual(run["errors"] as? Int, 0)
        }
    }

    /// A login storm counts the logins that end in its window: the ones still in flight when it
    /// closes end after it and are not its work (nor counted elsewhere, with one window and no
    /// warm-up). Counted by when they began, every login the daemon made would be.
    func testLoginStormCountsTheLoginsThatEndInItsWindow() async throws {
        let client = try await startMapped()
        let before = try await client.stats()
        let login = try load([
            "login", "--ceiling-seconds", "0", "--duration", "0.5", "--warm-up", "0", "--connections", "2",
            "--pipeline", "4", "--users", "8",
        ])
        let after = try await client.stats()
        await client.close()
        XCTAssertEqual(login["errors"] as? Int, 0, "\(login)")
        let counted = try XCTUnwrap(login["calls"] as? Int, "\(login)")
        // Each user's creation and each login is one acknowledged write; nothing else writes.
        let logins = Int(after.writes - before.writes) - 8
        XCTAssertGreaterThan(counted, 0, "\(login)")
        XCTAssertLessThan(counted, logins, "the logins in flight at the window's end were not counted: \(login)")
        XCTAssertGreaterThanOrEqual(counted, logins - 8, "at most the 8 in flight were left out: \(login)")
    }

    /// `stalls` needs no daemon: it spins a thread per core and reports the gaps each saw and
    /// the stalls, when every thread was in a gap at once, which add up to no more time, and
    /// last no longer, than any one thread's gaps.
    func testStallsReportGapsPerThreadAndOnEveryCoreAtOnce() throws {
        let binary = DaemonProcess.binary.deletingLastPathComponent().appendingPathComponent("authd-load")
        let (status, output) = try runProcess(binary, ["stalls", "--threads", "2", "--duration", "0.3", "--threshold-us", "2", "--json"])
        XCTAssertEqual(status, 0, output)
        let line = try XCTUnwrap(output.split(separator: "\n").last(where: { $0.hasPrefix("{") }), output)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(report["threads"] as? Int, 2)
        let perThread = try XCTUnwrap(report["per_thread"] as? [[String: Any]])
        let everyCore = try XCTUnwrap(report["every_core"] as? [String: Any])
        XCTAssertEqual(perThread.count, 2)
        // The kernel's timer tick alone interrupts a spinning thread for more than 2 µs.
        XCTAssertGreaterThan(perThread.compactMap { $0["gaps"] as? Int }.min() ?? 0, 0, "\(report)")
        for summary in perThread + [everyCore] {
            let lost = try XCTUnwrap(summary["lost_fraction"] as? Double)
            XCTAssertTrue((0...1).contains(lost), "\(summary)")
        }
        // A stall lies inside a gap of every thread.
        let least = perThread.compactMap { $0["lost_fraction"] as? Double }.min() ?? -1
        let shortestLongest = perThread.compactMap { $0["max_us"] as? Double }.min() ?? -1
        XCTAssertLessThanOrEqual(try XCTUnwrap(everyCore["lost_fraction"] as? Double), least, "\(report)")
        XCTAssertLessThanOrEqual(try XCTUnwrap(everyCore["max_us"] as? Double), shortestLongest, "\(report)")

        let (refused, message) = try runProcess(binary, ["stalls", "--threads", "0"])
        XCTAssertNotEqual(refused, 0)
        XCTAssertTrue(message.contains("--threads must be 1-256"), message)
    }
}

/// Text that looks like a session secret: lowercase hex.
enum SecretTokenText {
    static func random(length: Int) -> String {
        String((0..<length).map { _ in "0123456789abcdef".randomElement()! })
    }
}
