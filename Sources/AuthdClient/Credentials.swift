import AuthdProto

/// The credential a call presents on behalf of an end user (or of the calling service).
public enum Credentials: Sendable, Equatable {
    /// A guest: no credential.
    case none
    /// A session secret, as returned once by a session-creating call.
    case session(String)
    /// A JSON Web Token.
    case jwt(String)
    /// A server API key.
    case apiKey(String)

    /// The message a request carries; nil for none. Package-wide: the load tool encodes its
    /// requests ahead of time with it.
    package var wire: Authd_V1_Credentials? {
        var credentials = Authd_V1_Credentials()
        switch self {
        case .none: return nil
        case .session(let secret): credentials.session = secret
        case .jwt(let token): credentials.jwt = token
        case .apiKey(let key): credentials.apiKey = key
        }
        return credentials
    }
}

/// Facts about the end user's own client that the backend service relays with each call.
public struct ClientInfo: Sendable, Equatable {
    /// The end user's IP address.
    public var ip: String
    /// The end user's User-Agent header.
    public var userAgent: String
    /// The end user's preferred locale, e.g. `en-US`.
    public var locale: String

    public init(ip: String = "", userAgent: String = "", locale: String = "") {
        self.ip = ip
        self.userAgent = userAgent
        self.locale = locale
    }
}
