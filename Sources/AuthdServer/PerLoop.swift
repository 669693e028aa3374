import NIOCore

/// One value per event loop of a group, made when the server starts and then read only by the
/// connections that loop serves: each loop's `LoopShared` (its answer flusher and session cache
/// front), and each loop's `MethodTable`.
struct PerLoop<Value: Sendable>: Sendable {
    private let byLoop: [ObjectIdentifier: Value]

    init(group: any EventLoopGroup, make: (any EventLoop) -> Value) {
        var byLoop: [ObjectIdentifier: Value] = [:]
        for loop in group.makeIterator() {
            byLoop[ObjectIdentifier(loop)] = make(loop)
        }
        self.byLoop = byLoop
    }

    /// The value of `loop`; nil for a loop outside the group (an embedded one in tests).
    subscript(loop: any EventLoop) -> Value? {
        byLoop[ObjectIdentifier(loop)]
    }
}
