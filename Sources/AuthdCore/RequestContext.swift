import AuthdStore

/// The credential a call presents (spec 1.1).
public enum Credential: Sendable, Equatable {
    case none
    /// A session secret.
    case session(String)
    /// A JSON Web Token (a later issue resolves these).
    case jwt(String)
    /// A server API key (a later issue resolves these).
    case apiKey(String)
}

/// Facts about the end user's client, relayed by the backend service.
public struct ClientInfo: Sendable, Equatable {
    public var ip: String
    public var userAgent: String
    public var locale: String

    public init(ip: String = "", userAgent: String = "", locale: String = "") {
        self.ip = ip
        self.userAgent = userAgent
        self.locale = locale
    }
}

/// Everything about a call that is not its parameters.
public struct RequestContext: Sendable, Equatable {
    public var credential: Credential
    public var client: ClientInfo

    public init(credential: Credential = .none, client: ClientInfo = ClientInfo()) {
        self.credential = credential
        self.client = client
    }
}

/// Who is calling, once the credential has been checked.
public enum Caller: Sendable, Equatable {
    case guest
    /// A signed-in user, with the session that authenticated the call.
    case user(UserRecord, session: SessionRecord)

    /// Spec 13.2 actor types.
    var actorType: String {
        switch self {
        case .guest: "guest"
        case .user: "user"
        }
    }

    var actorID: String {
        switch self {
        case .guest: ""
        case .user(let user, session: _): user.id
        }
    }
}
