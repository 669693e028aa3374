import AuthdStore
import XCTest

final class WireReaderTests: XCTestCase {
    func testIsASCIITellsApartAByteAbove0x7FAtEveryPositionAndLength() {
        for length in 0...40 {
            var bytes = [UInt8](repeating: 0x7F, count: length)
            bytes.withUnsafeBytes { XCTAssertTrue(WireReader.isASCII($0), "\(length) bytes of 0x7F") }
            for position in 0..<length {
                bytes[position] = 0x80
                bytes.withUnsafeBytes { XCTAssertFalse(WireReader.isASCII($0), "0x80 at \(position) of \(length)") }
                bytes[position] = 0x7F
            }
        }
    }

    func testStringsAreReadWhetherASCIIOrNotAndRefusedWhenNotUTF8() throws {
        for text in ["", "session-secret-0123456789abcdef", "grüße aus köln, 東京"] {
            let field: [UInt8] = [0x0A, UInt8(text.utf8.count)] + Array(text.utf8)
            try field.withUnsafeBytes { raw in
                var reader = WireReader(bytes: raw)
                XCTAssertEqual(try reader.nextTag()?.0, 1)
                XCTAssertEqual(try reader.string(), text)
            }
        }
        let invalid: [UInt8] = [0x0A, 0x09] + Array("abcdefgh".utf8) + [0xC3]
        try invalid.withUnsafeBytes { raw in
            var reader = WireReader(bytes: raw)
            _ = try reader.nextTag()
            XCTAssertThrowsError(try reader.string(), "a truncated two-byte sequence after eight ASCII bytes")
        }
    }

    func testVarintsStoredAreReadBackWithTheirLength() throws {
        for value: UInt64 in [0, 1, 127, 128, 300, 16_383, 16_384, 1 << 35, UInt64.max] {
            var bytes = [UInt8](repeating: 0xEE, count: 12)
            let end = bytes.withUnsafeMutableBytes { WireWriter.storeVarint(value, into: $0, at: 1) }
            let expectedLength = max(1, (64 - value.leadingZeroBitCount + 6) / 7)
            XCTAssertEqual(end - 1, expectedLength, "\(value)")
            XCTAssertEqual(bytes[end], 0xEE, "nothing written past the end: \(value)")
            try bytes.withUnsafeBytes { raw in
                var reader = WireReader(bytes: raw, range: 1..<end)
                XCTAssertEqual(try reader.varint(), value)
            }
        }
    }
}
