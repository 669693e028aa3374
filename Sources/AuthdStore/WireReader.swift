/// Protobuf's wire format read by hand, for the few places where a generic decoder costs more
/// than the call it serves: the request envelope every call carries (AuthdServer) and a stored
/// user's status (`RecordCodec.userStatus`). Inlinable, as the envelope is read on every call.

/// A byte string that is not the protobuf message it should be.
public struct WireFormatError: Error, CustomStringConvertible {
    public let description: String

    public init(description: String) {
        self.description = description
    }
}

/// Reads protobuf wire-format fields from raw bytes; positions are offsets into `bytes`.
public struct WireReader {
    public enum WireType: UInt8 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    public let bytes: UnsafeRawBufferPointer
    @usableFromInline var position: Int
    @usableFromInline let end: Int

    @inlinable
    public init(bytes: UnsafeRawBufferPointer, range: Range<Int>? = nil) {
        self.bytes = bytes
        position = range?.lowerBound ?? 0
        end = range?.upperBound ?? bytes.count
    }

    /// The next field's number and wire type; nil at the end of the message.
    @inlinable
    public mutating func nextTag() throws(WireFormatError) -> (Int, WireType)? {
        guard position < end else { return nil }
        let tag = try varint()
        guard let wireType = WireType(rawValue: UInt8(tag & 7)), tag >> 3 > 0, tag >> 3 <= 536_870_911 else {
            throw WireFormatError(description: "an invalid field tag \(tag)")
        }
        return (Int(tag >> 3), wireType)
    }

    @inlinable
    public mutating func varint() throws(WireFormatError) -> UInt64 {
        // Tags and most lengths are one byte: no loop for them.
        if position < end, bytes[position] < 0x80 {
            position += 1
            return UInt64(bytes[position - 1])
        }
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < end, shift <= 63 {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        throw WireFormatError(description: "a truncated or overlong varint")
    }

    /// Where a length-delimited field's bytes are.
    @inlinable
    public mutating func lengthDelimited() throws(WireFormatError) -> Range<Int> {
        let length = try varint()
        guard length <= UInt64(end - position) else {
            throw WireFormatError(description: "a length-delimited field longer than its message")
        }
        let range = position..<(position + Int(length))
        position = range.upperBound
        return range
    }

    /// A reader of an embedded message.
    @inlinable
    public mutating func message() throws(WireFormatError) -> WireReader {
        WireReader(bytes: bytes, range: try lengthDelimited())
    }

    @inlinable
    public mutating func string() throws(WireFormatError) -> String {
        let field = UnsafeRawBufferPointer(rebasing: bytes[try lengthDelimited()])
        // Secrets and names are ASCII: those need no validation beyond the check for it. Any
        // other text is validated once, by making the string (not checked by `utf8()` first
        // and then decoded again).
        if Self.isASCII(field) { return String(decoding: field, as: UTF8.self) }
        guard let text = String(validating: field, as: UTF8.self) else { throw Self.notUTF8 }
        return text
    }

    @usableFromInline static let notUTF8 = WireFormatError(description: "a string field that is not UTF-8")

    /// Where a string field's bytes are, once they are known to be UTF-8, for a string kept as
    /// bytes (protobuf refuses a message with a string that is not, even one that a later field
    /// of the same number replaces).
    @inlinable
    public mutating func utf8() throws(WireFormatError) -> Range<Int> {
        let range = try lengthDelimited()
        let field = UnsafeRawBufferPointer(rebasing: bytes[range])
        // Secrets and names are ASCII: those need no validation beyond the check for it.
        guard Self.isASCII(field) || String(validating: field, as: UTF8.self) != nil else { throw Self.notUTF8 }
        return range
    }

    /// Whether every byte is below 0x80, read eight bytes at a time: the byte-by-byte check of
    /// the session secret's 80 bytes was 4-5 % of a session check (perf, issue 5).
    @inlinable
    public static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var highBits: UInt64 = 0
        var offset = 0
        while offset + 8 <= bytes.count {
            highBits |= bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        if offset < bytes.count && bytes.count >= 8 {
            // The last eight bytes, overlapping those already read: no loop over the rest.
            highBits |= bytes.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self)
        } else {
            while offset < bytes.count {
                highBits |= UInt64(bytes[offset])
                offset += 1
            }
        }
        return highBits & 0x8080_8080_8080_8080 == 0
    }

    @inlinable
    public mutating func skip(_ wireType: WireType) throws(WireFormatError) {
        switch wireType {
        case .varint: _ = try varint()
        case .fixed64: try skipBytes(8)
        case .fixed32: try skipBytes(4)
        case .lengthDelimited: _ = try lengthDelimited()
        case .startGroup, .endGroup:
            // Groups are deprecated and never part of authd's messages.
            throw WireFormatError(description: "a group field")
        }
    }

    /// A fixed64 field's value (little-endian on the wire).
    @inlinable
    public mutating func fixed64() throws(WireFormatError) -> UInt64 {
        let start = position
        try skipBytes(8)
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: start, as: UInt64.self))
    }

    @inlinable
    mutating func skipBytes(_ count: Int) throws(WireFormatError) {
        guard end - position >= count else {
            throw WireFormatError(description: "a fixed-size field longer than its message")
        }
        position += count
    }
}

/// Protobuf's wire format written by hand into raw memory, for frames encoded on every call.
public enum WireWriter {
    /// Stores `value` as a varint at `start` in `out`, which has room for ten bytes from there;
    /// returns where it ends.
    @inlinable
    public static func storeVarint(_ value: UInt64, into out: UnsafeMutableRawBufferPointer, at start: Int) -> Int {
        var rest = value
        var at = start
        while rest >= 0x80 {
            out[at] = UInt8(truncatingIfNeeded: rest) | 0x80
            rest >>= 7
            at += 1
        }
        out[at] = UInt8(rest)
        return at + 1
    }
}
