import Foundation
import NIOCore
import Synchronization

/// Calls on their way from the callers' tasks to the connection's event loop.
///
/// A caller encodes its frame on its own thread and appends it here; the first call since the
/// loop last drained the outbox schedules a drain, and the drain hands every call appended
/// meanwhile to the dispatcher, whose frames leave in one write and one flush. Calls made
/// together (many tasks checking sessions at once) thus cost the loop one task, not one each,
/// and the encoding runs on the callers' threads, in parallel, rather than on the loop.
final class Outbox: Sendable {
    /// A call whose frame is in the outbox or on its way to the daemon.
    struct Waiting: Sendable {
        let id: UInt64
        let continuation: UnsafeContinuation<Data, any Error>
    }

    private struct State {
        /// The frames appended since the last drain, back to back.
        var frames: ByteBuffer
        var waiting: [Waiting] = []
        var drainScheduled = false
        /// Set once the connection is gone: later calls fail at once.
        var closed: AuthdClientError?
    }

    private let state: Mutex<State>
    private let nextID = Atomic<UInt64>(1)

    init(allocator: ByteBufferAllocator) {
        state = Mutex(State(frames: allocator.buffer(capacity: 0)))
    }

    /// A fresh request id: ids are unique per connection.
    func makeID() -> UInt64 {
        nextID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Appends a call's frame (its length, then `envelope`). Returns true when the caller must
    /// schedule the drain on the loop: no drain is pending yet.
    func post(_ envelope: [UInt8], id: UInt64, continuation: UnsafeContinuation<Data, any Error>) -> Bool {
        let outcome: (schedule: Bool, closed: AuthdClientError?) = state.withLock { state in
            if let closed = state.closed { return (false, closed) }
            state.frames.writeInteger(UInt32(envelope.count))
            state.frames.writeBytes(envelope)
            state.waiting.append(Waiting(id: id, continuation: continuation))
            guard !state.drainScheduled else { return (false, nil) }
            state.drainScheduled = true
            return (true, nil)
        }
        if let closed = outcome.closed { continuation.resume(throwing: closed) }
        return outcome.schedule
    }

    /// Everything appended since the last drain, for the loop to send.
    func drain() -> (frames: ByteBuffer, waiting: [Waiting]) {
        state.withLock { state in
            state.drainScheduled = false
            let taken = (state.frames, state.waiting)
            state.frames.clear()
            state.waiting.removeAll(keepingCapacity: true)
            return taken
        }
    }

    /// Refuses every later call with `error`; returns the calls still in the outbox, for the
    /// caller to fail.
    func close(_ error: AuthdClientError) -> [Waiting] {
        state.withLock { state in
            if state.closed == nil { state.closed = error }
            let stranded = state.waiting
            state.waiting = []
            state.frames.clear()
            return stranded
        }
    }

    /// Calls in the outbox, not yet drained (for tests).
    var waitingCount: Int { state.withLock { $0.waiting.count } }
}
