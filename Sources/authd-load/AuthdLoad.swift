import ArgumentParser
import Synchronization
import AuthdClient
import Foundation

/// `authd-load`: measures authd's throughput and latency over its socket.
@main
struct AuthdLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authd-load",
        abstract: "Load-tests a running authd over its Unix socket.",
        subcommands: [Validate.self, Login.self])
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

    @Option(help: "Users to create for the run.")
    var users = 100

    @Flag(help: "Print the result as one JSON object.")
    var json = false

    func connect() async throws -> [AuthdClient] {
        var clients: [AuthdClient] = []
        for _ in 0..<max(1, connections) { clients.append(try await AuthdClient.connect(socketPath: socket)) }
        return clients
    }

    var run: LoadRun {
        LoadRun(
            connections: max(1, connections), pipeline: max(1, pipeline), duration: .milliseconds(Int(duration * 1000)),
            warmUp: .milliseconds(Int(warmUp * 1000)), maximumCalls: maxCalls)
    }

    /// Creates `users` accounts with a run-specific email prefix, `parallel` at a time.
    func createUsers(_ client: AuthdClient, password: String) async throws -> [String] {
        let prefix = "load-\(UInt32.random(in: 0...UInt32.max))"
        let emails = (0..<max(1, users)).map { "\(prefix)-\($0)@load.example" }
        try await forEachConcurrently(emails) { email in
            _ = try await client.createAccount(email: email, password: password)
        }
        return emails
    }

    func forEachConcurrently(_ items: [String], _ body: @escaping @Sendable (String) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var iterator = items.makeIterator()
            for _ in 0..<32 {
                guard let item = iterator.next() else { break }
                group.addTask { try await body(item) }
            }
            while try await group.next() != nil {
                if let item = iterator.next() { group.addTask { try await body(item) } }
            }
        }
    }
}

struct Validate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Session validation: Account/Get with session credentials, as fast as the daemon answers.")

    @OptionGroup var options: CommonOptions

    func run() async throws {
        let clients = try await options.connect()
        let password = "load-password-1"
        let emails = try await options.createUsers(clients[0], password: password)
        let secrets = SecretList()
        try await options.forEachConcurrently(emails) { email in
            let session = try await clients[0].createEmailPasswordSession(email: email, password: password)
            secrets.append(session.secret)
        }
        let all = secrets.values
        if !options.json { print("validate: \(all.count) sessions; \(options.connections) connections × \(options.pipeline) in flight") }
        let result = await options.run.run(clients: clients, progress: !options.json) { worker, client in
            _ = try await client.getAccount(credentials: .session(all[worker % all.count]))
        }
        print(result.report(scenario: "validate", json: options.json))
        for client in clients { await client.close() }
    }
}

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Email/password logins (CreateEmailPasswordSession): Argon2 verification plus a durable session write.")

    @OptionGroup var options: CommonOptions

    func run() async throws {
        let clients = try await options.connect()
        let password = "load-password-1"
        let emails = try await options.createUsers(clients[0], password: password)
        if !options.json { print("login: \(emails.count) users; \(options.connections) connections × \(options.pipeline) in flight") }
        let result = await options.run.run(clients: clients, progress: !options.json) { worker, client in
            _ = try await client.createEmailPasswordSession(email: emails[worker % emails.count], password: password)
        }
        print(result.report(scenario: "login", json: options.json))
        for client in clients { await client.close() }
    }
}

/// Collects strings from concurrent tasks.
final class SecretList: Sendable {
    private let storage = Mutex<[String]>([])
    func append(_ value: String) { storage.withLock { $0.append(value) } }
    var values: [String] { storage.withLock { $0 } }
}
