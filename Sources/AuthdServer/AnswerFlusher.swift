import NIOCore

/// Writes the answers that an event loop's connections gathered during one turn of the loop,
/// once that turn has read every connection that was ready: one write and one flush per
/// connection, all together at the end of the turn.
///
/// Why not flush each connection as soon as its read batch is answered: the client's threads
/// are woken by every write, and on a small machine shared with them a wake-up in the middle of
/// the loop's reads costs a context switch on both sides. Written together, the writes of a
/// turn wake a client once. (Measured: 16 connections × 16 calls in flight on two event loops,
/// `authd-load validate`: 1.04-1.11M calls/s against 0.87-1.00M with a flush per connection.)
///
/// Belongs to one event loop and is only touched on it (hence unchecked Sendable: made for every
/// loop of the group up front, then handed to that loop's connections on that loop).
final class AnswerFlusher: @unchecked Sendable {
    private let eventLoop: any EventLoop
    /// The connections with answers waiting, in the order they asked.
    private var waiting: [(handler: RequestHandler, context: ChannelHandlerContext)] = []
    private var scheduled = false

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Writes `handler`'s answers at the end of this turn of the loop: after the tasks already
    /// queued, which include the rest of a group commit's calls.
    func flushAtEndOfTurn(_ handler: RequestHandler, _ context: ChannelHandlerContext) {
        waiting.append((handler, context))
        guard !scheduled else { return }
        scheduled = true
        eventLoop.assumeIsolated().execute { self.flushWaiting() }
    }

    private func flushWaiting() {
        scheduled = false
        // Indexed, not iterated: a flush never queues another, but if one did it would be
        // served in this pass rather than lost.
        var index = 0
        while index < waiting.count {
            let (handler, context) = waiting[index]
            handler.flushAnswers(context)
            index += 1
        }
        waiting.removeAll(keepingCapacity: true)
    }
}
