import AuthdClient
import AuthdProto
import Foundation
import XCTest

/// Imported users sign in with their old password, and the first login re-hashes it.
final class PasswordImportTests: ClientTestCase {
    override var daemonArguments: [String] { ["--set", "peer_uid.\(getuid())=users.read,users.write,sessions.write"] }

    // Made by Python's hashlib and passlib for "correct horse battery" (see
    // Tests/AuthdCoreTests/Vectors/make_import_vectors.py).
    func testImportedHashesSignInAndAreRehashedToArgon2() async throws {
        var md5 = Authd_V1_CreateHashedUserRequest()
        md5.userID = "md5user"
        md5.email = "md5@example.com"
        md5.password = "88e4ddd2402d92d50e1879d6ecd9ffd4"
        var sha = Authd_V1_CreateSHAUserRequest()
        sha.userID = "shauser"
        sha.email = "sha@example.com"
        sha.password = "158bf15124ab3d43973eaa418d958bda1a5567d28beb3350c72fa12e"
        sha.passwordVersion = "sha512/224"
        var scrypt = Authd_V1_CreateScryptUserRequest()
        scrypt.userID = "scryptuser"
        scrypt.email = "scrypt@example.com"
        scrypt.password = try XCTUnwrap(Self.scryptVector)
        scrypt.passwordSalt = "pepper"
        scrypt.passwordCpu = 1024
        scrypt.passwordMemory = 8
        scrypt.passwordParallel = 1
        scrypt.passwordLength = 32

        let imported: [(String, String)] = [
            (try await client.call("authd.v1.Users/CreateMD5User", md5, returning: User.self).hash, "md5@example.com"),
            (try await client.call("authd.v1.Users/CreateSHAUser", sha, returning: User.self).hash, "sha@example.com"),
            (try await client.call("authd.v1.Users/CreateScryptUser", scrypt, returning: User.self).hash, "scrypt@example.com"),
        ]
        XCTAssertEqual(imported.map(\.0), ["md5", "sha", "scrypt"])
        for (_, email) in imported {
            await assertAuthdError("user_invalid_credentials", 401) {
                try await self.client.createEmailPasswordSession(email: email, password: "wrong password")
            }
            let session = try await client.createEmailPasswordSession(email: email, password: "correct horse battery")
            let user = try await client.getUser(userID: session.userID)
            XCTAssertEqual(user.hash, "argon2", "the first login re-hashes \(email)")
            _ = try await client.createEmailPasswordSession(email: email, password: "correct horse battery")
            await assertAuthdError("user_invalid_credentials", 401) {
                try await self.client.createEmailPasswordSession(email: email, password: "wrong password")
            }
        }

        var bad = Authd_V1_CreateSHAUserRequest()
        bad.userID = "bad"
        bad.email = "bad@example.com"
        bad.password = "00000000"
        bad.passwordVersion = "md4"
        await assertAuthdError("general_argument_invalid", 400) {
            try await self.client.call("authd.v1.Users/CreateSHAUser", bad, returning: User.self)
        }
        await assertAuthdError("user_not_found", 404) { try await self.client.getUser(userID: "bad") }
    }

    static let scryptVector: String? = {
        // hashlib.scrypt(b"correct horse battery", salt=b"pepper", n=1024, r=8, p=1, dklen=32).hex()
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("AuthdCoreTests/Vectors/ImportVectors.swift")
        guard let text = try? String(contentsOf: file, encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.contains("salt: \"pepper\"") }),
            let start = line.firstIndex(of: "\""), let end = line[line.index(after: start)...].firstIndex(of: "\"")
        else { return nil }
        return String(line[line.index(after: start)..<end])
    }()
}
