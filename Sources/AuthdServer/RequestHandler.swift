import AuthdCore
import AuthdEventLoops
import AuthdProto
import Logging
import NIOCore
import NIOExtras
import Synchronization

/// Serves one connection: splits the byte stream into frames (a 4-byte big-endian length, then
/// that many bytes of `Request`), runs each call's endpoint and writes its `Response`.
/// Immediate answers to one read batch of pipelined calls are encoded into one buffer and
/// written with one write and one flush; deferred answers run as tasks on the connection's
/// loop, and those that complete together are written the same way.
///
/// The framing is done here rather than by a ByteToMessageHandler in front: frames are read in
/// one loop over the batch, with no pipeline hop or generic decoder per call (measured: a
/// tenth of the daemon's time per session check). A frame above `maximumFrameBytes` is refused
/// at its header, before anything is buffered for it, and the connection ends once the refusal
/// is written.
///
/// A connection's reading pauses while it has `maximumDeferredCalls` calls awaiting the writer,
/// a hashing thread or a verification thread, and resumes once half of them have been
/// answered: the frames of a client that pipelines faster than they are served wait in the
/// socket, not in the daemon's memory. It pauses too while the channel is not writable, its
/// answers unread past the socket's buffer and the channel's high water mark, and resumes once
/// the client has read them down to the low one: a client that sends calls and does not read
/// the answers cannot fill the daemon's memory with them either.
final class RequestHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The deferred calls a connection may have in flight before its reading pauses: far above
    /// what a client waiting on its answers has (a login storm's 4 × 4), and at most a few
    /// megabytes of tasks and frames.
    static let maximumDeferredCalls = 1024
    /// Times a connection's reading paused for its deferred calls, over every connection since start.
    static let pausedReads = Atomic<UInt64>(0)
    /// Times a connection's reading paused for its unread answers, over every connection since start.
    static let pausedReadsUnread = Atomic<UInt64>(0)

    private let methods: MethodTable
    private let peer: PeerCredentials?
    private let logger: Logger
    private let maximumFrameBytes: Int
    private let flusher: AnswerFlusher
    /// This loop's front of the session cache, which every call's credential is checked through.
    private let sessionFront: SessionCacheFront?
    private let apiKeyFront: ApiKeyFront?
    private var deferredInFlight = 0
    /// A read the channel asked for and that waits for deferred calls to end, or for the client
    /// to read its answers.
    private var readPaused = false
    /// The channel's writability, as its last change said: kept here so that deciding to read
    /// does not go through the channel on every batch.
    private var writable = true
    private var quiescing = false
    private var refused = false
    /// The start of a frame that has not arrived whole yet.
    private var partialFrame: ByteBuffer?
    /// Answers not yet written: the immediate ones of the current read batch and deferred ones
    /// that completed since the last flush.
    private var answers: ByteBuffer?
    /// The last batch's buffer, for the next batch: written at once (as a batch of answers to
    /// pipelined calls almost always is), NIO has let go of it and it is emptied and reused with
    /// no allocation; still held by NIO, emptying it allocates a fresh one (copy on write).
    /// Measured: one object and one buffer allocated per batch before, none now.
    private var spareAnswers: ByteBuffer?
    /// The channel's allocator, read once: `context.channel.allocator` per batch retained and
    /// released the channel and its allocator's box (perf).
    private var allocator = ByteBufferAllocator()
    private var flushScheduled = false
    /// Runs the deferred calls' tasks on this connection's loop; made on the first one. A
    /// deferred call's task starts, resumes after the writer or the hashing pool, and answers
    /// here: on the cooperative pool the same call made two more thread hand-offs. Its slow
    /// parts (hashes, writes) run on their own threads and are awaited, never run here.
    private var loopExecutor: EventLoopTaskExecutor?
    /// The body of calls that send none.
    private let emptyBody = ByteBuffer()

    init(methods: MethodTable, peer: PeerCredentials?, logger: Logger, maximumFrameBytes: Int, shared: LoopShared) {
        self.methods = methods
        self.flusher = shared.flusher
        self.sessionFront = shared.sessionFront
        self.apiKeyFront = shared.apiKeyFront
        self.peer = peer
        self.logger = logger
        self.maximumFrameBytes = maximumFrameBytes
    }

    func handlerAdded(context: ChannelHandlerContext) {
        allocator = context.channel.allocator
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        var input = unwrapInboundIn(data)
        let ownBuffer = partialFrame != nil
        if var partial = partialFrame {
            partialFrame = nil
            partial.writeBuffer(&input)
            input = partial
        }
        // The calls of one read arrived together: one reading of the clock serves them all.
        var receivedAt: Int64?
        // Each frame is served where it lies in the read, by its position: no copy, and no
        // slice to count up and down per call. The reader index moves once, after the loop.
        var served = 0
        while let length = input.getInteger(at: input.readerIndex + served, as: UInt32.self) {
            guard Int(length) <= maximumFrameBytes else {
                refuseOversizeFrame(context, announced: Int(length))
                return
            }
            guard input.readableBytes - served >= 4 + Int(length) else { break }
            let frame = (served + 4)..<(served + 4 + Int(length))
            if receivedAt == nil { receivedAt = methods.authorizer.now() }
            serve(context, in: input, frame: frame, receivedAt: receivedAt!)
            served = frame.upperBound
        }
        input.moveReaderIndex(forwardBy: served)
        if input.readableBytes > 0 {
            if ownBuffer {
                input.discardReadBytes()
                partialFrame = input
            } else {
                // Copied into a buffer of its own, so that NIO's read buffer is not held for it.
                var carried = allocator.buffer(capacity: max(input.readableBytes, 1024))
                carried.writeBuffer(&input)
                partialFrame = carried
            }
        }
    }

    /// Serves the frame at `frame` in `read`'s readable bytes. `leavingSlowChecks`: a JWT not
    /// verified lately is verified on the authorizer's pool before the call is served
    /// (`serveAfterVerifying`), not on this loop.
    private func serve(
        _ context: ChannelHandlerContext, in read: ByteBuffer, frame: Range<Int>, receivedAt: Int64, leavingSlowChecks: Bool = true
    ) {
        var callContext = RequestContext(peer: peer)
        let request: RequestEnvelope
        do {
            request = try RequestEnvelope(in: read, frame: frame, context: &callContext)
        } catch {
            // The frame was whole, so the stream is still in step: answer and keep going.
            answer(
                context, id: 0,
                .argumentInvalid("The frame is not a valid authd.v1.Request message (\(error))."))
            return
        }
        guard let found = request.withMethodBytes(in: read, { methods.unretainedEntry(named: $0) }) else {
            answer(
                context, id: request.id,
                AuthdError(
                    type: "general_route_not_found", code: 404,
                    message: "Unknown method `\(request.methodName(in: read))`: expected a full rpc name such as `authd.v1.Account/Get`."))
            return
        }
        // The caller and its scopes are checked before anything else runs.
        let call: Call
        do {
            let scopes = found._withUnsafeGuaranteedRef { $0.scopes }
            call = try methods.authorizer.authorize(
                consume callContext, requiring: scopes, at: receivedAt, front: sessionFront, keyFront: apiKeyFront,
                leavingSlowChecks: leavingSlowChecks)
        } catch let pending as CredentialVerificationPending {
            serveAfterVerifying(context, pending, in: read, frame: frame, id: request.id, method: found.takeUnretainedValue().name)
            return
        } catch {
            answer(context, id: request.id, wireError(error, method: found.takeUnretainedValue().name, logger: logger))
            return
        }
        // `methods`, which this handler holds, keeps the entry alive.
        found._withUnsafeGuaranteedRef { entry in
            serve(context, in: read, request: request, entry: entry, call: call)
        }
    }

    private func serve(
        _ context: ChannelHandlerContext, in read: ByteBuffer, request: RequestEnvelope, entry: MethodTable.Entry, call: Call
    ) {
        // Each closure is called where the entry keeps it (see `MethodTable.Entry`).
        if entry.lending != nil {
            // A call answers once: nothing after its first answer is sent.
            var answered = false
            do {
                try request.withBody(in: read, empty: emptyBody) { body in
                    try entry.lending!(body, call) { bytes in
                        guard !answered else { return }
                        answered = true
                        withAnswers(context) { ResponseEncoding.writeSuccess(id: request.id, body: bytes, into: &$0) }
                    }
                }
            } catch where !answered {
                answer(context, id: request.id, wireError(error, method: entry.name, logger: logger))
            } catch {
                logger.error("call failed after answering", metadata: ["method": "\(entry.name)", "error": "\(error)"])
            }
        } else if entry.immediate != nil {
            do {
                let body = try request.withBody(in: read, empty: emptyBody) { try entry.immediate!($0, call) }
                withAnswers(context) { ResponseEncoding.writeSuccess(id: request.id, body: body, into: &$0) }
            } catch {
                answer(context, id: request.id, wireError(error, method: entry.name, logger: logger))
            }
        } else {
            let work: Endpoint.DeferredWork
            do {
                work = try request.withBody(in: read, empty: emptyBody) { try entry.deferred!($0, call) }
            } catch {
                answer(context, id: request.id, wireError(error, method: entry.name, logger: logger))
                return
            }
            let id = request.id
            let method = entry.name
            let logger = self.logger
            awaitDeferred(context, work) { result in
                switch result {
                case .success(let bytes):
                    self.withAnswers(context) { ResponseEncoding.writeSuccess(id: id, body: bytes, into: &$0) }
                case .failure(let error):
                    self.answer(context, id: id, wireError(error, method: method, logger: logger))
                }
            }
        }
    }

    /// Runs `work` as a task on this connection's loop, counted among the connection's deferred
    /// calls (`read(context:)`, `closeIfDrained`), and hands its result to `completion` on the
    /// loop, then flushes what `completion` answered. The task ends on this loop, so
    /// `completion` runs at once, in the task's last job.
    private func awaitDeferred<T: Sendable>(
        _ context: ChannelHandlerContext, _ work: @escaping @Sendable () async throws -> T,
        then completion: @escaping (Result<T, any Error>) -> Void
    ) {
        deferredInFlight += 1
        let promise = context.eventLoop.makePromise(of: T.self)
        Task(executorPreference: taskExecutor(context)) {
            do { promise.succeed(try await work()) } catch { promise.fail(error) }
        }
        promise.futureResult.assumeIsolated().whenComplete { result in
            completion(result)
            self.deferredCallEnded(context)
            self.scheduleFlush(context)
        }
    }

    /// Verifies the call's credential on the authorizer's pool, then serves the call again from
    /// a copy of its frame (NIO's read buffer is not held meanwhile), the credential now found
    /// verified. A refused credential is answered as any refusal.
    private func serveAfterVerifying(
        _ context: ChannelHandlerContext, _ pending: CredentialVerificationPending, in read: ByteBuffer, frame: Range<Int>,
        id: UInt64, method: String
    ) {
        var copy = allocator.buffer(capacity: frame.count)
        copy.writeBytes(read.readableBytesView[(read.readerIndex + frame.lowerBound)..<(read.readerIndex + frame.upperBound)])
        let authorizer = methods.authorizer
        let logger = self.logger
        awaitDeferred(context, { try await authorizer.verifyCredential(pending) }) { result in
            switch result {
            case .success:
                self.serve(
                    context, in: copy, frame: 0..<copy.readableBytes, receivedAt: authorizer.now(), leavingSlowChecks: false)
            case .failure(let error):
                self.answer(context, id: id, wireError(error, method: method, logger: logger))
            }
        }
    }

    /// The channel asks for a read after each batch (auto-read): it waits while the
    /// connection has too many deferred calls in flight or too many answers unread, and, once
    /// the daemon is stopping, for good: the calls in flight drain and the connection closes,
    /// however fast the client sends (before, a client pipelining slow calls kept a stopping
    /// daemon draining for as long as it sent them).
    func read(context: ChannelHandlerContext) {
        guard !quiescing else { return }
        guard deferredInFlight < Self.maximumDeferredCalls, writable else {
            if !readPaused {
                readPaused = true
                if writable {
                    Self.pausedReads.add(1, ordering: .relaxed)
                } else {
                    Self.pausedReadsUnread.add(1, ordering: .relaxed)
                }
            }
            return
        }
        context.read()
    }

    /// Reads again once the deferred calls are down to half the most and the answers to the
    /// channel's low water mark.
    private func resumeReading(_ context: ChannelHandlerContext) {
        guard readPaused, !quiescing, writable, deferredInFlight <= Self.maximumDeferredCalls / 2 else { return }
        readPaused = false
        context.read()
    }

    private func deferredCallEnded(_ context: ChannelHandlerContext) {
        deferredInFlight -= 1
        resumeReading(context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        resumeReading(context)
        context.fireChannelWritabilityChanged()
    }

    private func taskExecutor(_ context: ChannelHandlerContext) -> EventLoopTaskExecutor {
        if let executor = loopExecutor { return executor }
        let executor = EventLoopTaskExecutor(context.eventLoop)
        loopExecutor = executor
        return executor
    }

    /// Answers are written at the end of the loop's turn, with those of the loop's other
    /// connections (see `AnswerFlusher`). Deferred answers that complete together (a group
    /// commit resumes a whole batch of calls at once) go out in the same write.
    private func scheduleFlush(_ context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        flusher.flushAtEndOfTurn(self, context)
    }

    /// Called by the flusher.
    func flushAnswers(_ context: ChannelHandlerContext) {
        flushScheduled = false
        writeAnswers(context)
        closeIfDrained(context)
    }

    private func answer(_ context: ChannelHandlerContext, id: UInt64, _ error: AuthdError) {
        withAnswers(context) { ResponseEncoding.writeFailure(id: id, error: error, into: &$0) }
    }

    /// Appends to the batch's answers, starting the buffer on the first answer of a batch.
    private func withAnswers(_ context: ChannelHandlerContext, _ write: (inout ByteBuffer) -> Void) {
        if answers == nil {
            // Swapped, not copied: the spare must be this buffer's only holder to be reused.
            swap(&answers, &spareAnswers)
            if answers == nil {
                answers = allocator.buffer(capacity: Self.answersCapacity)
            } else {
                answers!.clear()
            }
        }
        write(&answers!)
    }

    /// The room a batch's answers start with, and the most a spare buffer keeps: a batch of
    /// large answers (a long list) is not held on to while the connection idles.
    private static let answersCapacity = 4096
    private static let spareCapacityLimit = 64 * 1024

    private func writeAnswers(_ context: ChannelHandlerContext) {
        guard let batch = answers else { return }
        answers = nil
        context.writeAndFlush(wrapOutboundOut(batch), promise: nil)
        if batch.capacity <= Self.spareCapacityLimit { spareAnswers = batch }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if answers != nil { scheduleFlush(context) }
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
        writeAnswers(context)
        context.close(promise: nil)
    }

    /// Answers the calls read before the oversize frame, then the refusal, then closes.
    private func refuseOversizeFrame(_ context: ChannelHandlerContext, announced: Int) {
        refused = true
        partialFrame = nil
        logger.notice("oversize frame refused", metadata: ["bytes": "\(announced)"])
        answer(
            context, id: 0,
            .argumentInvalid(
                "A frame of \(announced) bytes is larger than the maximum of \(maximumFrameBytes); closing the connection."))
        let batch = answers!
        answers = nil
        context.writeAndFlush(wrapOutboundOut(batch)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
