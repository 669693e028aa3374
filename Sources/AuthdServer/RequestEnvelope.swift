import AuthdCore
import AuthdStore
import NIOCore

/// An `authd.v1.Request`, read straight from its frame's bytes: the method name and the body
/// are kept as positions in the frame, and nothing is decoded that the call does not use.
///
/// This is the one message every call carries, so it is read by hand instead of through
/// swift-protobuf's generic decoder (which showed as an eighth of the daemon's time per
/// session check), in one pass over raw memory with no buffer copied or retained per field.
/// It follows the protobuf wire format as swift-protobuf does for this message: unknown fields
/// are skipped, a repeated scalar's last value wins, repeated messages merge, strings must be
/// UTF-8, and a known field with the wrong wire type is kept as unknown (skipped), as
/// protobuf's parsers do.
struct RequestEnvelope {
    var id: UInt64 = 0
    /// Where the full rpc name's bytes (`authd.v1.Account/Get`) are in the readable bytes of
    /// the buffer the frame was read from.
    var method: Range<Int> = 0..<0
    /// Where the rpc's serialized input message is.
    var body: Range<Int> = 0..<0

    typealias Malformed = WireFormatError

    /// Reads the envelope of the frame at `frame` in `buffer`'s readable bytes (a read of
    /// pipelined calls holds several); the positions above then refer to the same readable
    /// bytes. Neither the buffer nor a slice of it is kept: each was one more reference counted
    /// up and down on every call. The credential and the client's facts are read into
    /// `context`, which the call then takes as it is: kept here, they were copied into it and
    /// destroyed twice over on every call (their strings retained and released, perf).
    init(in buffer: borrowing ByteBuffer, frame: Range<Int>, context: inout RequestContext) throws(Malformed) {
        // Read into this envelope's own fields: returning them through a Result cost three
        // copies of the whole struct per call (5 % of a session check).
        var failure: Malformed?
        buffer.withUnsafeReadableBytes { raw in
            do throws(Malformed) { try read(raw, frame: frame, context: &context) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// The rpc's input message, a slice of `buffer` (no copy). Calls without one
    /// (`Account/Get`) are given `empty` itself, so that they make no copy to count up and down.
    func withBody<R>(in buffer: borrowing ByteBuffer, empty: borrowing ByteBuffer, _ run: (borrowing ByteBuffer) throws -> R) rethrows -> R {
        if body.isEmpty { return try run(empty) }
        return try run(buffer.getSlice(at: buffer.readerIndex + body.lowerBound, length: body.count)!)
    }

    func withMethodBytes<R>(in buffer: borrowing ByteBuffer, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        buffer.withUnsafeReadableBytes { raw in body(UnsafeRawBufferPointer(rebasing: raw[method])) }
    }

    /// The method's name as text, for messages and logs (the hot path never builds it).
    func methodName(in buffer: borrowing ByteBuffer) -> String {
        withMethodBytes(in: buffer) { String(decoding: $0, as: UTF8.self) }
    }

    /// Reads the frame's fields in one pass.
    private mutating func read(_ raw: UnsafeRawBufferPointer, frame: Range<Int>, context: inout RequestContext) throws(Malformed) {
        var reader = WireReader(bytes: raw, range: frame)
        while let (field, wireType) = try reader.nextTag() {
            switch (field, wireType) {
            case (1, .varint): id = try reader.varint()
            case (2, .lengthDelimited): method = try reader.utf8()
            case (3, .lengthDelimited): body = try reader.lengthDelimited()
            case (4, .lengthDelimited): try Self.readCredentials(reader.message(), into: &context.credential)
            case (5, .lengthDelimited): try Self.readClient(reader.message(), into: &context.client)
            default: try reader.skip(wireType)
            }
        }
    }

    /// `authd.v1.Credentials`: a oneof, so the last of its fields present wins.
    private static func readCredentials(_ message: WireReader, into credential: inout Credential) throws(Malformed) {
        var reader = message
        while let (field, wireType) = try reader.nextTag() {
            switch (field, wireType) {
            case (1, .lengthDelimited): credential = .session(try reader.secretDigest())
            case (2, .lengthDelimited): credential = .jwt(try reader.string())
            case (3, .lengthDelimited): credential = .apiKey(try reader.secretDigest())
            default: try reader.skip(wireType)
            }
        }
    }

    /// `authd.v1.ClientInfo`.
    private static func readClient(_ message: WireReader, into client: inout ClientInfo) throws(Malformed) {
        var reader = message
        while let (field, wireType) = try reader.nextTag() {
            switch (field, wireType) {
            case (1, .lengthDelimited): client.ip = try reader.string()
            case (2, .lengthDelimited): client.userAgent = try reader.string()
            case (3, .lengthDelimited): client.locale = try reader.string()
            default: try reader.skip(wireType)
            }
        }
    }
}

extension WireReader {
    /// The SHA-256 of a string field, hashed in place: the secret never becomes a `String`.
    mutating func secretDigest() throws(WireFormatError) -> SecretDigest {
        SecretToken.digest(bytes: UnsafeRawBufferPointer(rebasing: bytes[try utf8()]))
    }
}
