import AuthdCore
import AuthdProto
import AuthdServer
import AuthdStore
import Benchmark
import Foundation
import Logging
import NIOCore
import NIOEmbedded

/// Heap allocations per session validation (`Account/Get` with a session), through exactly the
/// daemon's handlers (frame decoder, request handler, authorizer, method table) on an
/// in-memory channel, against a real LMDB store. Allocation counts do not depend on the
/// machine's speed, so CI checks them against `Benchmarks/Thresholds` (`scripts/bench check`).
///
/// Each call is a read of its own, so each pays for one flush at the end of the loop's turn;
/// on the embedded loop that task costs 5 allocations (its promise and scheduled task), where a
/// daemon's loop pays about one closure per turn for all of its connections' calls. The
/// answers' buffer is the connection's spare, reused from batch to batch (none allocated).
///
/// The names are file names of their thresholds too: no spaces or slashes (the benchmark tool
/// writes them cleaned but reads them verbatim).
let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.mallocCountTotal],
        warmupIterations: 10,
        maxDuration: .seconds(2),
        maxIterations: 2_000,
        // Allocation counts are exact; two allocations of slack absorb the runtime's own caches.
        thresholds: [.mallocCountTotal: .init(absolute: [.p50: 2, .p90: 2])])

    Benchmark("AccountGet_cached_session", configuration: configuration) { benchmark in
        let rig = try ValidationRig.shared(cacheSize: 1_000)
        for _ in benchmark.scaledIterations { blackHole(try rig.call()) }
    }

    Benchmark("AccountGet_session_from_LMDB", configuration: configuration) { benchmark in
        let rig = try ValidationRig.shared(cacheSize: 0)
        for _ in benchmark.scaledIterations { blackHole(try rig.call()) }
    }
}

/// One daemon stack, one signed-in user and a pre-encoded `Account/Get` frame.
final class ValidationRig: @unchecked Sendable {
    // Built once per cache size, before measuring; benchmarks run one at a time.
    nonisolated(unsafe) private static var rigs: [Int: ValidationRig] = [:]

    static func shared(cacheSize: Int) throws -> ValidationRig {
        if let rig = rigs[cacheSize] { return rig }
        let rig = try ValidationRig(cacheSize: cacheSize)
        rigs[cacheSize] = rig
        return rig
    }

    let store: LMDBStore
    let pool: BlockingPool
    let channel = EmbeddedChannel()
    let frame: ByteBuffer

    init(cacheSize: Int) throws {
        let folder = "/tmp/authd-bench-\(UUID().uuidString.prefix(8))"
        // No read of the file at open: its thread's allocations would count if it were late.
        store = try LMDBStore(directory: folder, options: LMDBStore.Options(prewarm: false))
        // The open environment keeps its files through their descriptors and map; unlinked now,
        // nothing is left in /tmp when the benchmark process ends (it never closes the rigs).
        try? FileManager.default.removeItem(atPath: folder)
        pool = BlockingPool(threads: 1)
        let directory = try Directory(store: store, hasher: PasswordHasher(parameters: .testing), hashingPool: pool)
        // The user and session are written straight to the store: the benchmark measures reads.
        let locator: UInt64 = 1_000
        let secret = SecretToken.generateSession(locator: locator)
        var record = UserRecord(id: "bench", createdAt: 1)
        record.email = "bench@example.com"
        record.name = "Bench"
        record.accessedAt = Int64(Date().timeIntervalSince1970 * 1000)
        let user = record
        var sessionRecord = SessionRecord(
            id: "s", userID: "bench", createdAt: 1, expire: Int64.max / 2, provider: "email", secretHash: SecretToken.hash(secret))
        sessionRecord.secretLocator = locator
        let session = sessionRecord
        let written = DispatchSemaphore(value: 0)
        let store = self.store
        Task {
            try await store.write { w in
                try w.insertUser(user)
                try w.insertSession(session)
            }
            written.signal()
        }
        written.wait()
        let authorizer = Authorizer(store: store, sessionCacheSize: cacheSize)
        let methods = MethodTable(authorizer: authorizer, directory: directory, jwt: JWTIssuer(directory: directory))
        try UnixSocketServer.installHandlers(on: channel, methods: methods, peer: nil, logger: Logger(label: "bench"))
        var request = Authd_V1_Request()
        request.id = 7
        request.method = "authd.v1.Account/Get"
        request.credentials.session = secret
        let bytes: [UInt8] = try request.serializedBytes()
        var frame = ByteBuffer()
        frame.writeInteger(UInt32(bytes.count))
        frame.writeBytes(bytes)
        self.frame = frame
        _ = try call()  // fills the cache, when there is one
    }

    struct NoAnswer: Error {}

    func call() throws -> ByteBuffer {
        try channel.writeInbound(frame)
        channel.embeddedEventLoop.run()  // answers are written at the end of the loop's turn
        guard let response = try channel.readOutbound(as: ByteBuffer.self), response.readableBytes > 20 else { throw NoAnswer() }
        return response
    }
}
