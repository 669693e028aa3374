import AuthdEventLoops
import AuthdProto
import Foundation
import Logging
import NIOCore
import NIOExtras
import NIOPosix

/// A connection to authd. One connection carries many calls at once: calls made concurrently
/// (from many tasks) are pipelined, and each awaits its own answer.
///
/// ```swift
/// let authd = try await AuthdClient.connect(socketPath: "/run/authd/authd.sock")
/// let session = try await authd.createEmailPasswordSession(email: "ada@example.com", password: "correct horse")
/// let me = try await authd.getAccount(credentials: .session(session.secret))
/// ```
public final class AuthdClient: Sendable {
    private let channel: any Channel
    private let dispatcher: NIOLoopBound<ResponseDispatcher>
    private let outbox: Outbox
    private let loopExecutor: EventLoopTaskExecutor

    /// For `connect`, and for tests that put the dispatcher on a channel of their own.
    init(channel: any Channel, dispatcher: NIOLoopBound<ResponseDispatcher>, outbox: Outbox) {
        self.channel = channel
        self.dispatcher = dispatcher
        self.outbox = outbox
        self.loopExecutor = EventLoopTaskExecutor(channel.eventLoop)
    }

    /// Runs a task's jobs on this connection's event loop. A task that prefers it
    /// (`withTaskExecutorPreference(authd.taskExecutor) { ... }`, or `Task(executorPreference:)`)
    /// calls authd without a hand-off between threads: its request leaves, and its answer resumes
    /// it, on the thread that does the connection's I/O. Otherwise each call crosses from the
    /// task's thread to the loop's and back, two wake-ups on an idle machine. Meant for tasks
    /// that do little between calls; such a task must never block, since the connection's I/O
    /// waits for it.
    public var taskExecutor: any TaskExecutor { loopExecutor }

    /// Connects to the daemon's Unix socket.
    /// - Parameters:
    ///   - socketPath: the daemon's socket.
    ///   - maximumFrameBytes: the largest response accepted.
    ///   - eventLoopGroup: where the connection's I/O runs; the shared singleton by default.
    ///   - logger: receives connection-level events.
    public static func connect(
        socketPath: String, maximumFrameBytes: Int = 16 << 20,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "authd.client")
    ) async throws -> AuthdClient {
        let outbox = Outbox(allocator: ByteBufferAllocator())
        do {
            let channel = try await ClientBootstrap(group: eventLoopGroup)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(
                            ByteToMessageHandler(
                                LengthFieldBasedFrameDecoder(lengthFieldBitLength: .fourBytes),
                                maximumBufferSize: maximumFrameBytes + 4),
                            ResponseDispatcher(outbox: outbox, logger: logger))
                    }
                }
                .connect(unixDomainSocketPath: socketPath)
                .get()
            let dispatcher = try await channel.eventLoop.submit {
                NIOLoopBound(
                    try channel.pipeline.syncOperations.handler(type: ResponseDispatcher.self),
                    eventLoop: channel.eventLoop)
            }.get()
            return AuthdClient(channel: channel, dispatcher: dispatcher, outbox: outbox)
        } catch let error as AuthdClientError {
            throw error
        } catch {
            throw AuthdClientError.connectionClosed("cannot connect to authd at \(socketPath): \(error)")
        }
    }

    /// Closes the connection; calls still waiting fail with `client_connection_closed`.
    public func close() async {
        try? await channel.close()
    }

    /// Calls any rpc by its full name, e.g. `authd.v1.Account/Get`. The typed methods use this.
    /// - Parameters:
    ///   - method: the rpc's full name.
    ///   - input: the rpc's input message.
    ///   - credentials: who the call is made for.
    ///   - client: the end user's client, relayed.
    ///   - output: the rpc's output message type.
    public func call<Input: SwiftProtobuf.Message, Output: SwiftProtobuf.Message>(
        _ method: String, _ input: Input, credentials: Credentials = .none, client: ClientInfo? = nil,
        returning output: Output.Type
    ) async throws -> Output {
        var request = Authd_V1_Request()
        request.method = method
        request.body = try input.serializedData()
        if let wire = credentials.wire { request.credentials = wire }
        if let client {
            request.client.ip = client.ip
            request.client.userAgent = client.userAgent
            request.client.locale = client.locale
        }
        let body = try await send(request)
        do {
            return try Output(serializedBytes: body)
        } catch {
            throw AuthdClientError.protocolError("undecodable \(Output.protoMessageName) from \(method): \(error)")
        }
    }

    /// Sends a request envelope as is (the id is assigned here) and returns the response body.
    /// For tools and tests that craft requests by hand.
    public func send(_ request: Authd_V1_Request) async throws -> Data {
        let id = outbox.makeID()
        var request = request
        request.id = id
        // Encoded here, on the caller's thread; the loop only writes the bytes.
        let envelope: [UInt8]
        do {
            envelope = try request.serializedBytes()
        } catch {
            throw AuthdClientError.protocolError("cannot encode the request: \(error)")
        }
        return try await withUnsafeThrowingContinuation { continuation in
            if outbox.post(envelope, id: id, continuation: continuation) {
                let dispatcher = self.dispatcher
                channel.eventLoop.execute { dispatcher.value.drainOutbox() }
            }
        }
    }
}
