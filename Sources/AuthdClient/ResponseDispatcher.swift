import AuthdProto
import Foundation
import Logging
import NIOCore

/// Lives in the client's channel pipeline: numbers outgoing requests, matches each response to
/// its caller by id, and batches flushes so that calls issued together leave in one write.
final class ResponseDispatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var pending: [UInt64: EventLoopPromise<Data>] = [:]
    private var nextID: UInt64 = 1
    private var flushScheduled = false
    private var closedError: AuthdClientError?
    private var context: ChannelHandlerContext?
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Sends one request; `promise` gets the response body or the error. On the event loop.
    func send(_ request: Authd_V1_Request, promise: EventLoopPromise<Data>) {
        guard let context, closedError == nil else {
            promise.fail(closedError ?? .connectionClosed())
            return
        }
        var request = request
        request.id = nextID
        nextID &+= 1
        let bytes: [UInt8]
        do {
            bytes = try request.serializedBytes()
        } catch {
            promise.fail(AuthdClientError.protocolError("cannot encode the request: \(error)"))
            return
        }
        pending[request.id] = promise
        var buffer = context.channel.allocator.buffer(capacity: 4 + bytes.count)
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
        context.write(wrapOutboundOut(buffer), promise: nil)
        if !flushScheduled {
            flushScheduled = true
            // Every call issued before this runs shares the flush.
            context.eventLoop.assumeIsolated().execute {
                self.flushScheduled = false
                self.context?.flush()
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let response: Authd_V1_Response
        do {
            response = try Authd_V1_Response(serializedBytes: frame.readableBytesSpan)
        } catch {
            fail(all: .protocolError("undecodable response from authd: \(error)"), context: context)
            return
        }
        guard let promise = pending.removeValue(forKey: response.id) else {
            // id 0: the daemon could not read a request at all; it names the problem.
            logger.warning(
                "authd answered no pending call",
                metadata: ["id": "\(response.id)", "type": "\(response.error.type)", "message": "\(response.error.message)"])
            return
        }
        if response.hasError {
            promise.fail(
                AuthdClientError(
                    type: response.error.type, code: Int(response.error.code), message: response.error.message))
        } else {
            promise.succeed(response.body)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(all: .connectionClosed(), context: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(all: .connectionClosed("the connection to authd failed: \(error)"), context: context)
    }

    private func fail(all error: AuthdClientError, context: ChannelHandlerContext?) {
        if closedError == nil { closedError = error }
        let waiting = pending
        pending.removeAll()
        for promise in waiting.values { promise.fail(error) }
        context?.close(promise: nil)
    }
}
