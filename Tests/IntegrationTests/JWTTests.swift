import AuthdClient
import AuthdProto
import Foundation
import XCTest

/// JWTs: issued for sessions, accepted as credentials, revoked with their session, verified
/// offline with the JWKS by an independent library (PyJWT), and rotated.
final class JWTTests: ClientTestCase {
    override var daemonArguments: [String] {
        ["--set", "operator_uids=4294967000", "--set", "peer_gid.\(getgid())=users.write,settings.read"]
    }

    func testJWTsAuthenticateUntilTheirSessionEnds() async throws {
        _ = try await client.createUser(userID: "j", email: "j@example.com", password: "password-1")
        let session = try await client.createUserSession(userID: "j")
        let token = try await client.createJWT(credentials: .session(session.secret))
        let me = try await client.getAccount(credentials: .jwt(token))
        XCTAssertEqual(me.id, "j")
        await assertAuthdError("user_jwt_creation_denied", 403) { try await self.client.createJWT(credentials: .jwt(token)) }
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.createJWT(duration: 3601, credentials: .session(session.secret))
        }

        // Forged: the payload changed, the signature kept.
        let parts = token.split(separator: ".")
        let forgedPayload = Data(#"{"exp":9999999999,"iat":0,"sessionId":"","userId":"j"}"#.utf8).base64EncodedString()
            .replacingOccurrences(of: "=", with: "")
        // Wrong key id: the header names a key authd never had.
        let wrongKid = Data(#"{"alg":"EdDSA","kid":"nosuchkey","typ":"JWT"}"#.utf8).base64EncodedString()
            .replacingOccurrences(of: "=", with: "")
        for bad in ["\(parts[0]).\(forgedPayload).\(parts[2])", "\(wrongKid).\(parts[1]).\(parts[2])", "not-a-jwt", "a.b.c", token + "x"] {
            await assertAuthdError("user_jwt_invalid", 401) { try await self.client.getAccount(credentials: .jwt(bad)) }
        }
        let expired = try await client.createJWT(duration: 0, credentials: .session(session.secret))
        await assertAuthdError("user_jwt_invalid", 401) { try await self.client.getAccount(credentials: .jwt(expired)) }

        try await client.deleteUserSession(userID: "j", sessionID: session.id)
        await assertAuthdError("general_unauthorized_scope", 401) { try await self.client.getAccount(credentials: .jwt(token)) }

        // A server JWT for a user without sessions is bound to no session.
        let unbound = try await client.createUserJWT(userID: "j")
        let viaUnbound = try await client.getAccount(credentials: .jwt(unbound))
        XCTAssertEqual(viaUnbound.id, "j")
    }

    /// Tokens not verified lately are verified off the event loop, then the call is served:
    /// pipelined among session checks on one connection, each call gets its own answer, a
    /// genuine token's first use signs in, forged ones are refused, and `Health/Stats` counts them.
    func testTokensAreVerifiedOffTheLoopAmongPipelinedSessionChecks() async throws {
        _ = try await client.createUser(userID: "p", email: "p@example.com", password: "password-1")
        let session = try await client.createUserSession(userID: "p")
        let token = try await client.createJWT(credentials: .session(session.secret))
        let before = try await client.stats()
        let forged = signatureAltered(token)

        var requests: [Authd_V1_Request] = []
        for index in 0..<24 {
            var request = Authd_V1_Request()
            request.id = UInt64(index + 1)
            request.method = "authd.v1.Account/Get"
            switch index % 3 {
            case 0: request.credentials.session = session.secret
            case 1: request.credentials.jwt = forged
            default: request.credentials.jwt = token
            }
            requests.append(request)
        }
        let raw = try RawConnection(socketPath: daemon.socketPath)
        // One write: the daemon reads them as one batch.
        try raw.send(RawConnection.frames(requests))
        var answers: [UInt64: Authd_V1_Response] = [:]
        for _ in requests {
            let answer = try XCTUnwrap(try raw.receiveResponse())
            XCTAssertNil(answers[answer.id], "one answer per call")
            answers[answer.id] = answer
        }
        for request in requests {
            let answer = try XCTUnwrap(answers[request.id], "call \(request.id) answered")
            if request.credentials.jwt == forged {
                XCTAssertEqual(answer.error.type, "user_jwt_invalid", "call \(request.id)")
            } else {
                XCTAssertFalse(answer.hasError, "call \(request.id): \(answer.error)")
                XCTAssertEqual(try Authd_V1_User(serializedBytes: answer.body).id, "p")
            }
        }

        let after = try await client.stats()
        // The genuine token was verified at most once per call in flight before it was kept
        // (the batch's calls left it pending together), and every forged one each time.
        let verified = after.jwtVerifications - before.jwtVerifications
        let refused = after.jwtsRefused - before.jwtsRefused
        XCTAssertEqual(refused, 8)
        XCTAssertGreaterThan(verified, refused)
        XCTAssertLessThanOrEqual(verified, refused + 8)
        XCTAssertGreaterThan(after.jwtVerificationCpuMicros, before.jwtVerificationCpuMicros)
        // Kept now: another use is not verified again.
        let me = try await client.getAccount(credentials: .jwt(token))
        XCTAssertEqual(me.id, "p")
        let last = try await client.stats()
        XCTAssertEqual(last.jwtVerifications, after.jwtVerifications)
    }

    func testOfflineVerificationWithPyJWTAndKeyRotation() async throws {
        // scripts/test installs PyJWT when Python is present; without it this test is skipped.
        let python = "python3"
        guard Self.pythonHasPyJWT(python) else {
            throw XCTSkip("python3 with PyJWT and cryptography is not installed")
        }
        _ = try await client.createUser(userID: "o", email: "o@example.com")
        let session = try await client.createUserSession(userID: "o")
        let token = try await client.createJWT(duration: 600, credentials: .session(session.secret))
        let jwks = try await client.getJWKS()
        let claims = try Self.run(python, [Self.script, jwks, token])
        XCTAssertEqual(claims.status, 0, claims.output)
        XCTAssertTrue(claims.output.contains("\"sessionId\": \"\(session.id)\""), claims.output)
        XCTAssertTrue(claims.output.contains("\"userId\": \"o\""), claims.output)

        // Rotation: new tokens carry the new kid; the old key still verifies its tokens.
        let operatorDaemon = try DaemonProcess(directory: daemon.directory, extraArguments: ["--set", "operator_uids=\(getuid())"])
        await client.close()
        _ = try await daemon.stop()
        try await operatorDaemon.launch()
        daemon = operatorDaemon
        client = try await operatorDaemon.connect()
        let newKid = try await client.rotateJWTKey()
        let rotated = try await client.getJWKS()
        XCTAssertTrue(rotated.contains(newKid))
        let oldStillValid = try Self.run(python, [Self.script, rotated, token])
        XCTAssertEqual(oldStillValid.status, 0, oldStillValid.output)
        let viaOldKey = try await client.getAccount(credentials: .jwt(token))
        XCTAssertEqual(viaOldKey.id, "o", "tokens of the old key keep working")
        let fresh = try await client.createJWT(credentials: .session(session.secret))
        XCTAssertTrue(try Self.run(python, [Self.script, rotated, fresh]).status == 0)
        // A token signed by a key the JWKS does not list fails offline verification.
        let stale = try Self.run(python, [Self.script, jwks, fresh])
        XCTAssertNotEqual(stale.status, 0)
        XCTAssertTrue(stale.output.contains("unknown kid"), stale.output)
    }

    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Scripts/verify_jwt.py").path

    static func pythonHasPyJWT(_ python: String) -> Bool {
        (try? run(python, ["-c", "import jwt, cryptography"]).status) == 0
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        try runProcess(URL(fileURLWithPath: "/usr/bin/env"), [executable] + arguments)
    }
}

/// `token` with the first character of its signature changed (it carries six of the
/// signature's bits): well formed, naming a key the daemon has, and forged.
func signatureAltered(_ token: String) -> String {
    let signature = token.split(separator: ".")[2]
    return String(token.dropLast(signature.count) + (signature.hasPrefix("A") ? "B" : "A") + signature.dropFirst())
}
