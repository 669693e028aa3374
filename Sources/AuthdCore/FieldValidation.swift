/// Validators of the request fields (spec 1.8, 9.1).
public enum FieldValidation {
    /// Trims and lower-cases an email and checks its form: one `@`, a dot-atom local part of at
    /// most 64 bytes, a domain of at least two labels (letters, digits, inner hyphens) ending in
    /// a label that starts with a letter, at most 320 bytes in all.
    public static func email(_ raw: String, name: String = "email") throws -> String {
        let email = String(raw.trimmingASCIIWhitespace()).lowercased()
        guard isValidEmail(email) else {
            throw AuthdError.argumentInvalid("Invalid `\(name)` param: Value must be a valid email address")
        }
        return email
    }

    static func isValidEmail(_ email: String) -> Bool {
        let bytes = Array(email.utf8)
        guard bytes.count <= 320, let at = bytes.firstIndex(of: UInt8(ascii: "@")),
            bytes.lastIndex(of: UInt8(ascii: "@")) == at
        else { return false }
        let local = bytes[..<at]
        let domain = bytes[(at + 1)...]
        guard (1...64).contains(local.count), (1...253).contains(domain.count) else { return false }
        let atext = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-".utf8)
        let localParts = local.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard localParts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(atext.contains) }) else { return false }
        let labels = domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return false }
        let labelChars = Set("abcdefghijklmnopqrstuvwxyz0123456789-".utf8)
        for label in labels {
            guard (1...63).contains(label.count), label.allSatisfy(labelChars.contains),
                label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-")
            else { return false }
        }
        guard let tld = labels.last?.first, tld >= UInt8(ascii: "a"), tld <= UInt8(ascii: "z") else { return false }
        return true
    }

    /// A password presented at login: 8 to 256 bytes.
    public static func loginPassword(_ password: String, name: String = "password") throws {
        guard (8...256).contains(password.utf8.count) else {
            throw AuthdError.argumentInvalid(
                "Invalid `\(name)` param: Password must be between 8 and 256 characters long.")
        }
    }

    /// A new password: at least `minimumLength` (8 by default) and at most 256 bytes.
    public static func newPassword(_ password: String, minimumLength: Int = 8, name: String = "password") throws {
        guard password.utf8.count >= minimumLength, password.utf8.count <= 256 else {
            throw AuthdError.argumentInvalid(
                "Invalid `\(name)` param: Password must be between \(minimumLength) and 256 characters long.")
        }
    }

    /// A display name: 1 to 128 characters.
    public static func name(_ name: String, parameter: String = "name") throws {
        guard (1...128).contains(name.count) else {
            throw AuthdError.argumentInvalid(
                "Invalid `\(parameter)` param: Value must be a valid string and at least 1 chars and no longer than 128 chars")
        }
    }
}

extension String {
    func trimmingASCIIWhitespace() -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }), let end = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return self[start...end]
    }
}

extension FieldValidation {
    /// E.164: `+`, then 7 to 15 digits, the first not 0.
    public static func phone(_ phone: String, name: String = "phone") throws -> String {
        let bytes = Array(phone.utf8)
        guard (8...16).contains(bytes.count), bytes[0] == UInt8(ascii: "+"), bytes[1] != UInt8(ascii: "0"),
            bytes.dropFirst().allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else {
            throw AuthdError.argumentInvalid(
                "Invalid `\(name)` param: Phone number must start with a '+' can have a maximum of fifteen digits.")
        }
        return phone
    }

    /// Labels: 1-36 alphanumeric characters each, at most 1000; duplicates dropped, first
    /// occurrence kept (spec 1.8).
    public static func labels(_ labels: [String]) throws -> [String] {
        guard labels.count <= 1000 else { throw AuthdError.argumentInvalid("Invalid `labels` param: at most 1000 labels") }
        var seen = Set<String>()
        var result: [String] = []
        for label in labels {
            guard (1...36).contains(label.utf8.count),
                label.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) })
            else {
                throw AuthdError.argumentInvalid(
                    "Invalid `labels` param: Value must be a valid string and at least 1 chars and no longer than 36 chars, alphanumeric only")
            }
            if seen.insert(label).inserted { result.append(label) }
        }
        return result
    }
}
