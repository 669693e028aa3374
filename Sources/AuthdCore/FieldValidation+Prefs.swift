import Foundation

extension FieldValidation {
    /// The largest preferences object, serialised (spec 1.8).
    public static let maximumPrefsBytes = 65_535

    /// Preferences: a JSON object of at most 65535 bytes.
    public static func prefs(_ prefs: String) throws {
        guard prefs.utf8.count <= maximumPrefsBytes else {
            throw AuthdError.argumentInvalid(
                "Invalid `prefs` param: the preferences are \(prefs.utf8.count) bytes, more than the \(maximumPrefsBytes) allowed")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(prefs.utf8)), object is [String: Any] else {
            throw AuthdError.argumentInvalid("Invalid `prefs` param: Value must be a valid JSON object")
        }
    }
}
