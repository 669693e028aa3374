import AuthdStore
import XCTest

@testable import AuthdCore

/// JWT verification and the tokens kept verified: a token is verified once, then served from
/// memory until it expires, and only while the key that signed it is loaded.
final class JWTIssuerTests: DomainTestCase {
    private var issuer: JWTIssuer!

    override func setUp() async throws {
        try await super.setUp()
        issuer = JWTIssuer(directory: directory)
        try await issuer.start()
    }

    private func assertInvalid(_ token: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try issuer.verify(token), file: file, line: line) {
            XCTAssertEqual(($0 as? AuthdError)?.type, "user_jwt_invalid", file: file, line: line)
        }
    }

    func testATokenIsVerifiedOnceThenServedFromMemoryUntilItExpires() throws {
        let token = try issuer.sign(userID: "u1", sessionID: "s1", duration: 60)
        let first = try issuer.verify(token)
        XCTAssertEqual(first.userID, "u1")
        XCTAssertEqual(first.sessionID, "s1")
        XCTAssertEqual(issuer.verifiedFigures, CacheFigures(hits: 0, misses: 1), "verified once")
        XCTAssertEqual(issuer.verifiedCount, 1)
        let second = try issuer.verify(token)
        XCTAssertEqual(second.userID, "u1")
        XCTAssertEqual(second.sessionID, "s1")
        XCTAssertEqual(issuer.verifiedFigures, CacheFigures(hits: 1, misses: 1), "then found")
        clock.advance(seconds: 60)
        assertInvalid(token)
        XCTAssertEqual(issuer.verifiedFigures.hits, 2, "the kept token was found, and refused as expired")
    }

    func testTokensThatDoNotVerifyAreNeverKept() throws {
        let token = try issuer.sign(userID: "u1", sessionID: "", duration: 60)
        let parts = token.split(separator: ".").map(String.init)
        let forgedPayload = JWTIssuer.base64URL(Data(#"{"exp":9999999999,"iat":0,"sessionId":"","userId":"admin"}"#.utf8))
        // The signature's first character carries six of its bits: another one changes it.
        let tamperedSignature = (parts[2].hasPrefix("A") ? "B" : "A") + parts[2].dropFirst()
        let expired = try issuer.sign(userID: "u1", sessionID: "", duration: 0)
        for bad in [
            "\(parts[0]).\(forgedPayload).\(parts[2])", "\(parts[0]).\(parts[1]).\(tamperedSignature)", "a.b.c", "not-a-jwt",
            token + "=", expired,
        ] {
            assertInvalid(bad)
        }
        XCTAssertEqual(issuer.verifiedCount, 0)
        // The genuine one still verifies, and is kept.
        XCTAssertEqual(try issuer.verify(token).userID, "u1")
        XCTAssertEqual(issuer.verifiedCount, 1)
    }

    func testARotationEmptiesTheVerifiedTokensAndTheOldKeyStillVerifiesItsOwn() async throws {
        let token = try issuer.sign(userID: "u1", sessionID: "s1", duration: 600)
        _ = try issuer.verify(token)
        XCTAssertEqual(issuer.verifiedCount, 1)
        _ = try await issuer.rotate(call: server)
        XCTAssertEqual(issuer.verifiedCount, 0, "a change of the keys empties it")
        XCTAssertEqual(try issuer.verify(token).userID, "u1", "the retired key still verifies its tokens")
        XCTAssertEqual(issuer.verifiedFigures.misses, 2, "verified again, with the keys now loaded")
        XCTAssertEqual(issuer.verifiedCount, 1)
    }

    func testWithNoRoomEveryUseVerifies() async throws {
        issuer = JWTIssuer(directory: directory, verifiedCacheSize: 0)
        try await issuer.start()
        let token = try issuer.sign(userID: "u1", sessionID: "s1", duration: 60)
        XCTAssertEqual(try issuer.verify(token).userID, "u1")
        XCTAssertEqual(try issuer.verify(token).userID, "u1")
        XCTAssertEqual(issuer.verifiedCount, 0)
    }

    func testBase64URLRoundTripsEveryByteAndRefusesTheStandardAlphabet() {
        let bytes = Data((0...255).map(UInt8.init) + [0xfb, 0xff, 0xfe])
        for length in [0, 1, 2, 3, 4, 5, 259] {
            let data = bytes.prefix(length)
            let encoded = JWTIssuer.base64URL(data)
            XCTAssertFalse(encoded.contains { $0 == "+" || $0 == "/" || $0 == "=" }, encoded)
            XCTAssertEqual(JWTIssuer.decodeBase64URL(Substring(encoded)), Data(data))
        }
        XCTAssertEqual(JWTIssuer.base64URL(Data([0xfb, 0xff])), "-_8")
        for bad in ["-_8=", "+/8", "A", "AB$C"] { XCTAssertNil(JWTIssuer.decodeBase64URL(Substring(bad)), bad) }
    }
}
