import ArgumentParser
import AuthdServer
import Foundation
import Logging

/// `authd`: the authentication daemon.
@main
struct AuthdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authd",
        abstract: "Authentication daemon serving Appwrite-style accounts and sessions over a Unix socket.",
        discussion: "Every option can also be set in the config file or as AUTHD_<KEY> in the environment; see the README.")

    @Option(help: "Config file of `key = value` lines (also AUTHD_CONFIG).")
    var config: String?

    @Option(help: "Unix socket to listen on (default authd.sock).")
    var socket: String?

    @Option(help: "Data folder holding the LMDB environment (default authd-data).")
    var data: String?

    @Option(name: .customLong("set"), help: "Any config key, as key=value; repeatable.")
    var settings: [String] = []

    func run() async throws {
        var overrides: [String: String] = [:]
        for setting in settings {
            guard let equals = setting.firstIndex(of: "=") else {
                throw ValidationError("--set takes key=value, not `\(setting)`")
            }
            overrides[String(setting[..<equals])] = String(setting[setting.index(after: equals)...])
        }
        if let socket { overrides["socket"] = socket }
        if let data { overrides["data"] = data }
        let environment = ProcessInfo.processInfo.environment
        let configuration: DaemonConfiguration
        do {
            configuration = try DaemonConfiguration.load(
                file: config ?? environment["AUTHD_CONFIG"], environment: environment, overrides: overrides)
        } catch {
            throw ValidationError("\(error)")
        }
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "authd")
        do {
            try await Daemon.run(configuration, logger: logger)
        } catch {
            logger.critical("authd cannot run: \(error)")
            throw ExitCode(1)
        }
    }
}
