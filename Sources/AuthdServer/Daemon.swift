import AuthdCore
import AuthdStore
import Logging
import NIOPosix
import ServiceLifecycle

/// Wires the store, the domain and the listener together and runs them until SIGTERM or
/// SIGINT: then the listener drains its calls in flight, the store finishes its queued writes,
/// and `run` returns.
public enum Daemon {
    public static func run(_ configuration: DaemonConfiguration, logger: Logger) async throws {
        guard configuration.argon2.memoryKiB >= 8 * configuration.argon2.parallelism else {
            throw DaemonError("argon2_memory_kib must be at least 8 × argon2_parallelism")
        }
        if SwiftRuntime.skipExclusivityChecksInRelease() {
            logger.debug("runtime exclusivity checks off (release build)")
        }
        let store = try LMDBStore(
            directory: configuration.dataDirectory,
            options: LMDBStore.Options(
                mapSizeMiB: configuration.mapSizeMiB, writerNice: configuration.writerNice, prewarm: configuration.prewarmData,
                migrationProgress: { status in SystemdNotifier.extendStartup(by: 30, status: "migrating the store: \(status)") }),
            logger: logger)
        let hashingPool = BlockingPool(
            threads: configuration.hashThreads, niceness: configuration.hashNice, queueLimit: configuration.hashQueueLimit)
        // Nearly every call that hashes writes next (a sign-in's session, a sign-up's user): in
        // a sign-in storm a sign-in's lone write may wait for the one a hash about to end will
        // bring (`WriteCompany`).
        store.letLoneWritesWait(upTo: .microseconds(configuration.commitWaitMicros)) { hashingPool.nextEndExpected() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads)
        // Reads that may take milliseconds or more (`Users/List`, the change log's pages), one at
        // a time, behind the event loops and the writer: a scan of a million users takes about a
        // tenth of a second. At most `Directory.queuedQueries` wait; more are refused with a 503.
        let queryPool = BlockingPool(
            threads: 1, name: "authd-query", niceness: configuration.hashNice, queueLimit: Directory.queuedQueries)
        let directory = try Directory(
            store: store, hasher: PasswordHasher(parameters: configuration.argon2), hashingPool: hashingPool, queryPool: queryPool,
            sessionPolicy: SessionPolicy(
                durationSeconds: configuration.sessionDurationSeconds, limit: configuration.sessionLimit),
            userCacheSize: configuration.userCacheSize, logger: logger)
        let jwt = JWTIssuer(directory: directory)
        try await jwt.start()
        // JWTs not verified lately are verified here, not on the event loops (90 µs each): a
        // flood of forged tokens would stall every call on its loop. Apart from the hashing
        // pool, so that a token's first use does not queue behind a login storm's hashes.
        let verificationPool = BlockingPool(
            threads: configuration.hashThreads, name: "authd-verify", niceness: configuration.hashNice,
            queueLimit: DaemonConfiguration.queuedVerificationsPerThread * configuration.hashThreads)
        let authorizer = Authorizer(
            store: store, peerPolicy: configuration.peerPolicy, jwt: jwt, sessionCacheSize: configuration.sessionCacheSize,
            verificationPool: verificationPool)
        // The sweep's reads yield to everything else (nice 19).
        let sweepPool =
            configuration.expirySweepIntervalSeconds > 0
            ? BlockingPool(threads: 1, name: "authd-sweep", niceness: 19) : nil
        let sweep = sweepPool.map { pool in
            ExpirySweep(
                directory: directory, readPool: pool, changeLogRetentionSeconds: configuration.changeLogRetentionSeconds)
        }
        let server = UnixSocketServer(
            options: UnixSocketServer.Options(
                socketPath: configuration.socketPath, socketMode: mode_t(configuration.socketMode),
                maximumFrameBytes: configuration.maximumFrameBytes),
            methods: { MethodTable(authorizer: authorizer, directory: directory, jwt: jwt, sweep: sweep) }, group: group, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: store)]
        if let sweep {
            services.append(
                .init(
                    service: ExpirySweeper(
                        sweep: sweep, interval: .seconds(configuration.expirySweepIntervalSeconds), logger: logger)))
        }
        services.append(.init(service: server))
        // Shutdown runs in reverse order: the listener drains first, then the sweep stops, then
        // the store closes.
        let serviceGroup = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        var failure: (any Error)?
        do {
            try await serviceGroup.run()
        } catch {
            failure = error
        }
        store.close()
        hashingPool.shutdown()
        verificationPool.shutdown()
        queryPool.shutdown()
        sweepPool?.shutdown()
        try? await group.shutdownGracefully()
        logger.notice("stopped")
        if let failure { throw failure }
    }
}
