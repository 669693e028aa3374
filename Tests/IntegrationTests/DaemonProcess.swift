import AuthdClient
import Foundation
import XCTest

/// The real `authd` binary, started on a fresh temporary socket and data folder. Every
/// integration test gets its own through `DaemonProcess.start()`.
final class DaemonProcess: @unchecked Sendable {
    let directory: URL
    let socketPath: String
    let dataPath: String
    let logPath: String
    private(set) var process: Process?
    let extraArguments: [String]

    /// Cheap Argon2 parameters: the tests hash for real, just not slowly. The tests often run
    /// as root, which authd treats as an operator by default; a uid no test runs as stands in,
    /// so that test connections are plain clients unless a test maps them.
    static let cheapHashing = [
        "--set", "argon2_memory_kib=64", "--set", "argon2_iterations=1", "--set", "log_level=debug",
        "--set", "operator_uids=4294967000",
    ]

    static var binary: URL {
        if let override = ProcessInfo.processInfo.environment["AUTHD_BINARY"] {
            return URL(fileURLWithPath: override)
        }
        // The test bundle sits in the build products folder, next to the executables.
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("authd")
    }

    init(directory: URL? = nil, extraArguments: [String] = []) throws {
        let dir = try directory ?? Self.makeDirectory()
        self.directory = dir
        socketPath = dir.appendingPathComponent("s.sock").path
        dataPath = dir.appendingPathComponent("data").path
        logPath = dir.appendingPathComponent("authd.log").path
        self.extraArguments = extraArguments
    }

    /// A fresh folder with a short path: a Unix socket path must stay under 108 bytes.
    static func makeDirectory() throws -> URL {
        let url = URL(fileURLWithPath: "/tmp/authd-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func start(extraArguments: [String] = [], environment: [String: String] = [:]) async throws -> DaemonProcess {
        let daemon = try DaemonProcess(extraArguments: extraArguments)
        try await daemon.launch(environment: environment)
        return daemon
    }

    /// Starts the binary and waits until it answers a health check.
    func launch(environment: [String: String] = [:], waitUntilServing: Bool = true) async throws {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = ["--socket", socketPath, "--data", dataPath] + Self.cheapHashing + extraArguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AUTHD_") }
        env.merge(environment) { $1 }
        process.environment = env
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardError = log
        process.standardOutput = log
        try process.run()
        self.process = process
        guard waitUntilServing else { return }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            guard process.isRunning else {
                throw DaemonTestError("authd exited with \(process.terminationStatus) at start:\n\(log_())")
            }
            if let client = try? await AuthdClient.connect(socketPath: socketPath) {
                let healthy = (try? await client.healthCheck())?.status == "pass"
                await client.close()
                if healthy { return }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DaemonTestError("authd did not start serving within 20 s:\n\(log_())")
    }

    func connect() async throws -> AuthdClient {
        try await AuthdClient.connect(socketPath: socketPath)
    }

    /// Sends `signal` and waits for the process to exit; returns its exit status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM) async throws -> Int32 {
        guard let process else { return 0 }
        if process.isRunning { kill(process.processIdentifier, signal) }
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw DaemonTestError("authd did not stop within 20 s of signal \(signal)")
        }
        self.process = nil
        return process.terminationStatus
    }

    /// Waits for an exited process (one that failed to start) and returns its status.
    func waitForExit(seconds: Double = 20) async throws -> Int32 {
        guard let process else { return 0 }
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        guard !process.isRunning else { throw DaemonTestError("authd still running") }
        self.process = nil
        return process.terminationStatus
    }

    func log_() -> String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    func cleanUp() async {
        _ = try? await stop(signal: SIGKILL)
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A suite whose every test gets its own daemon (started with `daemonArguments`) and one
/// client connected to it.
class ClientTestCase: XCTestCase {
    var daemon: DaemonProcess!
    var client: AuthdClient!

    /// Extra daemon arguments for the whole suite.
    var daemonArguments: [String] { [] }

    override func setUp() async throws {
        daemon = try await DaemonProcess.start(extraArguments: daemonArguments)
        client = try await daemon.connect()
    }

    override func tearDown() async throws {
        await client?.close()
        await daemon?.cleanUp()
    }
}

extension DaemonProcess {
    /// Runs `authctl` (built next to authd) against this daemon's socket.
    func authctl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try runProcess(
            Self.binary.deletingLastPathComponent().appendingPathComponent("authctl"), arguments + ["--socket", socketPath])
    }
}

/// Runs a program to its end; returns its exit status and its merged stdout and stderr.
func runProcess(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

struct DaemonTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Asserts that `body` fails with the daemon error `type` and `code`.
func assertAuthdError<T>(
    _ type: String, _ code: Int, file: StaticString = #filePath, line: UInt = #line,
    _ body: () async throws -> T
) async {
    do {
        _ = try await body()
        XCTFail("expected \(type) (\(code)), but the call succeeded", file: file, line: line)
    } catch let error as AuthdClientError {
        XCTAssertEqual(error.type, type, error.message, file: file, line: line)
        XCTAssertEqual(error.code, code, error.message, file: file, line: line)
    } catch {
        XCTFail("expected \(type) (\(code)), got \(error)", file: file, line: line)
    }
}
