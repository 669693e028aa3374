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

    /// `token` with the first character of its signature changed (it carries six of the
    /// signature's bits): well formed, naming a loaded key, and forged.
    static func signatureAltered(_ token: String) -> String {
        let signature = token.split(separator: ".")[2]
        return String(token.dropLast(signature.count) + (signature.hasPrefix("A") ? "B" : "A") + signature.dropFirst())
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
        let expired = try issuer.sign(userID: "u1", sessionID: "", duration: 0)
        for bad in [
            "\(parts[0]).\(forgedPayload).\(parts[2])", Self.signatureAltered(token), "a.b.c", "not-a-jwt",
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

    // MARK: A JWT's sign-in, through the session cache

    /// An authorizer that accepts this issuer's tokens, and a user with a session.
    private func signedInUser() async throws -> (Authorizer, users: Users, userID: String, sessionID: String) {
        let authorizer = Authorizer(store: store, clock: clock, jwt: issuer)
        let user = try await users.create(userID: "jay", email: "jay@example.com", phone: nil, password: nil, name: nil, call: server)
        let session = try await users.createSession(userID: user.id, call: server)
        return (authorizer, users, user.id, session.record.id)
    }

    private func account(_ authorizer: Authorizer, _ credential: Credential) throws -> Call {
        try authorizer.authorize(RequestContext(credential: credential), scopes: [Scope.account])
    }

    private func assertRefused(_ type: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Call) {
        XCTAssertThrowsError(try body(), file: file, line: line) {
            XCTAssertEqual(($0 as? AuthdError)?.type, type, file: file, line: line)
        }
    }

    func testASessionsJWTIsServedFromTheSessionCacheUnderAKeyOfItsOwn() async throws {
        let (authorizer, _, userID, sessionID) = try await signedInUser()
        let token = try issuer.sign(userID: userID, sessionID: sessionID, duration: 600)
        let first = try account(authorizer, .jwt(token))
        guard case .user(let signedIn) = first.caller else { return XCTFail("a signed-in caller: \(first.caller)") }
        XCTAssertEqual(signedIn.user.id, userID)
        XCTAssertEqual(signedIn.session.id, sessionID)
        XCTAssertEqual(authorizer.cachedSessions, 1, "kept in the session cache")
        let hits = authorizer.sessionCacheFigures.hits
        let second = try account(authorizer, .jwt(token))
        XCTAssertEqual(authorizer.sessionCacheFigures.hits, hits + 1)
        guard case .user(let again) = second.caller else { return XCTFail("a signed-in caller") }
        XCTAssertTrue(again === signedIn, "the cached entry")
        // The token presented as a session secret finds nothing: its entry's key is the
        // token's own, not the one a session secret's digest would be.
        assertRefused("general_unauthorized_scope") { try account(authorizer, .session(secret: token)) }
        XCTAssertEqual(authorizer.cachedSessions, 1)
        // A token made by a server for no session is read from the store, and not kept.
        let unbound = try issuer.sign(userID: userID, sessionID: "", duration: 600)
        guard case .user(let viaUnbound) = try account(authorizer, .jwt(unbound)).caller else { return XCTFail("signed in") }
        XCTAssertEqual(viaUnbound.user.id, userID)
        XCTAssertEqual(authorizer.cachedSessions, 1)
    }

    // MARK: Verification left to a pool

    private func accountLeavingSlowChecks(_ authorizer: Authorizer, _ credential: Credential) throws -> Call {
        try authorizer.authorize(
            RequestContext(credential: credential), requiring: ScopeMask([Scope.account]), at: authorizer.now(),
            leavingSlowChecks: true)
    }

    private func pending(_ body: () throws -> Call, file: StaticString = #filePath, line: UInt = #line) -> CredentialVerificationPending? {
        var pending: CredentialVerificationPending?
        XCTAssertThrowsError(try body(), file: file, line: line) { pending = $0 as? CredentialVerificationPending }
        XCTAssertNotNil(pending, "left pending", file: file, line: line)
        return pending
    }

    func testAnEventLoopLeavesATokenNotVerifiedLatelyToThePoolThenFindsItVerified() async throws {
        let pool = BlockingPool(threads: 1, name: "test-verify")
        defer { pool.shutdown() }
        let authorizer = Authorizer(store: store, clock: clock, jwt: issuer, verificationPool: pool)
        let user = try await users.create(
            userID: "lee", email: "lee@example.com", phone: nil, password: nil, name: nil, call: server)
        let session = try await users.createSession(userID: user.id, call: server)
        let token = try issuer.sign(userID: user.id, sessionID: session.record.id, duration: 600)

        guard let left = pending({ try accountLeavingSlowChecks(authorizer, .jwt(token)) }) else { return }
        XCTAssertEqual(issuer.verificationCounts.verified, 0, "nothing verified where authorize was called")
        XCTAssertFalse("\(left)".contains(token), "the token is not in the error's description")
        try await authorizer.verifyCredential(left)
        XCTAssertEqual(issuer.verificationCounts.verified, 1)
        XCTAssertGreaterThan(authorizer.verificationMicros, 0, "verified on the pool's thread")
        // A second call left pending with it (pipelined) finds it kept.
        try await authorizer.verifyCredential(left)
        XCTAssertEqual(issuer.verificationCounts.verified, 1)
        guard case .user(let signedIn) = try accountLeavingSlowChecks(authorizer, .jwt(token)).caller else {
            return XCTFail("signed in once verified")
        }
        XCTAssertEqual(signedIn.session.id, session.record.id)
        XCTAssertEqual(issuer.verificationCounts.verified, 1)
    }

    func testAForgedTokenLeftToThePoolIsRefusedThereAndNeverKept() async throws {
        let pool = BlockingPool(threads: 1, name: "test-verify")
        defer { pool.shutdown() }
        let authorizer = Authorizer(store: store, clock: clock, jwt: issuer, verificationPool: pool)
        let token = try issuer.sign(userID: "u1", sessionID: "", duration: 60)
        let forged = Self.signatureAltered(token)
        for round in 1...2 {
            guard let left = pending({ try accountLeavingSlowChecks(authorizer, .jwt(forged)) }) else { return }
            do {
                try await authorizer.verifyCredential(left)
                XCTFail("a forged token verified")
            } catch {
                XCTAssertEqual((error as? AuthdError)?.type, "user_jwt_invalid")
            }
            XCTAssertEqual(issuer.verificationCounts.verified, UInt64(round), "verified in full every time")
            XCTAssertEqual(issuer.verificationCounts.refused, UInt64(round))
        }
        XCTAssertEqual(issuer.verifiedCount, 0)
    }

    func testWithNoPoolOrNoRoomToKeepTokensTheCheckRunsWhereAuthorizeIsCalled() async throws {
        let user = try await users.create(
            userID: "kim", email: "kim@example.com", phone: nil, password: nil, name: nil, call: server)
        let token = try issuer.sign(userID: user.id, sessionID: "", duration: 600)
        // No pool: nowhere else to verify it.
        let inline = Authorizer(store: store, clock: clock, jwt: issuer)
        guard case .user = try accountLeavingSlowChecks(inline, .jwt(token)).caller else { return XCTFail("signed in") }
        // A pool, but no room to keep a verified token: served again, it would be left pending again.
        let pool = BlockingPool(threads: 1, name: "test-verify")
        defer { pool.shutdown() }
        let roomless = JWTIssuer(directory: directory, verifiedCacheSize: 0)
        try await roomless.start()
        let unkept = try roomless.sign(userID: user.id, sessionID: "", duration: 600)
        let authorizer = Authorizer(store: store, clock: clock, jwt: roomless, verificationPool: pool)
        guard case .user = try accountLeavingSlowChecks(authorizer, .jwt(unkept)).caller else { return XCTFail("signed in") }
        XCTAssertEqual(roomless.verificationCounts.verified, 1)
    }

    func testACachedJWTSignInEndsWithTheTokenItsSessionOrItsUser() async throws {
        let (authorizer, users, userID, sessionID) = try await signedInUser()
        // The token expires long before its session (an hour).
        let shortLived = try issuer.sign(userID: userID, sessionID: sessionID, duration: 60)
        _ = try account(authorizer, .jwt(shortLived))
        clock.advance(seconds: 61)
        assertRefused("user_jwt_invalid") { try account(authorizer, .jwt(shortLived)) }

        let token = try issuer.sign(userID: userID, sessionID: sessionID, duration: 600)
        _ = try account(authorizer, .jwt(token))
        _ = try await users.updateStatus(userID: userID, status: false, call: server)
        assertRefused("user_blocked") { try account(authorizer, .jwt(token)) }
        _ = try await users.updateStatus(userID: userID, status: true, call: server)
        _ = try account(authorizer, .jwt(token))
        try await users.deleteSession(userID: userID, sessionID: sessionID, call: server)
        assertRefused("general_unauthorized_scope") { try account(authorizer, .jwt(token)) }
    }

    func testAJWTsSignInEndsWhenItsSessionDoes() async throws {
        let (authorizer, _, userID, sessionID) = try await signedInUser()
        // Sessions last an hour here; the token, issued later, outlives it.
        clock.advance(seconds: 3000)
        let token = try issuer.sign(userID: userID, sessionID: sessionID, duration: 3600)
        _ = try account(authorizer, .jwt(token))
        clock.advance(seconds: 601)
        assertRefused("general_unauthorized_scope") { try account(authorizer, .jwt(token)) }
    }
}
