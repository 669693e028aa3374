@testable import AuthdCore
import XCTest

final class FieldValidationTests: XCTestCase {
    func testEmailsAreTrimmedLowerCasedAndChecked() throws {
        XCTAssertEqual(try FieldValidation.email("  Ada.Lovelace+tag@Example.CO.uk "), "ada.lovelace+tag@example.co.uk")
        for valid in ["a@b.co", "first.last@sub.example.org", "o'brien@example.ie", "x_y-z@a-b.example"] {
            XCTAssertTrue(FieldValidation.isValidEmail(valid), valid)
        }
        for invalid in [
            "", "plain", "@example.com", "a@", "a@@example.com", "a@b@example.com", ".a@example.com",
            "a.@example.com", "a..b@example.com", "a@localhost", "a@-example.com", "a@example-.com",
            "a@example..com", "a@example.123", "a b@example.com", "a@exa mple.com",
            String(repeating: "a", count: 65) + "@example.com",
        ] {
            XCTAssertFalse(FieldValidation.isValidEmail(invalid), invalid)
        }
        XCTAssertThrowsError(try FieldValidation.email("nope")) { error in
            XCTAssertEqual((error as? AuthdError)?.type, "general_argument_invalid")
        }
    }

    func testPasswordLengthsAreCountedInBytes() {
        XCTAssertNoThrow(try FieldValidation.newPassword("12345678"))
        XCTAssertThrowsError(try FieldValidation.newPassword("1234567"))
        XCTAssertNoThrow(try FieldValidation.newPassword(String(repeating: "p", count: 256)))
        XCTAssertThrowsError(try FieldValidation.newPassword(String(repeating: "p", count: 257)))
        // 86 three-byte characters are 258 bytes: too long, although only 86 characters.
        XCTAssertThrowsError(try FieldValidation.newPassword(String(repeating: "€", count: 86)))
        XCTAssertNoThrow(try FieldValidation.loginPassword("€€€"), "3 characters, 9 bytes")
    }

    func testNames() {
        XCTAssertNoThrow(try FieldValidation.name("A"))
        XCTAssertNoThrow(try FieldValidation.name(String(repeating: "é", count: 128)))
        XCTAssertThrowsError(try FieldValidation.name(""))
        XCTAssertThrowsError(try FieldValidation.name(String(repeating: "n", count: 129)))
    }

    func testIdentifiers() throws {
        for valid in ["a", "A1", "user.name", "user_name", "user-name", String(repeating: "x", count: 36)] {
            XCTAssertTrue(Identifiers.isValidKey(valid), valid)
        }
        for invalid in ["", "_a", ".a", "-a", "$a", "a b", "ä", String(repeating: "x", count: 37), "a/b", "a\u{0}b"] {
            XCTAssertFalse(Identifiers.isValidKey(invalid), invalid)
        }
        let generated = try Identifiers.customID("unique()", name: "userId", nowMicroseconds: 1_700_000_000_123_456)
        XCTAssertEqual(generated.count, 20)
        XCTAssertTrue(generated.hasPrefix("6553f100" + "1e240"), "seconds then microseconds, in hex: \(generated)")
        XCTAssertTrue(Identifiers.isValidKey(generated))
        XCTAssertEqual(try Identifiers.customID("mine", name: "userId", nowMicroseconds: 0), "mine")
        XCTAssertThrowsError(try Identifiers.customID("-mine", name: "userId", nowMicroseconds: 0))
        let later = Identifiers.unique(nowMicroseconds: 1_700_000_001_000_000)
        XCTAssertLessThan(generated, later, "ids sort by creation time")
    }

    func testIdsMadeInTheSameClockStepNeverRepeat() {
        // 28 random bits per id gave about 19 repeats among 100k ids of one millisecond.
        let ids = (0..<100_000).map { _ in Identifiers.unique(nowMicroseconds: 1_700_000_000_123_000) }
        XCTAssertEqual(Set(ids).count, ids.count)
        XCTAssertTrue(ids.allSatisfy { $0.hasPrefix("6553f100" + "1e078") && Identifiers.isValidKey($0) })
    }

    func testSecretTokens() {
        let secret = SecretToken.generate()
        XCTAssertEqual(secret.count, 64)
        XCTAssertTrue(secret.allSatisfy { "0123456789abcdef".contains($0) })
        XCTAssertNotEqual(secret, SecretToken.generate())
        // SHA-256("abc"), FIPS 180-2.
        XCTAssertEqual(
            SecretToken.hexEncode(SecretToken.hash("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertTrue(SecretToken.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        XCTAssertFalse(SecretToken.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        XCTAssertFalse(SecretToken.constantTimeEquals([1, 2, 3], [1, 2]))
    }
}
