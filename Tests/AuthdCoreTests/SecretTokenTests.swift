@testable import AuthdCore
import XCTest

final class SecretTokenTests: XCTestCase {
    /// FIPS 180-2's examples: the digest the session index is keyed by must be plain SHA-256.
    func testRandomBytesHaveTheLengthAskedForAndDoNotRepeat() {
        XCTAssertEqual(SecretToken.randomBytes(0), [])
        XCTAssertEqual(SecretToken.randomBytes(1).count, 1)
        let draws = (0..<1000).map { _ in SecretToken.randomBytes(32) }
        XCTAssertTrue(draws.allSatisfy { $0.count == 32 })
        XCTAssertEqual(Set(draws).count, draws.count)
        // Over 32,000 bytes every byte value turns up (a stuck or zeroed generator would not).
        XCTAssertEqual(Set(draws.joined()).count, 256)
    }

    func testDrawsOfAnyLengthFromThePoolAreWholeAndNeverShared() async {
        // Lengths that end a 4 KiB fill in the middle of a draw, and ones sent to the generator
        // straight away (1 KiB and more).
        let lengths = [33, 1000, 1023, 7, 2048, 4095, 1, 512, 999]
        var draws: [[UInt8]] = []
        for round in 0..<40 {
            for length in lengths {
                let draw = SecretToken.randomBytes(length + round % 3)
                XCTAssertEqual(draw.count, length + round % 3)
                draws.append(draw)
            }
        }
        // A draw overlapping another, or taken from zeroed bytes of the pool, would show here.
        XCTAssertEqual(Set(draws.filter { $0.count >= 7 }).count, draws.filter { $0.count >= 7 }.count)
        XCTAssertFalse(draws.contains { $0.count >= 7 && $0.allSatisfy { $0 == 0 } })
        let concurrent = await withTaskGroup(of: [[UInt8]].self) { group in
            for _ in 0..<8 { group.addTask { (0..<500).map { _ in SecretToken.randomBytes(32) } } }
            return await group.reduce(into: []) { $0 += $1 }
        }
        XCTAssertEqual(Set(concurrent).count, 4000, "no two threads are handed the same bytes")
    }

