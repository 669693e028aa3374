import AuthdProto

/// The account's owner as the daemon returns it.
public typealias User = Authd_V1_User
/// A session; `secret` is set only in the answer of the call that created it.
public typealias Session = Authd_V1_Session
/// Sessions with their count.
public typealias SessionList = Authd_V1_SessionList

extension AuthdClient {
    /// `Account/Create`: a new account with email and password. Does not sign in.
    /// - Parameter userID: a custom id or `unique()`.
    public func createAccount(
        userID: String = "unique()", email: String, password: String, name: String? = nil,
        client: ClientInfo? = nil
    ) async throws -> User {
        var input = Authd_V1_CreateAccountRequest()
        input.userID = userID
        input.email = email
        input.password = password
        if let name { input.name = name }
        return try await call("authd.v1.Account/Create", input, client: client, returning: User.self)
    }

    /// `Account/Get`: the account the credentials belong to.
    public func getAccount(credentials: Credentials, client: ClientInfo? = nil) async throws -> User {
        try await call(
            "authd.v1.Account/Get", Authd_V1_GetAccountRequest(), credentials: credentials, client: client,
            returning: User.self)
    }

    /// `Account/CreateEmailPasswordSession`: signs in; the answer's `secret` is the session
    /// credential, returned this once.
    public func createEmailPasswordSession(
        email: String, password: String, credentials: Credentials = .none, client: ClientInfo? = nil
    ) async throws -> Session {
        var input = Authd_V1_CreateEmailPasswordSessionRequest()
        input.email = email
        input.password = password
        return try await call(
            "authd.v1.Account/CreateEmailPasswordSession", input, credentials: credentials, client: client,
            returning: Session.self)
    }

    /// `Account/ListSessions`: every session of the signed-in user.
    public func listSessions(credentials: Credentials, client: ClientInfo? = nil) async throws -> SessionList {
        try await call(
            "authd.v1.Account/ListSessions", Authd_V1_ListSessionsRequest(), credentials: credentials,
            client: client, returning: SessionList.self)
    }

    /// `Account/GetSession`: one session of the signed-in user, by id or `current`.
    public func getSession(
        sessionID: String = "current", credentials: Credentials, client: ClientInfo? = nil
    ) async throws -> Session {
        var input = Authd_V1_GetSessionRequest()
        input.sessionID = sessionID
        return try await call(
            "authd.v1.Account/GetSession", input, credentials: credentials, client: client, returning: Session.self)
    }

    /// `Account/DeleteSession`: signs out of one session, by id or `current`.
    public func deleteSession(
        sessionID: String = "current", credentials: Credentials, client: ClientInfo? = nil
    ) async throws {
        var input = Authd_V1_DeleteSessionRequest()
        input.sessionID = sessionID
        _ = try await call(
            "authd.v1.Account/DeleteSession", input, credentials: credentials, client: client,
            returning: Authd_V1_Empty.self)
    }

    /// `Account/DeleteSessions`: signs out of every session.
    public func deleteSessions(credentials: Credentials, client: ClientInfo? = nil) async throws {
        _ = try await call(
            "authd.v1.Account/DeleteSessions", Authd_V1_DeleteSessionsRequest(), credentials: credentials,
            client: client, returning: Authd_V1_Empty.self)
    }

    /// `Health/Check`: the daemon's status (`pass`) and version.
    public func healthCheck() async throws -> Authd_V1_HealthCheckResponse {
        try await call(
            "authd.v1.Health/Check", Authd_V1_HealthCheckRequest(), returning: Authd_V1_HealthCheckResponse.self)
    }

    /// `Health/Stats`: the daemon's write batches, record counts, data size, memory and open
    /// files. Needs `settings.read`.
    public func stats(credentials: Credentials = .none) async throws -> Authd_V1_StatsResponse {
        try await call(
            "authd.v1.Health/Stats", Authd_V1_StatsRequest(), credentials: credentials,
            returning: Authd_V1_StatsResponse.self)
    }
}
