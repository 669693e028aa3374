import AuthdStore

/// The project's auth settings (spec 14): read and changed by operators and keys with the
/// settings scopes; every operation reads them.
public final class ProjectSettings: Sendable {
    let directory: Directory

    /// The auth methods that can be switched off.
    public static let methods: Set<String> = ["email-password", "magic-url", "email-otp", "anonymous", "invites", "jwt", "phone"]

    public init(directory: Directory) {
        self.directory = directory
    }

    public func get(call: Call) throws -> AuthSettings {
        try directory.settings()
    }

    /// Applies `change` to the current settings, validates the result and stores it.
    public func update(call: Call, _ change: @escaping @Sendable (inout AuthSettings) -> Void) async throws -> AuthSettings {
        let now = directory.clock.now()
        let record = directory.changeRecord(
            "projects.default.policies.update", audit: "policies.update", resource: "project/default", userID: "",
            call: call, time: now)
        let directory = self.directory
        return try await directory.store.write { w in
            var settings = try directory.settings(in: w)
            change(&settings)
            try Self.validate(settings)
            try w.putSettings(settings)
            try w.appendChange(record)
            return settings
        }
    }

    static func validate(_ s: AuthSettings) throws {
        func range(_ name: String, _ value: Int, _ r: ClosedRange<Int>) throws {
            guard r.contains(value) else {
                throw AuthdError.argumentInvalid("Invalid `\(name)` param: Value must be a valid range between \(r.lowerBound) and \(r.upperBound)")
            }
        }
        try range("user_limit", s.userLimit, 0...10_000)
        try range("max_sessions", s.maxSessions, 1...100)
        try range("duration", Int(s.duration), 60...31_536_000)
        try range("password_history", s.passwordHistory, 0...20)
        try range("password_min_length", s.passwordMinLength, 8...256)
        guard s.mockNumbers.count <= 5000 else { throw AuthdError.argumentInvalid("Invalid `mock_numbers` param: at most 5000") }
        var phones = Set<String>()
        for number in s.mockNumbers {
            _ = try FieldValidation.phone(number.phone, name: "mock_numbers")
            guard number.otp.count == 6, number.otp.allSatisfy(\.isASCII), number.otp.allSatisfy(\.isNumber) else {
                throw AuthdError.argumentInvalid("Invalid `mock_numbers` param: each OTP is exactly 6 digits")
            }
            guard phones.insert(number.phone).inserted else {
                throw AuthdError.argumentInvalid("Invalid `mock_numbers` param: \(number.phone) is listed twice")
            }
        }
        let unknown = s.disabledMethods.subtracting(methods)
        guard unknown.isEmpty else {
            throw AuthdError.argumentInvalid(
                "Invalid `disabled_methods` param: unknown \(unknown.sorted().joined(separator: ", ")); known: \(methods.sorted().joined(separator: ", "))")
        }
    }
}
