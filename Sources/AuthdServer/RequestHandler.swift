import AuthdCore
import AuthdProto
import Logging
import NIOCore
import NIOExtras

/// Serves one connection: decodes each frame into a `Request`, runs its endpoint and writes
/// the `Response`. Immediate answers are flushed once per read batch, so a pipelined burst of
/// calls costs one write syscall; deferred answers are flushed as they complete.
final class RequestHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let methods: MethodTable
    private let peer: PeerCredentials?
    private let logger: Logger
    private var deferredInFlight = 0
    private var quiescing = false
    private var pendingFlush = false

    init(methods: MethodTable, peer: PeerCredentials?, logger: Logger) {
        self.methods = methods
        self.peer = peer
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let request: Authd_V1_Request
        do {
            request = try Authd_V1_Request(serializedBytes: frame.readableBytesSpan)
        } catch {
            // The frame was whole, so the stream is still in step: answer and keep going.
            write(
                context,
                ResponseEncoding.failure(
                    id: 0,
                    error: .argumentInvalid("The frame is not a valid authd.v1.Request message (\(error))."),
                    allocator: context.channel.allocator))
            return
        }
        guard let entry = methods[request.method] else {
            let error = AuthdError(
                type: "general_route_not_found", code: 404,
                message: "Unknown method `\(request.method)`: expected a full rpc name such as `authd.v1.Account/Get`.")
            write(context, ResponseEncoding.failure(id: request.id, error: error, allocator: context.channel.allocator))
            return
        }
        // The caller and its scopes are checked before anything else runs.
        let call: Call
        do {
            call = try methods.authorizer.authorize(RequestContext(request, peer: peer), scopes: entry.scopes)
        } catch {
            writeFailure(context, request, error)
            return
        }
        switch entry.endpoint {
        case .immediate(let run):
            do {
                write(
                    context,
                    ResponseEncoding.success(id: request.id, body: try run(request.body, call), allocator: context.channel.allocator))
            } catch {
                writeFailure(context, request, error)
            }
        case .deferred(let prepare):
            let work: Endpoint.DeferredWork
            do {
                work = try prepare(request.body, call)
            } catch {
            writeFailure(context, request, error)
            return
        }
            deferredInFlight += 1
            let promise = context.eventLoop.makePromise(of: [UInt8].self)
            promise.completeWithTask(work)
            let id = request.id
            let method = request.method
            let logger = self.logger
            promise.futureResult.assumeIsolated().whenComplete { result in
                let allocator = context.channel.allocator
                let response: ByteBuffer
                switch result {
                case .success(let bytes):
                    response = ResponseEncoding.success(id: id, body: bytes, allocator: allocator)
                case .failure(let error):
                    response = ResponseEncoding.failure(
                        id: id, error: wireError(error, method: method, logger: logger), allocator: allocator)
                }
                self.deferredInFlight -= 1
                context.writeAndFlush(self.wrapOutboundOut(response), promise: nil)
                self.closeIfDrained(context)
            }
        }
    }

    private func writeFailure(_ context: ChannelHandlerContext, _ request: Authd_V1_Request, _ error: any Error) {
        write(
            context,
            ResponseEncoding.failure(
                id: request.id, error: wireError(error, method: request.method, logger: logger),
                allocator: context.channel.allocator))
    }

    private func write(_ context: ChannelHandlerContext, _ buffer: ByteBuffer) {
        context.write(wrapOutboundOut(buffer), promise: nil)
        pendingFlush = true
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if pendingFlush {
            pendingFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            closeIfDrained(context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func closeIfDrained(_ context: ChannelHandlerContext) {
        guard quiescing, deferredInFlight == 0, context.channel.isActive else { return }
        if pendingFlush {
            pendingFlush = false
            context.flush()
        }
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tooLarge = error as? FrameDecoder.FrameTooLarge {
            let refusal = AuthdError.argumentInvalid(
                "A frame of \(tooLarge.announced) bytes is larger than the maximum of \(tooLarge.maximum); closing the connection.")
            logger.notice("oversize frame refused", metadata: ["bytes": "\(tooLarge.announced)"])
            let response = ResponseEncoding.failure(id: 0, error: refusal, allocator: context.channel.allocator)
            context.writeAndFlush(wrapOutboundOut(response)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            return
        }
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
