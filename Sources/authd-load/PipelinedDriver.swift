import AuthdProto
import AuthdStore
import Foundation
import Histogram
import NIOCore
import NIOExtras
import NIOPosix
import Synchronization

/// Drives pre-encoded calls straight over NIO channels, the way `redis-benchmark` drives Redis:
/// each connection keeps `pipeline` requests in flight, writes the next one as each answer
/// arrives and flushes once per read batch. No task, continuation or message decode per call,
/// so the figure is the daemon's, not the Swift client's.
///
/// Closed loop by default. With a rate, calls start on a fixed schedule whatever the answers
/// (open loop), and latency counts from the scheduled start, so a stalled daemon shows as
/// latency instead of as fewer calls (no coordinated omission).
struct PipelinedDriver {
    let socketPath: String
    let connections: Int
    let pipeline: Int
    var duration: Duration
    let warmUp: Duration
    let maximumCalls: Int
    /// Calls per second over all connections; nil for closed loop.
    let rate: Double?
    /// Threads driving the connections. One per core by default; fewer leaves cores to the
    /// daemon on a small machine (redis-benchmark drives its clients from one thread).
    var eventLoops: Int = System.coreCount
    /// Counts the calls that end within the measured window, whenever they began (as `LoadRun`
    /// does), instead of the calls that began in it: for slow calls (logins, tens of ms each)
    /// the ones in flight when the warm-up ends are a part of the window's work. Latencies are
    /// those of the calls that began after the warm-up either way.
    var countsCallsEndingInWindow = false
    /// The calls are meant to be refused (forged credentials): a refusal is the call's answer
    /// and counts as one, a success is an error.
    var expectsRefusals = false

    /// The second call of a unit of work, made from the first call's answer (its `body`):
    /// a serialized `authd.v1.Request` without an id.
    typealias FollowUp = @Sendable (_ answerBody: UnsafeRawBufferPointer) throws -> [UInt8]

    /// Runs until the duration or the call budget is spent, cycling through `requests`
    /// (serialized `authd.v1.Request`s without an id; each connection starts at its own offset).
    /// With `followUp`, each unit of work is two calls, the second made from the first's answer
    /// (a token, then the session it is redeemed for); latency and counts are per unit.
    func run(requests: [[UInt8]], followUp: FollowUp? = nil, progress: Bool) async throws -> LoadRun.Result {
        precondition(!requests.isEmpty)
        let encoded = EncodedRequests(requests)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: eventLoops)
        defer { group.shutdownGracefully { _ in } }
        let clock = ContinuousClock()
        let start = NIODeadline.now()
        let warmEnd = start + TimeAmount(warmUp)
        let end = warmEnd + TimeAmount(duration)
        let counters = Counters(budget: maximumCalls)
        let perConnectionRate = rate.map { $0 / Double(connections) }

        var channels: [any Channel] = []
        var done: [EventLoopFuture<PipelinedCaller.Outcome>] = []
        for index in 0..<connections {
            let promise = group.next().makePromise(of: PipelinedCaller.Outcome.self)
            let caller = PipelinedCaller(
                requests: encoded, followUp: followUp, offset: index * 7919 % requests.count, pipeline: pipeline,
                warmEnd: warmEnd, end: end, rate: perConnectionRate, countsCallsEndingInWindow: countsCallsEndingInWindow,
                expectsRefusals: expectsRefusals, counters: counters, finished: promise)
            let channel = try await ClientBootstrap(group: promise.futureResult.eventLoop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(caller)
                    }
                }
                .connect(unixDomainSocketPath: socketPath)
                .get()
            channels.append(channel)
            done.append(promise.futureResult)
        }
        let started = clock.now
        let progressTask = progress ? progressLine(counters) : nil
        // Each caller starts itself when its channel becomes active.
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var firstError: String?
        for future in done {
            let outcome = try await future.get()
            histogram.add(outcome.histogram)
            if firstError == nil { firstError = outcome.firstError }
        }
        progressTask?.cancel()
        await progressTask?.value
        if progress { FileHandle.standardError.write(Data("\n".utf8)) }
        for channel in channels { try? await channel.close() }
        let measured = started.duration(to: clock.now) - (warmUp > .zero ? warmUp : .zero)
        let measuredSeconds = min(
            measured / .seconds(1), duration / .seconds(1))
        return LoadRun.Result(
            calls: UInt64(counters.completed.load(ordering: .relaxed)),
            errors: UInt64(counters.failures.load(ordering: .relaxed)), seconds: measuredSeconds,
            histogram: histogram, firstError: firstError)
    }
}

