import AuthdCore
import AuthdProto
import NIOCore
import SwiftProtobuf

/// One rpc: decodes its input message, calls the domain, encodes its output message.
///
/// The body is always decoded on the event loop, so a malformed request is refused at once.
/// `immediate` endpoints then answer on the event loop without waiting (reads: an LMDB
/// snapshot and a SHA-256); `deferred` ones hand back work that awaits the hashing pool or the
/// writer, and are answered when it is done.
public enum Endpoint: Sendable {
    case immediate(Immediate)
    /// An immediate endpoint whose answer is already encoded, kept in a cache entry: it lends
    /// the bytes to `answer`, which writes them into the connection's answers at once, so they
    /// are neither copied nor retained on the way (perf, issue 5).
    case immediateLending(Lending)
    case deferred(Prepare)

    public typealias Immediate = @Sendable (_ body: ByteBuffer, _ call: Call) throws -> [UInt8]
    public typealias Lending = @Sendable (_ body: ByteBuffer, _ call: Call, _ answer: ([UInt8]) -> Void) throws -> Void
    public typealias Prepare = @Sendable (_ body: ByteBuffer, _ call: Call) throws -> DeferredWork
    public typealias DeferredWork = @Sendable () async throws -> [UInt8]

    static func immediate<Input: SwiftProtobuf.Message, Output: SwiftProtobuf.Message>(
        _ input: Input.Type, _ call: @escaping @Sendable (Input, Call) throws -> Output
    ) -> Endpoint {
        .immediate { body, context in
            try call(decode(Input.self, body), context).serializedBytes()
        }
    }

    static func immediateLending<Input: SwiftProtobuf.Message>(
        _ input: Input.Type, _ call: @escaping @Sendable (Input, Call, _ answer: ([UInt8]) -> Void) throws -> Void
    ) -> Endpoint {
        .immediateLending { body, context, answer in
            try call(decode(Input.self, body), context, answer)
        }
    }

    static func deferred<Input: SwiftProtobuf.Message & Sendable, Output: SwiftProtobuf.Message>(
        _ input: Input.Type, _ call: @escaping @Sendable (Input, Call) async throws -> Output
    ) -> Endpoint {
        .deferred { body, context in
            let input = try decode(Input.self, body)
            return { try await call(input, context).serializedBytes() }
        }
    }

    /// Decodes straight from the frame's storage; an empty body is the default message.
    private static func decode<Input: SwiftProtobuf.Message>(_ type: Input.Type, _ body: ByteBuffer) throws -> Input {
        if body.readableBytes == 0 { return Input() }
        do {
            return try Input(serializedBytes: body.readableBytesSpan)
        } catch {
            throw AuthdError.argumentInvalid(
                "The request body is not a valid \(Input.protoMessageName) message (\(error)).")
        }
    }
}
