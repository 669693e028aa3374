import AuthdClient
import AuthdStore
import Foundation
import XCTest

/// Start, stop, restart, socket ownership and systemd notification of the real binary.
final class LifecycleTests: XCTestCase {
    func testRestartKeepsAccounts() async throws {
        let daemon = try await DaemonProcess.start()
        addTeardownBlock { await daemon.cleanUp() }
        var client = try await daemon.connect()
        _ = try await client.createAccount(userID: "durable", email: "durable@example.com", password: "password-1")
        let before = try await client.createEmailPasswordSession(email: "durable@example.com", password: "password-1")
        await client.close()

        let status = try await daemon.stop(signal: SIGTERM)
        XCTAssertEqual(status, 0, "SIGTERM is a clean shutdown:\n\(daemon.log_())")
        XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.socketPath), "the socket file is removed on exit")

        try await daemon.launch()
        client = try await daemon.connect()
        let after = try await client.createEmailPasswordSession(email: "durable@example.com", password: "password-1")
        XCTAssertEqual(after.userID, "durable")
        let me = try await client.getAccount(credentials: .session(before.secret))
        XCTAssertEqual(me.id, "durable", "sessions survive a restart")
        await client.close()
        let stopStatus = try await daemon.stop(signal: SIGINT)
        XCTAssertEqual(stopStatus, 0)
    }

    func testRestartKeepsRateLimits() async throws {
        let daemon = try await DaemonProcess.start()
        addTeardownBlock { await daemon.cleanUp() }
        var client = try await daemon.connect()
        _ = try await client.createAccount(userID: "limited", email: "limited@example.com", password: "password-1")
        for _ in 0..<10 {
            await assertAuthdError("user_invalid_credentials", 401) {
                try await client.createEmailPasswordSession(email: "limited@example.com", password: "wrong-password")
            }
        }
        await client.close()
        let status = try await daemon.stop()
        XCTAssertEqual(status, 0)
        try await daemon.launch()
        client = try await daemon.connect()
        let restarted = client
        await assertAuthdError("general_rate_limit_exceeded", 429) {
            try await restarted.createEmailPasswordSession(email: "limited@example.com", password: "password-1")
        }
        await client.close()
    }

    func testSocketFileMode() async throws {
        let daemon = try await DaemonProcess.start()
        addTeardownBlock { await daemon.cleanUp() }
        let attributes = try FileManager.default.attributesOfItem(atPath: daemon.socketPath)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o660)
    }

    func testLiveSocketIsNotStolenAndStaleOneIsReplaced() async throws {
        let first = try await DaemonProcess.start()
        addTeardownBlock { await first.cleanUp() }

        // A second daemon on the same socket (its own data folder) must refuse to start.
        let secondDirectory = first.directory.appendingPathComponent("second")
        try FileManager.default.createDirectory(at: secondDirectory, withIntermediateDirectories: true)
        let thief = try DaemonProcess(directory: secondDirectory, extraArguments: ["--socket", first.socketPath])
        try await thief.launch(waitUntilServing: false)
        let status = try await thief.waitForExit()
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(thief.log_().contains("another process is serving on"), thief.log_())
        let client = try await first.connect()
        let firstHealth = try await client.healthCheck().status
        XCTAssertEqual(firstHealth, "pass", "the first daemon keeps its socket")
        await client.close()

        // A daemon killed outright leaves its socket file behind; the next start replaces it.
        let killedStatus = try await first.stop(signal: SIGKILL)
        XCTAssertEqual(killedStatus, SIGKILL)
        XCTAssertTrue(FileManager.default.fileExists(atPath: first.socketPath))
        try await first.launch()
        let again = try await first.connect()
        let restartedHealth = try await again.healthCheck().status
        XCTAssertEqual(restartedHealth, "pass")
        await again.close()
    }

    /// The group commit answers a write only once its batch has committed: a daemon killed
    /// (SIGKILL, no shutdown) in the middle of a storm of writes from 32 callers loses none
    /// that it answered. Each caller creates a user and then a session for that user, two
    /// writes in two batches. The kill is sent by the caller whose answer is the 300th, the
    /// moment it has it, so that it lands while the next batches are committing. After the
    /// restart every answered user is there, its email still taken, and every answered
    /// session still signs its user in.
    func testAKillDuringAWriteStormLosesNoAnsweredWrite() async throws {
        let daemon = try await DaemonProcess.start(
            extraArguments: ["--set", "peer_uid.\(getuid())=users.read,users.write,sessions.write"])
        addTeardownBlock { await daemon.cleanUp() }
        let pid = try XCTUnwrap(daemon.process?.processIdentifier)
        let answered = AnsweredWrites(killing: pid, after: 300)
        var clients: [AuthdClient] = []
        for _ in 0..<4 { clients.append(try await daemon.connect()) }
        let writers = (0..<32).map { writer in
            let client = clients[writer % clients.count]
            return Task {
                // Bounded: at most 200 users per caller; the kill ends the loop much sooner.
                for index in 0..<200 {
                    let id = "w\(writer)x\(index)"
                    guard (try? await client.createUser(userID: id, email: "\(id)@example.com")) != nil else { return }
                    await answered.user(id)
                    guard let session = try? await client.createUserSession(userID: id) else { return }
                    await answered.session(id, secret: session.secret)
                }
            }
        }
        for writer in writers { await writer.value }
        for client in clients { await client.close() }
        let status = try await daemon.stop(signal: SIGKILL)
        XCTAssertEqual(status, SIGKILL, "killed in the storm")
        let (users, sessions) = await answered.all
        XCTAssertGreaterThanOrEqual(users.count + sessions.count, 300, "the storm ran before the kill")

        try await daemon.launch()
        let client = try await daemon.connect()
        for id in users {
            let user = try await client.getUser(userID: id)
            XCTAssertEqual(user.email, "\(id)@example.com")
            await assertAuthdError("user_already_exists", 409) {
                try await client.createUser(email: "\(id)@example.com")
            }
        }
        for (id, secret) in sessions {
            let me = try await client.getAccount(credentials: .session(secret))
            XCTAssertEqual(me.id, id)
        }
        // The store takes writes again after the restart.
        _ = try await client.createUser(userID: "after-the-kill")
        await client.close()
    }

    /// A stopping daemon reads no more calls: those in flight drain and each connection
    /// closes, even while a client keeps pipelining slow calls (forged JWTs, each verified on
    /// another thread), which before kept the daemon draining for as long as they came.
    func testAStoppingDaemonDrainsWhileAClientKeepsSendingSlowCalls() async throws {
        let daemon = try await DaemonProcess.start(
            extraArguments: ["--set", "peer_uid.\(getuid())=sessions.write,users.write,settings.read"])
        addTeardownBlock { await daemon.cleanUp() }
        let load = Process()
        load.executableURL = DaemonProcess.binary.deletingLastPathComponent().appendingPathComponent("authd-load")
        // Bounded: 40 s, twice what `stop` waits for the daemon to exit.
        load.arguments = [
            "validate", "--as", "forged-jwt", "--users", "4", "--connections", "4", "--pipeline", "64", "--duration", "40",
            "--warm-up", "0", "--socket", daemon.socketPath, "--json",
        ]
        load.standardOutput = FileHandle.nullDevice
        load.standardError = FileHandle.nullDevice
        try load.run()
        defer {
            if load.isRunning { load.terminate() }
            load.waitUntilExit()
        }
        let client = try await daemon.connect()
        let deadline = Date().addingTimeInterval(20)
        var refused = try await client.stats().jwtsRefused
        while refused < 1000, Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
            refused = try await client.stats().jwtsRefused
        }
        XCTAssertGreaterThanOrEqual(refused, 1000, "the flood is on")
        await client.close()
        // `stop` throws if the daemon has not exited 20 s after SIGTERM.
        let status = try await daemon.stop()
        XCTAssertEqual(status, 0, daemon.log_())
        XCTAssertTrue(daemon.log_().contains("listener stopped"), daemon.log_())
    }

    /// A data file that reaches `map_size_mib` refuses writes with a typed error (503) and
    /// changes nothing; the daemon keeps serving reads and shuts down cleanly, and once
    /// restarted with a larger map it takes writes again with every answered one still there.
    /// The folder is first filled to about seven eighths of the smallest map (16 MiB) with
    /// users of 60 KB of preferences, written through the store itself (through the API, a
    /// debug build takes about 20 ms per such write); about thirty more through the API fill
    /// it.
    func testAFullDataFileRefusesWritesWithATypedErrorAndKeepsServing() async throws {
        let access = ["--set", "peer_uid.\(getuid())=users.read,users.write"]
        let daemon = try DaemonProcess(extraArguments: access + ["--set", "map_size_mib=16"])
        addTeardownBlock { await daemon.cleanUp() }
        let prefs = "{\"blob\":\"\(String(repeating: "x", count: 60_000))\"}"
        let store = try LMDBStore(directory: daemon.dataPath, options: .init(mapSizeMiB: 16, prewarm: false))
        for chunk in 0..<12 {
            try await store.write { writer in
                for index in 0..<20 {
                    var user = UserRecord(id: "pre\(chunk * 20 + index)", createdAt: 1_000)
                    user.prefs = prefs
                    try writer.insertUser(user)
                }
            }
        }
        store.close()
        try await daemon.launch()
        var client = try await daemon.connect()

        var answered: [String] = []
        var refused: (id: String, step: String, error: AuthdClientError)?
        // Bounded: the map has room for a few dozen more such users.
        for index in 0..<500 {
            let id = "f\(index)"
            do {
                _ = try await client.createUser(userID: id)
            } catch let error as AuthdClientError {
                refused = (id, "create", error)
                break
            }
            do {
                _ = try await client.updateUserPrefs(userID: id, prefs: prefs)
            } catch let error as AuthdClientError {
                refused = (id, "prefs", error)
                break
            }
            answered.append(id)
        }
        let (refusedID, step, error) = try XCTUnwrap(refused, "the data file never filled")
        XCTAssertEqual(error.code, 503, "\(error)")
        XCTAssertTrue(error.message.contains("data file is full"), error.message)
        XCTAssertFalse(answered.isEmpty, "the daemon took writes before the file filled")

        // Still serving, and the refused write changed nothing.
        let health = try await client.healthCheck()
        XCTAssertEqual(health.status, "pass")
        let lastPrefs = try await client.getUserPrefs(userID: try XCTUnwrap(answered.last))
        XCTAssertEqual(lastPrefs, prefs)
        let prefilled = try await client.getUserPrefs(userID: "pre0")
        XCTAssertEqual(prefilled, prefs)
        if step == "create" {
            await assertAuthdError("user_not_found", 404) { try await client.getUser(userID: refusedID) }
        } else {
            let refusedPrefs = try await client.getUserPrefs(userID: refusedID)
            XCTAssertEqual(refusedPrefs, "{}", "the refused preferences were not stored")
        }
        await client.close()
        let status = try await daemon.stop()
        XCTAssertEqual(status, 0, "a full store still shuts down cleanly:\n\(daemon.log_())")

        // A larger map, on the same folder: every answered write is there and writes go on.
        let larger = try DaemonProcess(directory: daemon.directory, extraArguments: access + ["--set", "map_size_mib=64"])
        addTeardownBlock { await larger.cleanUp() }
        try await larger.launch()
        client = try await larger.connect()
        for id in answered {
            let stored = try await client.getUserPrefs(userID: id)
            XCTAssertEqual(stored, prefs, id)
        }
        if step == "create" { _ = try await client.createUser(userID: refusedID) }
        let updated = try await client.updateUserPrefs(userID: refusedID, prefs: prefs)
        XCTAssertEqual(updated, prefs)
        await client.close()
    }

    func testSecondDaemonOnTheSameDataFolderIsRefused() async throws {
        let first = try await DaemonProcess.start()
        addTeardownBlock { await first.cleanUp() }
        let other = try DaemonProcess(
            directory: first.directory,
            extraArguments: ["--socket", first.directory.appendingPathComponent("other.sock").path])
        try await other.launch(waitUntilServing: false)
        let otherStatus = try await other.waitForExit()
        XCTAssertNotEqual(otherStatus, 0)
        XCTAssertTrue(other.log_().contains("in use by another authd"), other.log_())
    }

    func testBadConfigurationIsAClearError() async throws {
        let daemon = try DaemonProcess(extraArguments: ["--set", "session_limit=1000"])
        addTeardownBlock { await daemon.cleanUp() }
        try await daemon.launch(waitUntilServing: false)
        let exitStatus = try await daemon.waitForExit()
        XCTAssertNotEqual(exitStatus, 0)
        XCTAssertTrue(daemon.log_().contains("session_limit must be a whole number in 0...100"), daemon.log_())
    }

    func testConfigFileAndEnvironment() async throws {
        let directory = try DaemonProcess.makeDirectory()
        let config = directory.appendingPathComponent("authd.conf")
        try """
            # authd test config
            session_limit = 1
            socket_mode = 600
            """.write(to: config, atomically: true, encoding: .utf8)
        let daemon = try DaemonProcess(directory: directory, extraArguments: ["--config", config.path])
        addTeardownBlock { await daemon.cleanUp() }
        try await daemon.launch(environment: ["AUTHD_SESSION_DURATION": "120"])
        let mode = try FileManager.default.attributesOfItem(atPath: daemon.socketPath)[.posixPermissions] as? NSNumber
        XCTAssertEqual(mode?.intValue, 0o600)
        let client = try await daemon.connect()
        _ = try await client.createAccount(userID: "cfg", email: "cfg@example.com", password: "password-1")
        let first = try await client.createEmailPasswordSession(email: "cfg@example.com", password: "password-1")
        XCTAssertEqual(first.expire - first.createdAt, 120_000, "session_duration from the environment")
        let second = try await client.createEmailPasswordSession(email: "cfg@example.com", password: "password-1")
        await assertAuthdError("general_unauthorized_scope", 401) {
            try await client.getAccount(credentials: .session(first.secret))
        }
        let survivorID = try await client.getAccount(credentials: .session(second.secret)).id
        XCTAssertEqual(survivorID, "cfg")
        await client.close()
    }

    func testNotifiesSystemdWhenReadyAndStopping() async throws {
        let directory = try DaemonProcess.makeDirectory()
        let notifyPath = directory.appendingPathComponent("notify.sock").path
        let notify = try DatagramListener(path: notifyPath)
        let daemon = try DaemonProcess(directory: directory)
        addTeardownBlock { await daemon.cleanUp() }
        try await daemon.launch(environment: ["NOTIFY_SOCKET": notifyPath])
        let ready = try notify.receive()
        XCTAssertTrue(ready.contains("READY=1"), ready)
        let stopStatus = try await daemon.stop(signal: SIGTERM)
        XCTAssertEqual(stopStatus, 0)
        let stopping = try notify.receive()
        XCTAssertTrue(stopping.contains("STOPPING=1"), stopping)
    }
}

/// A Unix datagram socket standing in for systemd's `$NOTIFY_SOCKET`.
final class DatagramListener {
    private let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw DaemonTestError("bind \(path) failed: \(errno)") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func receive() throws -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { throw DaemonTestError("no notification within 10 s") }
        return String(decoding: buffer[..<n], as: UTF8.self)
    }
}

/// The writes the daemon answered, from many callers at once; sends SIGKILL to the daemon as
/// soon as `threshold` are in.
private actor AnsweredWrites {
    private let pid: pid_t
    private let threshold: Int
    private var users: [String] = []
    private var sessions: [(String, String)] = []

    init(killing pid: pid_t, after threshold: Int) {
        self.pid = pid
        self.threshold = threshold
    }

    func user(_ id: String) {
        users.append(id)
        killAtThreshold()
    }

    func session(_ id: String, secret: String) {
        sessions.append((id, secret))
        killAtThreshold()
    }

    private func killAtThreshold() {
        if users.count + sessions.count == threshold { kill(pid, SIGKILL) }
    }

    var all: (users: [String], sessions: [(String, String)]) { (users, sessions) }
}