/// One connection of the pipelined driver. Lives on its channel's event loop.
final class PipelinedCaller: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Outcome: Sendable {
        var histogram: Histogram<UInt64>
        var firstError: String?
    }

    private let requests: EncodedRequests
    private let followUp: PipelinedDriver.FollowUp?
    private var next: Int
    private let pipeline: Int
    private let warmEnd: NIODeadline
    private let end: NIODeadline
    private let interval: TimeAmount?
    private let countsCallsEndingInWindow: Bool
    private let expectsRefusals: Bool
    private let counters: Counters
    private let finished: EventLoopPromise<Outcome>

    /// When each call in flight started, by id modulo the ring size (ids are sequential and at
    /// most a few windows are in flight, so slots are never reused too early).
    private var startedAt: [NIODeadline]
    /// Whether each call in flight is a unit's follow-up (same ring as `startedAt`).
    private var isFollowUp: [Bool]
    private var nextID: UInt64 = 1
    private var inFlight = 0
    private var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    private var firstError: String?
    private var stopped = false
    private var scheduledStart: NIODeadline = .now()
    /// The open loop's timer for the next scheduled call.
    private var timer: Scheduled<Void>?
    private var reported = false
    /// Requests started since the last flush, written as one buffer (one write per read batch,
    /// as redis-benchmark does) instead of one channel write per call.
    private var outgoing: ByteBuffer
    /// The start of an answer that has not arrived whole yet.
    private var partialAnswer: ByteBuffer?

    init(
        requests: EncodedRequests, followUp: PipelinedDriver.FollowUp?, offset: Int, pipeline: Int, warmEnd: NIODeadline,
        end: NIODeadline, rate: Double?, countsCallsEndingInWindow: Bool = false, expectsRefusals: Bool = false, counters: Counters,
        finished: EventLoopPromise<Outcome>
    ) {
        self.requests = requests
        self.followUp = followUp
        self.next = offset
        self.pipeline = pipeline
        self.warmEnd = warmEnd
        self.end = end
        self.interval = rate.map { .nanoseconds(Int64(1e9 / max($0, 0.001))) }
        self.countsCallsEndingInWindow = countsCallsEndingInWindow
        self.expectsRefusals = expectsRefusals
        self.counters = counters
        self.finished = finished
        let ring = Int.powerOfTwo(atLeast: pipeline * 4, minimum: 64)
        startedAt = Array(repeating: .now(), count: ring)
        isFollowUp = Array(repeating: false, count: ring)
        outgoing = ByteBufferAllocator().buffer(capacity: 64 * pipeline)
    }

    func channelActive(context: ChannelHandlerContext) {
        if let interval {
            scheduledStart = .now()
            sendDue(context, interval: interval)
        } else {
            for _ in 0..<pipeline where !stopped { send(context, startedAt: .now()) }
            flushOutgoing(context)
        }
    }

    /// Open loop: sends every call whose scheduled time has come, then sets a timer for the
    /// next one. The timer fires at that call's own time (NIO's timers are timerfd-precise), so
    /// the latency, counted from the scheduled time, is the daemon's: a fixed 1 ms ticker, as
    /// before, added up to a millisecond of its own (half of it at the median).
    private func sendDue(_ context: ChannelHandlerContext, interval: TimeAmount) {
        let now = NIODeadline.now()
        var sent = false
        while !stopped, scheduledStart <= now, inFlight < pipeline {
            send(context, startedAt: scheduledStart)
            scheduledStart = scheduledStart + interval
            sent = true
        }
        // Calls that could not start because `pipeline` were in flight are skipped, and their
        // wait shows in the latency of the ones that follow.
        if scheduledStart <= now { scheduledStart = now + interval }
        if sent { flushOutgoing(context) }
        if now >= end { stop(context) }
        guard !stopped else { return }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: scheduledStart) { [self] in
            sendDue(loopBound.value, interval: interval)
        }
    }

    private func send(_ context: ChannelHandlerContext, startedAt start: NIODeadline) {
        guard start < end, counters.budget.subtract(1, ordering: .relaxed).newValue >= 0 else {
            stopped = true
            return
        }
        let body = requests[next]
        next = next + 1 == requests.count ? 0 : next + 1
        write(body, startedAt: start, followUp: false)
    }

    /// Appends one request frame to `outgoing` under the next id, in one raw write: each of
    /// ByteBuffer's small writes (length, tag, each varint byte, body, length again) checked
    /// exclusive access to its storage, a sixth of this tool's time per call (perf).
    private func write(_ body: UnsafeRawBufferPointer, startedAt start: NIODeadline, followUp: Bool) {
        let id = nextID
        nextID += 1
        startedAt[Int(id & UInt64(startedAt.count - 1))] = start
        isFollowUp[Int(id & UInt64(startedAt.count - 1))] = followUp
        _ = outgoing.writeWithUnsafeMutableBytes(minimumWritableBytes: RawFrames.requestCapacity(bodyCount: body.count)) { out in
            RawFrames.storeRequest(id: id, body: body, into: out)
        }
        inFlight += 1
    }

    private func flushOutgoing(_ context: ChannelHandlerContext) {
        guard outgoing.readableBytes > 0 else { return }
        // The written buffer keeps its storage; clearing afterwards would copy on write, so a
        // fresh buffer of the same size takes its place.
        context.writeAndFlush(wrapOutboundOut(outgoing), promise: nil)
        outgoing = context.channel.allocator.buffer(capacity: outgoing.capacity)
    }

    /// Splits the answers out of each read in one loop over its raw bytes (no per-frame
    /// pipeline hop, no slice counted up and down per answer).
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var input = unwrapInboundIn(data)
        if var partial = partialAnswer {
            partialAnswer = nil
            partial.writeBuffer(&input)
            input = partial
        }
        let now = NIODeadline.now()
        let consumed = input.withUnsafeReadableBytes { raw in
            RawFrames.forEachFrame(in: raw) { answered(context, frame: $0, at: now) }
        }
        input.moveReaderIndex(forwardBy: consumed)
        if input.readableBytes > 0 {
            var carried = context.channel.allocator.buffer(capacity: max(input.readableBytes, 1024))
            carried.writeBuffer(&input)
            partialAnswer = carried
        }
    }

    private func answered(_ context: ChannelHandlerContext, frame: UnsafeRawBufferPointer, at now: NIODeadline) {
        inFlight -= 1
        // After its id (`RawFrames`), a success with an answer carries it as field 3.
        var reader = WireReader(bytes: frame)
        guard let id = RawFrames.answerID(&reader) else {
            recordError("an answer without an id")
            return
        }
        let next = try? reader.nextTag()
        let slot = Int(id & UInt64(startedAt.count - 1))
        let start = startedAt[slot]
        if (next?.0 == 2) != expectsRefusals {
            recordError(expectsRefusals ? "a call meant to be refused succeeded" : RawFrames.failure(frame))
        } else if let followUp, !isFollowUp[slot] {
            // The unit's first call: its answer makes the second, which keeps the unit's start.
            do {
                var body = UnsafeRawBufferPointer(start: nil, count: 0)
                if let next, next == (3, .lengthDelimited) {
                    body = UnsafeRawBufferPointer(rebasing: frame[try reader.lengthDelimited()])
                }
                try followUp(body).withUnsafeBytes { write($0, startedAt: start, followUp: true) }
                return
            } catch {
                recordError("an answer the follow-up could not use: \(error)")
            }
        } else {
            if start >= warmEnd { _ = histogram.record(UInt64(max(1, (now - start).nanoseconds / 1000))) }
            if countsCallsEndingInWindow ? (now >= warmEnd && now <= end) : start >= warmEnd {
                counters.completed.add(1, ordering: .relaxed)
            }
        }
        if interval == nil, !stopped {
            if now < end { send(context, startedAt: now) } else { stopped = true }
        }
        if stopped && inFlight == 0 { stop(context) }
    }

    private func recordError(_ text: String) {
        counters.failures.add(1, ordering: .relaxed)
        if firstError == nil { firstError = text }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushOutgoing(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !stopped { recordError("the daemon closed the connection") }
        stop(context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        recordError("\(error)")
        context.close(promise: nil)
    }

    private func stop(_ context: ChannelHandlerContext) {
        stopped = true
        guard !reported, inFlight <= 0 || !context.channel.isActive else { return }
        reported = true
        timer?.cancel()
        timer = nil
        finished.succeed(Outcome(histogram: histogram, firstError: firstError))
    }
}

/// The pre-encoded requests in one allocation, read by every connection: taking one is a
/// pointer and a length, where an array of arrays counted an array up and down per call.
final class EncodedRequests: @unchecked Sendable {
    let count: Int
    private let bytes: UnsafeMutableRawBufferPointer
    /// Where each request ends in `bytes`; each starts where the one before ends.
    private let ends: UnsafeMutableBufferPointer<Int>

    /// Immutable once made, so sharing it across event loops is safe.
    init(_ requests: [[UInt8]]) {
        count = requests.count
        bytes = .allocate(byteCount: max(1, requests.reduce(0) { $0 + $1.count }), alignment: 8)
        ends = .allocate(capacity: max(1, requests.count))
        var at = 0
        for (index, request) in requests.enumerated() {
            request.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: bytes[at..<(at + $0.count)]).copyMemory(from: $0) }
            at += request.count
            ends[index] = at
        }
    }

    deinit {
        bytes.deallocate()
        ends.deallocate()
    }

    subscript(index: Int) -> UnsafeRawBufferPointer {
        let start = index == 0 ? 0 : ends[index - 1]
        return UnsafeRawBufferPointer(rebasing: bytes[start..<ends[index]])
    }
}
