@testable import AuthdCore
import XCTest

final class SecretTokenTests: XCTestCase {
    /// FIPS 180-2's examples: the digest the session index is keyed by must be plain SHA-256.
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
}
