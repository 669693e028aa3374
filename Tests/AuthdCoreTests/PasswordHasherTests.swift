import AuthdCore
import XCTest

final class PasswordHasherTests: XCTestCase {
    func testVerifiesHashesMadeByAnIndependentImplementation() {
        let hasher = PasswordHasher(parameters: .testing)
        for (password, encoded) in argon2Vectors {
            XCTAssertTrue(hasher.verify(password, encoded: encoded), encoded)
            XCTAssertFalse(hasher.verify(password + "x", encoded: encoded), encoded)
        }
    }

    func testHashesAreArgon2idPHCWithTheConfiguredParametersAndAFreshSalt() throws {
        let hasher = PasswordHasher(parameters: .init(memoryKiB: 256, iterations: 3, parallelism: 2))
        let first = try hasher.hash("correct horse")
        let second = try hasher.hash("correct horse")
        XCTAssertTrue(first.hasPrefix("$argon2id$v=19$m=256,t=3,p=2$"), first)
        XCTAssertNotEqual(first, second, "each hash has its own salt")
        XCTAssertTrue(hasher.verify("correct horse", encoded: first))
        XCTAssertFalse(hasher.verify("correct horsE", encoded: first))
        // Parameters are read from the hash: a hasher with other settings still verifies it.
        XCTAssertTrue(PasswordHasher(parameters: .testing).verify("correct horse", encoded: second))
    }

    func testGarbageHashesNeverVerify() {
        let hasher = PasswordHasher(parameters: .testing)
        for encoded in ["", "$argon2id$", "$argon2id$v=19$m=64,t=1,p=1$!!$!!", "plaintext", "$2b$10$abc"] {
            XCTAssertFalse(hasher.verify("password", encoded: encoded), encoded)
        }
    }
}
