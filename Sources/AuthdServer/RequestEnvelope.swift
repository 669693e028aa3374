import AuthdCore
import NIOCore

/// An `authd.v1.Request`, read straight from its frame: the method name and the body stay
/// slices of the frame's storage, and nothing is decoded that the call does not use.
///
/// This is the one message every call carries, so it is read by hand instead of through
/// swift-protobuf's generic decoder (which showed as an eighth of the daemon's time per
/// session check). It follows the protobuf wire format as swift-protobuf does for this
/// message: unknown fields are skipped, a repeated scalar's last value wins, repeated
/// messages merge, strings must be UTF-8, and a known field with the wrong wire type is kept
/// as unknown (skipped), as protobuf's parsers do.
struct RequestEnvelope {
    var id: UInt64 = 0
    /// The full rpc name's bytes (`authd.v1.Account/Get`).
    var method: ByteBuffer
    /// The rpc's input message, serialized.
    var body: ByteBuffer
    var credential: Credential = .none
    var client = ClientInfo()

    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    init(frame: ByteBuffer) throws(Malformed) {
        var reader = WireReader(buffer: frame)
        method = frame.getSlice(at: frame.readerIndex, length: 0)!
        body = method
        while let (field, wireType) = try reader.nextTag() {
            switch (field, wireType) {
            case (1, .varint): id = try reader.varint()
            case (2, .lengthDelimited): method = try reader.lengthDelimited()
            case (3, .lengthDelimited): body = try reader.lengthDelimited()
            case (4, .lengthDelimited): try readCredentials(reader.lengthDelimited())
            case (5, .lengthDelimited): try readClient(reader.lengthDelimited())
            default: try reader.skip(wireType)
            }
        }
    }

    /// `authd.v1.Credentials`: a oneof, so the last of its fields present wins.
    private mutating func readCredentials(_ message: ByteBuffer) throws(Malformed) {
        var reader = WireReader(buffer: message)
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
    private mutating func readClient(_ message: ByteBuffer) throws(Malformed) {
        var reader = WireReader(buffer: message)
        while let (field, wireType) = try reader.nextTag() {
            switch (field, wireType) {
            case (1, .lengthDelimited): client.ip = try reader.string()
            case (2, .lengthDelimited): client.userAgent = try reader.string()
            case (3, .lengthDelimited): client.locale = try reader.string()
            default: try reader.skip(wireType)
            }
        }
    }

    /// The method's name as text, for messages and logs (the hot path never builds it).
    var methodName: String {
        String(decoding: method.readableBytesView, as: UTF8.self)
    }
}

/// Reads protobuf wire-format fields from a buffer.
struct WireReader {
    enum WireType: UInt8 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    var buffer: ByteBuffer

    /// The next field's number and wire type; nil at the end of the message.
    mutating func nextTag() throws(RequestEnvelope.Malformed) -> (Int, WireType)? {
        guard buffer.readableBytes > 0 else { return nil }
        let tag = try varint()
        guard let wireType = WireType(rawValue: UInt8(tag & 7)), tag >> 3 > 0, tag >> 3 <= 536_870_911 else {
            throw RequestEnvelope.Malformed(description: "an invalid field tag \(tag)")
        }
        return (Int(tag >> 3), wireType)
    }

    mutating func varint() throws(RequestEnvelope.Malformed) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while let byte = buffer.readInteger(as: UInt8.self) {
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
            if shift > 63 { break }
        }
        throw RequestEnvelope.Malformed(description: "a truncated or overlong varint")
    }

    mutating func lengthDelimited() throws(RequestEnvelope.Malformed) -> ByteBuffer {
        let length = try varint()
        guard length <= UInt64(buffer.readableBytes), let slice = buffer.readSlice(length: Int(length)) else {
            throw RequestEnvelope.Malformed(description: "a length-delimited field longer than its message")
        }
        return slice
    }

    mutating func string() throws(RequestEnvelope.Malformed) -> String {
        let bytes = try lengthDelimited()
        // Secrets and names are ASCII: those need no validation beyond the check for it.
        let ascii = bytes.withUnsafeReadableBytes { raw in raw.allSatisfy { $0 < 0x80 } }
        if ascii { return String(decoding: bytes.readableBytesView, as: UTF8.self) }
        guard let text = String(validating: bytes.readableBytesView, as: UTF8.self) else {
            throw RequestEnvelope.Malformed(description: "a string field that is not UTF-8")
        }
        return text
    }

    /// The SHA-256 of a string field, hashed in place: the secret never becomes a `String`.
    mutating func secretDigest() throws(RequestEnvelope.Malformed) -> SecretDigest {
        let bytes = try lengthDelimited()
        return try bytes.withUnsafeReadableBytes { raw throws(RequestEnvelope.Malformed) in
            guard raw.allSatisfy({ $0 < 0x80 }) || String(validating: raw, as: UTF8.self) != nil else {
                throw RequestEnvelope.Malformed(description: "a string field that is not UTF-8")
            }
            return SecretToken.digest(bytes: raw)
        }
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
        guard buffer.readableBytes >= count else {
            throw RequestEnvelope.Malformed(description: "a fixed-size field longer than its message")
        }
        buffer.moveReaderIndex(forwardBy: count)
    }
}
