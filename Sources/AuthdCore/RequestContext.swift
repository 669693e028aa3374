import AuthdStore

/// The credential a call presents (spec 1.1).
public enum Credential: Sendable, Equatable {
    case none
    /// A session secret, held only as its SHA-256: the secret itself is not kept past the
    /// reading of the request, and the session check needs nothing else.
    case session(SecretDigest)
    /// A JSON Web Token this daemon issued.
    case jwt(String)
    /// A server API key, held only as its SHA-256, as a session secret is.
    case apiKey(SecretDigest)

    /// The credential of a session secret.
    public static func session(secret: String) -> Credential {
        .session(SecretToken.digest(secret))
    }

    /// The credential of an API key.
    public static func apiKey(secret: String) -> Credential {
        .apiKey(SecretToken.digest(secret))
    }
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

/// The Unix credentials of the process at the other end of the connection (SO_PEERCRED).
public struct PeerCredentials: Sendable, Hashable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32

    public init(uid: UInt32, gid: UInt32, pid: Int32) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
    }
}

/// Everything about a call that is not its parameters.
public struct RequestContext: Sendable, Equatable {
    public var credential: Credential
    public var client: ClientInfo
    /// The connected process, when the transport knows it.
    public var peer: PeerCredentials?

    public init(credential: Credential = .none, client: ClientInfo = ClientInfo(), peer: PeerCredentials? = nil) {
        self.credential = credential
        self.client = client
        self.peer = peer
    }
}

