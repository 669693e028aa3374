@testable import AuthdCore
import XCTest

/// Every import algorithm against hashes from independent implementations (see
/// Vectors/make_import_vectors.py), plus a wrong password for each.
final class ImportedHashesTests: XCTestCase {
    private func verify(_ imported: ImportedPassword, _ password: String) throws -> Bool {
        let (algorithm, hash, options) = try Users.validated(imported)
        let verifier = try XCTUnwrap(PasswordVerifiers.table[algorithm], algorithm)
        return try verifier(.init(password: password, stored: hash, options: options, argon2: PasswordHasher(parameters: .testing)))
    }

    func testEveryVectorVerifiesAndAWrongPasswordDoesNot() throws {
        XCTAssertEqual(importVectors.count, 20)
        for vector in importVectors {
            XCTAssertTrue(try verify(vector, importPassword), "\(vector)")
            XCTAssertFalse(try verify(vector, importPassword + "!"), "\(vector)")
            XCTAssertFalse(try verify(vector, ""), "\(vector)")
        }
    }

    func testArgon2ImportsVerifyWhateverTheirParameters() throws {
        for (password, encoded) in argon2Vectors {
            XCTAssertTrue(try verify(.argon2(encoded), password))
        }
    }

    func testUpperCaseHexDigestsAreAccepted() throws {
        XCTAssertTrue(try verify(.md5("88E4DDD2402D92D50E1879D6ECD9FFD4"), importPassword))
    }

    func testInvalidImportParametersAreRefused() {
        let invalid: [ImportedPassword] = [
            .sha("00", version: "sha999"),
            .bcrypt("$1$notbcrypt"),
            .argon2("plain"),
            .scrypt("00", salt: "", cpu: 16384, memory: 8, parallel: 1, length: 64),
            .scrypt("00", salt: "s", cpu: 1000, memory: 8, parallel: 1, length: 64),
            .scrypt("00", salt: "s", cpu: 1 << 22, memory: 64, parallel: 1, length: 64),
            .scrypt("00", salt: "s", cpu: 16384, memory: 8, parallel: 1, length: 8),
            .scryptModified("x", salt: "not base64!", saltSeparator: "AQ==", signerKey: "AQ=="),
        ]
        for imported in invalid {
            XCTAssertThrowsError(try Users.validated(imported), "\(imported)") { error in
                XCTAssertEqual((error as? AuthdError)?.type, "general_argument_invalid")
            }
        }
    }
}
