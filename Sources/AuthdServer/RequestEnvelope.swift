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
    /// Where the full rpc name's bytes (`authd.v1.Account/Get`) are in `frame`'s readable bytes.
    var method: Range<Int> = 0..<0
    /// Where the rpc's serialized input message is.
    var body: Range<Int> = 0..<0
    var credential: Credential = .none
    var client = ClientInfo()

    typealias Malformed = WireFormatError

    /// Reads the envelope of `frame`, which the positions above then refer to. The frame is not
    /// kept: a copy held here was one more reference counted up and down on every call.
    init(frame: borrowing ByteBuffer) throws(Malformed) {
        // Read into this envelope's own fields: returning them through a Result cost three
        // copies of the whole struct per call (5 % of a session check).
        var failure: Malformed?
        frame.withUnsafeReadableBytes { raw in
            do throws(Malformed) { try read(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// The rpc's input message, a slice of `frame` (no copy); `empty` when there is none, so
    /// that calls without one (`Account/Get`) make no slice to count up and down.
    func body(in frame: borrowing ByteBuffer, empty: ByteBuffer) -> ByteBuffer {
        body.isEmpty ? empty : frame.getSlice(at: frame.readerIndex + body.lowerBound, length: body.count)!
    }

    func withMethodBytes<R>(in frame: borrowing ByteBuffer, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        frame.withUnsafeReadableBytes { raw in body(UnsafeRawBufferPointer(rebasing: raw[method])) }
    }

    /// The method's name as text, for messages and logs (the hot path never builds it).
    func methodName(in frame: borrowing ByteBuffer) -> String {
        withMethodBytes(in: frame) { String(decoding: $0, as: UTF8.self) }
    }

    /// Reads the fields from the frame's bytes, in one pass.
    private mutating func read(_ raw: UnsafeRawBufferPointer) throws(Malformed) {
        var reader = WireReader(bytes: raw)
        while let (field, wireType) = try reader.nextTag() {
            switch (field, wireType) {
            case (1, .varint): id = try reader.varint()
            case (2, .lengthDelimited): method = try reader.lengthDelimited()
            case (3, .lengthDelimited): body = try reader.lengthDelimited()
            case (4, .lengthDelimited): try readCredentials(reader.message())
            case (5, .lengthDelimited): try readClient(reader.message())
            default: try reader.skip(wireType)
            }
        }
    }

    /// `authd.v1.Credentials`: a oneof, so the last of its fields present wins.
    private mutating func readCredentials(_ message: WireReader) throws(Malformed) {
        var reader = message
        while let (field, wireType) = try reader.nextTag() {
            switch (field, wireType) {
            case (1, .lengthDelimited): credential = .session(try reader.secretDigest())
            case (2, .lengthDelimited): credential = .jwt(try reader.string())
            case (3, .lengthDelimited): credential = .apiKey(try reader.string())
            default: try reader.skip(wireType)
            }
        }
    }

    /// `authd.v1.ClientInfo`.
    private mutating func readClient(_ message: WireReader) throws(Malformed) {
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
        let field = UnsafeRawBufferPointer(rebasing: bytes[try lengthDelimited()])
        guard WireReader.isASCII(field) || String(validating: field, as: UTF8.self) != nil else {
            throw WireFormatError(description: "a string field that is not UTF-8")
        }
        return SecretToken.digest(bytes: field)
    }
}
