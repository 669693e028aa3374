/// A failed call: the daemon's error (Appwrite's type name, HTTP-like code and message), or a
/// failure of the connection itself (`type` `client_connection_closed` or `client_protocol_error`).
public struct AuthdClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Appwrite's error type, e.g. `user_invalid_credentials`.
    public let type: String
    /// HTTP-like status, e.g. 401.
    public let code: Int
    /// What went wrong and how to fix it.
    public let message: String

    public init(type: String, code: Int, message: String) {
        self.type = type
        self.code = code
        self.message = message
    }

    public var description: String { "\(type) (\(code)): \(message)" }

    /// The connection closed before the answer arrived.
    public static func connectionClosed(_ detail: String = "the connection to authd closed") -> AuthdClientError {
        AuthdClientError(type: "client_connection_closed", code: 503, message: detail)
    }

    /// The daemon's answer could not be read.
    public static func protocolError(_ detail: String) -> AuthdClientError {
        AuthdClientError(type: "client_protocol_error", code: 500, message: detail)
    }
}
