import AuthdServer
import Foundation
import XCTest

final class DaemonConfigurationTests: XCTestCase {
    func testCommandLineWinsOverEnvironmentWhichWinsOverTheFile() throws {
        let file = "/tmp/authd-config-\(UUID().uuidString.prefix(8)).conf"
        try """
            # comment
            socket = /run/from-file.sock   # trailing comment
            data = "/var/lib/authd"
            session_limit = 5
            argon2_memory_kib = 65536
            """.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let configuration = try DaemonConfiguration.load(
            file: file,
            environment: ["AUTHD_SESSION_LIMIT": "7", "AUTHD_SOCKET": "/run/from-env.sock", "UNRELATED": "x"],
            overrides: ["socket": "/run/from-cli.sock"])
        XCTAssertEqual(configuration.socketPath, "/run/from-cli.sock")
        XCTAssertEqual(configuration.dataDirectory, "/var/lib/authd")
        XCTAssertEqual(configuration.sessionLimit, 7)
        XCTAssertEqual(configuration.argon2.memoryKiB, 65536)
        XCTAssertEqual(configuration.argon2.iterations, 2, "untouched keys keep their defaults")
        XCTAssertEqual(configuration.hashNice, 10)
        XCTAssertEqual(configuration.writerNice, -10)
        XCTAssertEqual(configuration.commitWaitMicros, 8000)
        XCTAssertEqual(configuration.sessionCacheSize, 100_000)
        XCTAssertEqual(configuration.userCacheSize, 10_000)
        XCTAssertEqual(configuration.expirySweepIntervalSeconds, 3600)
        XCTAssertEqual(configuration.changeLogRetentionSeconds, 1_209_600, "Appwrite's 14 days")
        XCTAssertTrue(configuration.prewarmData)
        let tuned = try DaemonConfiguration.load(
            file: nil, environment: ["AUTHD_HASH_NICE": "19", "AUTHD_WRITER_NICE": "0", "AUTHD_EXPIRY_SWEEP_INTERVAL": "0"],
            overrides: [
                "session_cache_size": "0", "user_cache_size": "50000", "change_log_retention": "0", "prewarm_data": "false",
                "commit_wait_us": "0",
            ])
        XCTAssertEqual(tuned.expirySweepIntervalSeconds, 0)
        XCTAssertEqual(tuned.changeLogRetentionSeconds, 0)
        XCTAssertEqual(tuned.hashNice, 19)
        XCTAssertEqual(tuned.writerNice, 0)
        XCTAssertEqual(tuned.commitWaitMicros, 0, "a lone write never waits")
        XCTAssertEqual(tuned.sessionCacheSize, 0)
        XCTAssertEqual(tuned.userCacheSize, 50_000)
        XCTAssertFalse(tuned.prewarmData)
    }

    func testEventLoopsLeaveOneCoreToTheClients() throws {
        XCTAssertEqual(DaemonConfiguration.defaultEventLoopThreads(cores: 1), 1)
        XCTAssertEqual(DaemonConfiguration.defaultEventLoopThreads(cores: 2), 1)
        XCTAssertEqual(DaemonConfiguration.defaultEventLoopThreads(cores: 4), 3)
        XCTAssertEqual(DaemonConfiguration.defaultEventLoopThreads(cores: 64), 63)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        XCTAssertEqual(DaemonConfiguration().eventLoopThreads, DaemonConfiguration.defaultEventLoopThreads(cores: cores))
        XCTAssertEqual(DaemonConfiguration().hashThreads, cores, "hashing still uses every core, at a lower priority")
        let pinned = try DaemonConfiguration.load(file: nil, environment: [:], overrides: ["event_loop_threads": "\(cores)"])
        XCTAssertEqual(pinned.eventLoopThreads, cores)
    }

    func testTheHashingQueueIsBoundedPerThreadUnlessSet() throws {
        let threads = try DaemonConfiguration.load(file: nil, environment: [:], overrides: ["hash_threads": "3"])
        XCTAssertEqual(threads.hashQueueLimit, 3 * DaemonConfiguration.queuedHashesPerThread)
        let set = try DaemonConfiguration.load(file: nil, environment: [:], overrides: ["hash_threads": "3", "hash_queue_limit": "10"])
        XCTAssertEqual(set.hashQueueLimit, 10)
        XCTAssertThrowsError(try DaemonConfiguration.load(file: nil, environment: [:], overrides: ["hash_queue_limit": "0"]))
    }

    func testBadValuesAndUnknownKeysAreClearErrors() {
        let cases: [([String: String], String)] = [
            (["session_limit": "101"], "session_limit must be a whole number in 0...100"),
            (["socket_mode": "999"], "socket_mode must be octal"),
            (["log_level": "loud"], "log_level must be one of"),
            (["no_such_key": "1"], "unknown key `no_such_key`"),
            (["argon2_iterations": "x"], "argon2_iterations must be a whole number"),
            (["hash_nice": "20"], "hash_nice must be a whole number in 0...19"),
            (["writer_nice": "5"], "writer_nice must be a whole number in -20...0"),
            (["commit_wait_us": "100001"], "commit_wait_us must be a whole number in 0...100000"),
            (["session_cache_size": "-1"], "session_cache_size must be a whole number"),
            (["user_cache_size": "lots"], "user_cache_size must be a whole number"),
            (["expiry_sweep_interval": "604801"], "expiry_sweep_interval must be a whole number in 0...604800"),
            (["change_log_retention": "-1"], "change_log_retention must be a whole number"),
            (["prewarm_data": "yes"], "prewarm_data must be true or false"),
        ]
        for (overrides, message) in cases {
            XCTAssertThrowsError(try DaemonConfiguration.load(file: nil, environment: [:], overrides: overrides)) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
        XCTAssertThrowsError(try DaemonConfiguration.load(file: "/nonexistent/authd.conf", environment: [:], overrides: [:]))
    }

    func testEveryKeyHasAnEnvironmentVariable() throws {
        XCTAssertEqual(DaemonConfiguration.environmentVariable(for: "max_frame_bytes"), "AUTHD_MAX_FRAME_BYTES")
        let configuration = try DaemonConfiguration.load(
            file: nil, environment: ["AUTHD_MAX_FRAME_BYTES": "2048", "AUTHD_SOCKET_MODE": "600"], overrides: [:])
        XCTAssertEqual(configuration.maximumFrameBytes, 2048)
        XCTAssertEqual(configuration.socketMode, 0o600)
    }
}
