import AuthdProto
import Foundation
import Logging
import NIOCore

/// Lives in the client's channel pipeline: sends the calls the outbox gathered, matches each
/// response to its caller by id, and fails every waiting call when the connection ends.
final class ResponseDispatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var pending: [UInt64: UnsafeContinuation<Data, any Error>] = [:]
    private var closedError: AuthdClientError?
    private var context: ChannelHandlerContext?
    private let outbox: Outbox
    private let logger: Logger

    init(outbox: Outbox, logger: Logger) {
        self.outbox = outbox
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Sends every call in the outbox, in one write and one flush. On the event loop.
    func drainOutbox() {
        let (frames, waiting) = outbox.drain()
        guard !waiting.isEmpty else { return }
        guard let context, closedError == nil else {
            let error = closedError ?? .connectionClosed()
            for call in waiting { call.continuation.resume(throwing: error) }
            return
        }
        for call in waiting { pending[call.id] = call.continuation }
        context.writeAndFlush(wrapOutboundOut(frames), promise: nil)
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
        guard let continuation = pending.removeValue(forKey: response.id) else {
            // id 0: the daemon could not read a request at all; it names the problem.
            logger.warning(
                "authd answered no pending call",
                metadata: ["id": "\(response.id)", "type": "\(response.error.type)", "message": "\(response.error.message)"])
            return
        }
        if response.hasError {
            continuation.resume(
                throwing: AuthdClientError(
                    type: response.error.type, code: Int(response.error.code), message: response.error.message))
        } else {
            continuation.resume(returning: response.body)
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
        for continuation in waiting.values { continuation.resume(throwing: error) }
        for call in outbox.close(closedError!) { call.continuation.resume(throwing: error) }
        context?.close(promise: nil)
    }
}
