import AuthdCore
import NIOCore

/// What the connections of one event loop share, made for every loop when the server starts
/// and then only touched on that loop: the loop's `AnswerFlusher`, and its fronts of the
/// session and API key caches (no lock on a call whose credential one of them holds).
struct LoopShared: Sendable {
    let flusher: AnswerFlusher
    let sessionFront: SessionCacheFront?
    let apiKeyFront: ApiKeyFront?

    init(eventLoop: any EventLoop, authorizer: Authorizer) {
        flusher = AnswerFlusher(eventLoop: eventLoop)
        sessionFront = authorizer.makeSessionFront()
        apiKeyFront = authorizer.makeApiKeyFront()
    }
}
