/// The domain's one error type: Appwrite's error type name, its HTTP-like status, and a message
/// that says how to fix the problem. New types are new values, not new enum cases, so adding
/// one never breaks a client.
public struct AuthdError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Appwrite's error type, e.g. `user_invalid_credentials`.
    public let type: String
    /// HTTP-like status, e.g. 401.
    public let code: Int
    public let message: String

    public init(type: String, code: Int, message: String) {
        self.type = type
        self.code = code
        self.message = message
    }

    public var description: String { "\(type) (\(code)): \(message)" }
}

extension AuthdError {
    public static func argumentInvalid(_ message: String) -> AuthdError {
        AuthdError(type: "general_argument_invalid", code: 400, message: message)
    }

    public static func unauthorizedScope(_ scope: String) -> AuthdError {
        AuthdError(
            type: "general_unauthorized_scope", code: 401,
            message: "The caller is missing a scope (\(scope)): sign in and present the session credential.")
    }

    public static let serverError = AuthdError(
        type: "general_server_error", code: 500, message: "Server Error")

    public static func unavailable(_ message: String) -> AuthdError {
        AuthdError(type: "general_unknown", code: 503, message: message)
    }

    public static let routeNotFound = AuthdError(
        type: "general_route_not_found", code: 404, message: "The requested method was not found.")

    public static let userAlreadyExists = AuthdError(
        type: "user_already_exists", code: 409,
        message: "A user with the same id, email, or phone already exists in this project.")

    public static let invalidCredentials = AuthdError(
        type: "user_invalid_credentials", code: 401,
        message: "Invalid credentials. Please check the email and password.")

    public static let userBlocked = AuthdError(
        type: "user_blocked", code: 403, message: "The current user has been blocked.")

    public static let sessionAlreadyExists = AuthdError(
        type: "user_session_already_exists", code: 401,
        message: "Creation of a session is prohibited when a session is active.")

    public static let sessionNotFound = AuthdError(
        type: "user_session_not_found", code: 404, message: "The current user session could not be found.")

    public static let userCountExceeded = AuthdError(
        type: "user_count_exceeded", code: 400,
        message: "The current project has exceeded the maximum number of users. Please check your user limit in the authd settings.")

    public static let emailAlreadyExists = AuthdError(
        type: "user_email_already_exists", code: 409, message: "A user with the same email already exists in the current project.")

    public static let phoneAlreadyExists = AuthdError(
        type: "user_phone_already_exists", code: 409,
        message: "A user with the same phone number already exists in the current project.")

    public static let userNotFound = AuthdError(
        type: "user_not_found", code: 404, message: "User with the requested ID could not be found.")
}
