import AuthdCore
import NIOCore

/// What the connections of one event loop share, made for every loop when the server starts
/// and then only touched on that loop: the loop's `AnswerFlusher`, and its front of the
/// session cache (no lock on a session check that hits it).
struct LoopShared: Sendable {
    let flusher: AnswerFlusher
    let sessionFront: SessionCacheFront?

    init(eventLoop: any EventLoop, authorizer: Authorizer) {
        flusher = AnswerFlusher(eventLoop: eventLoop)
        sessionFront = authorizer.makeSessionFront()
    }
}