    func testTheDigestIsSHA256() {
        XCTAssertEqual(
            SecretToken.hexEncode(SecretToken.digest("abc").bytes),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            SecretToken.hexEncode(SecretToken.digest("").bytes),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let long = String(repeating: "a", count: 1000)
        XCTAssertEqual(SecretToken.digest(long), long.utf8.withContiguousStorageIfAvailable { SecretToken.digest(bytes: UnsafeRawBufferPointer($0)) })
        XCTAssertEqual(SecretToken.hash("abc"), SecretToken.digest("abc").bytes)
    }

    func testASessionCredentialKeepsOnlyTheDigest() {
        XCTAssertEqual(Credential.session(secret: "abc"), .session(SecretToken.digest("abc")))
        XCTAssertNotEqual(Credential.session(secret: "abc"), .session(secret: "abd"))
    }

    func testASessionSecretBeginsWithItsLocator() {
        let locator: UInt64 = 1_764_612_345_678_000
        let secret = SecretToken.generateSession(locator: locator)
        XCTAssertEqual(secret.utf8.count, 54, "40 bytes in base64url: one SHA-256 block")
        // 0x000644e7d407c8b0 in base64url: its 64 bits, then 2 of the random bytes.
        XCTAssertTrue(secret.hasPrefix("AAZE59QHyL"), secret)
        XCTAssertTrue(secret.utf8.allSatisfy { $0.isBase64URLDigit }, secret)
        XCTAssertEqual(SecretToken.digest(secret).locator, locator)
        XCTAssertEqual(SecretToken.digest(secret).bytes, SecretToken.hash(secret))
        let other = SecretToken.generateSession(locator: locator)
        XCTAssertNotEqual(secret, other, "the 32 random bytes differ")
        for time in [UInt64(1), 1_000_000, 1_764_612_345_678_000, UInt64(Int64.max), UInt64.max] {
            let secret = SecretToken.generateSession(locator: time)
            XCTAssertEqual(SecretToken.digest(secret).locator, time, secret)
        }
    }

    /// Located secrets made before the base64url ones (16 hex digits, then 64) still carry theirs.
    func testAHexSecretKeepsItsLocator() {
        XCTAssertEqual(SecretToken.digest("000644e7d407c8b0" + String(repeating: "a", count: 64)).locator, 1_764_612_345_678_000)
        XCTAssertEqual(SecretToken.digest("0123456789abcdef" + String(repeating: "a", count: 64)).locator, 0x0123_4567_89AB_CDEF, "every digit")
    }

    func testASecretWithoutALocatorHasNone() {
        XCTAssertEqual(SecretToken.digest(SecretToken.generate()).locator, 0, "64 hex characters: a schema-1 secret")
        XCTAssertEqual(SecretToken.digest(String(repeating: "g", count: 80)).locator, 0, "not hex")
        XCTAssertEqual(SecretToken.digest("000644E7D407C8B0" + String(repeating: "a", count: 64)).locator, 0, "upper case")
        XCTAssertEqual(SecretToken.digest("abc").locator, 0)
        XCTAssertEqual(SecretToken.digest("0123456789abcde/" + String(repeating: "a", count: 64)).locator, 0, "not hex in the last place")
        XCTAssertEqual(SecretToken.digest("0123456789abcde:" + String(repeating: "a", count: 64)).locator, 0, "not hex in the last place")
        XCTAssertEqual(SecretToken.digest("g123456789abcdef" + String(repeating: "a", count: 64)).locator, 0, "not hex in the first place")
        let secret = SecretToken.generateSession(locator: 1_764_612_345_678_000)
        for (place, bad) in [(0, "+"), (10, "/"), (10, "="), (5, ".")] {
            var bytes = Array(secret.utf8)
            bytes[place] = bad.utf8.first!
            XCTAssertEqual(SecretToken.digest(String(decoding: bytes, as: UTF8.self)).locator, 0, "\(bad) at \(place)")
        }
        XCTAssertEqual(SecretToken.digest(String(secret.dropLast())).locator, 0, "53 characters")
    }

    /// RFC 4648's test vectors, in the URL alphabet and unpadded.
    func testBase64URL() {
        let vectors = ["": "", "f": "Zg", "fo": "Zm8", "foo": "Zm9v", "foob": "Zm9vYg", "fooba": "Zm9vYmE", "foobar": "Zm9vYmFy"]
        for (text, encoded) in vectors { XCTAssertEqual(SecretToken.base64URLEncode(Array(text.utf8)), encoded, text) }
        XCTAssertEqual(SecretToken.base64URLEncode([0xFB, 0xFF, 0xBF]), "-_-_", "the two characters that differ from base64")
        XCTAssertEqual(SecretToken.base64URLEncode(Array(repeating: 0, count: 40)).count, 54)
    }

    /// Digests hash by their own first word (no SipHash); as keys they still find exactly the
    /// digest of the same secret.
    func testDigestsAreDictionaryKeys() {
        var table: [SecretDigest: Int] = [:]
        for i in 0..<1000 { table[SecretToken.digest("secret-\(i)")] = i }
        XCTAssertEqual(table.count, 1000)
        for i in 0..<1000 { XCTAssertEqual(table[SecretToken.digest("secret-\(i)")], i) }
        XCTAssertNil(table[SecretToken.digest("secret-1000")])
        XCTAssertEqual(SecretToken.digest("a").hashValue, SecretToken.digest("a").hashValue)
    }
}

private extension UInt8 {
    var isBase64URLDigit: Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || self == UInt8(ascii: "-") || self == UInt8(ascii: "_")
    }
}
