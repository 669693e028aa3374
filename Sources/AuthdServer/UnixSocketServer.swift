import AuthdCore
import Foundation
import Logging
import NIOCore
import NIOExtras
import NIOPosix
import ServiceLifecycle

/// The listener: a SwiftNIO server on a Unix domain socket. On graceful shutdown it stops
/// accepting, lets every connection finish its calls in flight, then removes the socket file.
public final class UnixSocketServer: Service, Sendable {
    public struct Options: Sendable {
        public var socketPath: String
        /// Permission bits of the socket file: who may connect.
        public var socketMode: mode_t = 0o660
        public var maximumFrameBytes: Int = 4 << 20

        public init(socketPath: String, socketMode: mode_t = 0o660, maximumFrameBytes: Int = 4 << 20) {
            self.socketPath = socketPath
            self.socketMode = socketMode
            self.maximumFrameBytes = maximumFrameBytes
        }
    }

    private let options: Options
    private let makeMethods: @Sendable () -> MethodTable
    private let group: any EventLoopGroup
    private let logger: Logger

    /// `makeMethods` is called once per event loop: each loop's connections share a table of
    /// their own, so that the counts of its entries and closures, taken on every call, stay in
    /// that loop's CPU cache instead of bouncing between the loops' cores.
    public init(options: Options, methods makeMethods: @escaping @Sendable () -> MethodTable, group: any EventLoopGroup, logger: Logger) {
        self.options = options
        self.makeMethods = makeMethods
        self.group = group
        self.logger = logger
    }

    public func run() async throws {
        try Self.claimSocketPath(options.socketPath)
        let quiescing = ServerQuiescingHelper(group: group)
        let methods = PerLoop(group: group) { _ in makeMethods() }
        let logger = self.logger
        let maximumFrameBytes = options.maximumFrameBytes
        let shared = PerLoop(group: group) { LoopShared(eventLoop: $0, authorizer: methods[$0]!.authorizer) }
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.writeBufferWaterMark, value: Self.unreadAnswersWaterMark)
            .childChannelInitializer { channel in
                Self.peerCredentials(of: channel).flatMapThrowing { peer in
                    try Self.installHandlers(
                        on: channel, methods: methods[channel.eventLoop]!, peer: peer, logger: logger, maximumFrameBytes: maximumFrameBytes,
                        shared: shared)
                }
            }
            .bind(unixDomainSocketPath: options.socketPath, cleanupExistingSocketFile: false)
            .get()
        guard chmod(options.socketPath, options.socketMode) == 0 else {
            try? await channel.close()
            throw DaemonError("cannot set the mode of \(options.socketPath): \(String(cString: strerror(errno)))")
        }
        logger.notice("listening", metadata: ["socket": "\(options.socketPath)"])
        SystemdNotifier.ready(status: "serving on \(options.socketPath)")

        try? await gracefulShutdown()

        SystemdNotifier.stopping()
        logger.notice("draining connections")
        let drained = group.next().makePromise(of: Void.self)
        quiescing.initiateShutdown(promise: drained)
        try? await drained.futureResult.get()
        unlink(options.socketPath)
        logger.notice("listener stopped")
    }

    /// A connection's answers that may wait unread past the socket's buffer: above `high` its
    /// reading pauses, and it resumes once the client has read them down to `low`
    /// (`RequestHandler`). Past what a batch of pipelined answers takes, so a client that reads
    /// as it sends never meets it.
    static let unreadAnswersWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 64 << 10, high: 256 << 10)

    /// Sets up a connection's pipeline: frames in, calls answered. Public so that benchmarks can
    /// drive exactly the daemon's handlers on an in-memory channel (whose loop must then be run
    /// for the answers to be written). Call on the channel's loop.
    public static func installHandlers(
        on channel: any Channel, methods: MethodTable, peer: PeerCredentials?, logger: Logger, maximumFrameBytes: Int = 4 << 20
    ) throws {
        try installHandlers(
            on: channel, methods: methods, peer: peer, logger: logger, maximumFrameBytes: maximumFrameBytes, shared: nil)
    }

    static func installHandlers(
        on channel: any Channel, methods: MethodTable, peer: PeerCredentials?, logger: Logger, maximumFrameBytes: Int,
        shared: PerLoop<LoopShared>?
    ) throws {
        channel.eventLoop.preconditionInEventLoop()
        // A loop outside the server's group (tests, benchmarks) gets parts of its own per connection.
        let loopShared = shared?[channel.eventLoop] ?? LoopShared(eventLoop: channel.eventLoop, authorizer: methods.authorizer)
        try channel.pipeline.syncOperations.addHandler(
            RequestHandler(
                methods: methods, peer: peer, logger: logger, maximumFrameBytes: maximumFrameBytes, shared: loopShared))
    }

    /// The connected process's uid, gid and pid (SO_PEERCRED); nil when the socket cannot say.
    static func peerCredentials(of channel: any Channel) -> EventLoopFuture<PeerCredentials?> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(nil)
        }
        let future: EventLoopFuture<LinuxPeerCredentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return future.map { Optional(PeerCredentials(uid: $0.uid, gid: $0.gid, pid: $0.pid)) }
            .recover { _ -> PeerCredentials? in nil }
    }

    /// Linux's `struct ucred` (glibc hides it behind _GNU_SOURCE), as SO_PEERCRED fills it.
    struct LinuxPeerCredentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    /// Makes `path` free for binding: a stale socket file left by a dead daemon is removed; a
    /// socket some process still listens on is not taken over; anything else is refused.
    static func claimSocketPath(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }  // nothing there
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw DaemonError("\(path) exists and is not a socket; refusing to replace it")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DaemonError("socket(): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw DaemonError("the socket path \(path) is longer than a Unix socket path may be")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc == 0 {
            throw DaemonError("another process is serving on \(path); stop it or choose another socket")
        }
        guard errno == ECONNREFUSED else {
            throw DaemonError("cannot probe \(path): \(String(cString: strerror(errno)))")
        }
        guard unlink(path) == 0 else {
            throw DaemonError("cannot remove the stale socket \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// A start-up failure of the daemon, with a message for the operator.
public struct DaemonError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
