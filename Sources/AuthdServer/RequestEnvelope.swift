import AuthdCore
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
    let frame: ByteBuffer

    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    init(frame: ByteBuffer) throws(Malformed) {
        self.frame = frame
        // Read into this envelope's own fields: returning them through a Result cost three
        // copies of the whole struct per call (5 % of a session check).
        var failure: Malformed?
        frame.withUnsafeReadableBytes { raw in
            do throws(Malformed) { try read(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// The rpc's input message, a slice of the frame (no copy).
    var bodyBuffer: ByteBuffer {
        frame.getSlice(at: frame.readerIndex + body.lowerBound, length: body.count)!
    }

    func withMethodBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        frame.withUnsafeReadableBytes { raw in body(UnsafeRawBufferPointer(rebasing: raw[method])) }
    }

    /// The method's name as text, for messages and logs (the hot path never builds it).
    var methodName: String {
        withMethodBytes { String(decoding: $0, as: UTF8.self) }
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

/// Reads protobuf wire-format fields from raw bytes; positions are offsets into `bytes`.
struct WireReader {
    enum WireType: UInt8 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    let bytes: UnsafeRawBufferPointer
    var position: Int
    let end: Int

    init(bytes: UnsafeRawBufferPointer, range: Range<Int>? = nil) {
        self.bytes = bytes
        position = range?.lowerBound ?? 0
        end = range?.upperBound ?? bytes.count
    }

    /// The next field's number and wire type; nil at the end of the message.
    mutating func nextTag() throws(RequestEnvelope.Malformed) -> (Int, WireType)? {
        guard position < end else { return nil }
        let tag = try varint()
        guard let wireType = WireType(rawValue: UInt8(tag & 7)), tag >> 3 > 0, tag >> 3 <= 536_870_911 else {
            throw RequestEnvelope.Malformed(description: "an invalid field tag \(tag)")
        }
        return (Int(tag >> 3), wireType)
    }

    mutating func varint() throws(RequestEnvelope.Malformed) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < end, shift <= 63 {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        throw RequestEnvelope.Malformed(description: "a truncated or overlong varint")
    }

    /// Where a length-delimited field's bytes are.
    mutating func lengthDelimited() throws(RequestEnvelope.Malformed) -> Range<Int> {
        let length = try varint()
        guard length <= UInt64(end - position) else {
            throw RequestEnvelope.Malformed(description: "a length-delimited field longer than its message")
        }
        let range = position..<(position + Int(length))
        position = range.upperBound
        return range
    }

    /// A reader of an embedded message.
    mutating func message() throws(RequestEnvelope.Malformed) -> WireReader {
        WireReader(bytes: bytes, range: try lengthDelimited())
    }

    mutating func string() throws(RequestEnvelope.Malformed) -> String {
        let field = UnsafeRawBufferPointer(rebasing: bytes[try lengthDelimited()])
        // Secrets and names are ASCII: those need no validation beyond the check for it.
        if field.allSatisfy({ $0 < 0x80 }) { return String(decoding: field, as: UTF8.self) }
        guard let text = String(validating: field, as: UTF8.self) else {
            throw RequestEnvelope.Malformed(description: "a string field that is not UTF-8")
        }
        return text
    }

    /// The SHA-256 of a string field, hashed in place: the secret never becomes a `String`.
    mutating func secretDigest() throws(RequestEnvelope.Malformed) -> SecretDigest {
        let field = UnsafeRawBufferPointer(rebasing: bytes[try lengthDelimited()])
        guard field.allSatisfy({ $0 < 0x80 }) || String(validating: field, as: UTF8.self) != nil else {
            throw RequestEnvelope.Malformed(description: "a string field that is not UTF-8")
        }
        return SecretToken.digest(bytes: field)
    }

    mutating func skip(_ wireType: WireType) throws(RequestEnvelope.Malformed) {
        switch wireType {
        case .varint: _ = try varint()
        case .fixed64: try skipBytes(8)
        case .fixed32: try skipBytes(4)
        case .lengthDelimited: _ = try lengthDelimited()
        case .startGroup, .endGroup:
            // Groups are deprecated and never part of authd's messages.
            throw RequestEnvelope.Malformed(description: "a group field")
        }
    }

    private mutating func skipBytes(_ count: Int) throws(RequestEnvelope.Malformed) {
        guard end - position >= count else {
            throw RequestEnvelope.Malformed(description: "a fixed-size field longer than its message")
        }
        position += count
    }
}
