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
        let (secret, locator) = SecretToken.generateSession(nowMicroseconds: 1_764_612_345_678_000)
        XCTAssertEqual(locator, 1_764_612_345_678_000)
        XCTAssertEqual(secret.count, 80)
        XCTAssertTrue(secret.hasPrefix("000644e7d407c8b0"), secret)
        XCTAssertTrue(secret.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        XCTAssertEqual(SecretToken.digest(secret).locator, locator)
        XCTAssertEqual(SecretToken.digest(secret).bytes, SecretToken.hash(secret))
        let (other, _) = SecretToken.generateSession(nowMicroseconds: 1_764_612_345_678_000)
        XCTAssertNotEqual(secret, other, "the 32 random bytes differ")
    }

    func testASecretWithoutALocatorHasNone() {
        XCTAssertEqual(SecretToken.digest(SecretToken.generate()).locator, 0, "64 hex characters: a schema-1 secret")
        XCTAssertEqual(SecretToken.digest(String(repeating: "g", count: 80)).locator, 0, "not hex")
        XCTAssertEqual(SecretToken.digest("000644E7D407C8B0" + String(repeating: "a", count: 64)).locator, 0, "upper case")
        XCTAssertEqual(SecretToken.digest("abc").locator, 0)
    }
}
