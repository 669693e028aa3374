import AuthdStore

/// The project's rules for new passwords (spec 9.1-9.5), applied on every path that sets one.
public enum PasswordPolicy {
    static let commonPasswords: Set<Substring> = Set(commonPasswordList.split(separator: "\n", omittingEmptySubsequences: true))

    /// What the personal-data check compares against.
    public struct PersonalData: Sendable {
        var userID: String
        var email: String
        var name: String
        var phone: String
    }

    /// Strength (length and character classes), dictionary and personal data, in that order.
    static func check(_ password: String, settings: AuthSettings, personal: PersonalData?) throws {
        try FieldValidation.newPassword(password, minimumLength: settings.passwordMinLength)
        var missing: [String] = []
        if settings.passwordUppercase && !password.contains(where: { $0.isASCII && $0.isUppercase }) { missing.append("an uppercase letter") }
        if settings.passwordLowercase && !password.contains(where: { $0.isASCII && $0.isLowercase }) { missing.append("a lowercase letter") }
        if settings.passwordNumber && !password.unicodeScalars.contains(where: { $0.properties.numericType == .decimal }) {
            missing.append("a number")
        }
        if settings.passwordSymbols
            && !password.unicodeScalars.contains(where: {
                !$0.properties.isAlphabetic && $0.properties.numericType == nil && !$0.properties.isWhitespace
            })
        {
            missing.append("a symbol")
        }
        if !missing.isEmpty {
            throw AuthdError.argumentInvalid("Invalid `password` param: Password must contain \(missing.joined(separator: ", "))")
        }
        if settings.passwordDictionary && commonPasswords.contains(Substring(password)) {
            throw AuthdError.argumentInvalid(
                "Invalid `password` param: Password must be at least 8 characters and not in the list of commonly used passwords.")
        }
        if settings.personalDataCheck, let personal {
            let lowered = password.lowercased()
            let emailLocal = personal.email.split(separator: "@").first.map(String.init) ?? ""
            let phoneDigits = personal.phone.hasPrefix("+") ? String(personal.phone.dropFirst()) : personal.phone
            let data = [personal.userID, personal.email, emailLocal, personal.name, phoneDigits, personal.phone]
            if data.contains(where: { !$0.isEmpty && lowered.contains($0.lowercased()) }) {
                throw AuthdError(
                    type: "password_personal_data", code: 400,
                    message: "The password contains personal data such as your name, email or phone: choose another.")
            }
        }
    }
}

extension Directory {
    /// The stored settings, or the defaults (with the daemon's configured session duration and
    /// limit) when none were stored.
    func settings(in reader: any StoreReader) throws -> AuthSettings {
        if let stored = try reader.settings() { return stored }
        var defaults = AuthSettings()
        defaults.duration = sessionPolicy.durationSeconds
        defaults.maxSessions = sessionPolicy.limit
        return defaults
    }

    func settings() throws -> AuthSettings {
        try store.read { try settings(in: $0) }
    }

    /// `user_auth_method_unsupported` when the method is switched off, except for server callers.
    func requireMethod(_ method: String, call: Call, settings: AuthSettings) throws {
        guard !call.caller.isServer, settings.disabledMethods.contains(method) else { return }
        throw AuthdError(
            type: "user_auth_method_unsupported", code: 501,
            message: "The \(method) authentication method is disabled for this project.")
    }

    /// Throws `password_recently_used` when `password` matches one of the user's previous ones.
    func checkHistory(_ password: String, of user: UserRecord, settings: AuthSettings, for call: Call) async throws {
        guard settings.passwordHistory > 0, !user.passwordHistory.isEmpty else { return }
        let history = user.passwordHistory
        let reused = try await hashingPool.run(in: call.hashingLane) { [hasher] in history.contains { hasher.verify(password, encoded: $0) } }
        if reused {
            throw AuthdError(
                type: "password_recently_used", code: 400,
                message: "The password you are trying to use is similar to your previous password. Please choose a stronger password.")
        }
    }

    /// The history after setting `hash`: appended, and cut to the last N (empty when off).
    static func history(_ previous: [String], adding hash: String, settings: AuthSettings) -> [String] {
        guard settings.passwordHistory > 0 else { return [] }
        return Array((previous + [hash]).suffix(settings.passwordHistory))
    }
}
