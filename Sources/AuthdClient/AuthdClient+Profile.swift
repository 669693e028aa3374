import AuthdProto

/// An audit record and a page of them.
public typealias Log = Authd_V1_Log
public typealias LogList = Authd_V1_LogList

/// The signed-in user's own account.
extension AuthdClient {
    private func account<Input: SwiftProtobuf.Message, Output: SwiftProtobuf.Message>(
        _ method: String, _ input: Input, _ credentials: Credentials, _ client: ClientInfo?, _ output: Output.Type
    ) async throws -> Output {
        try await call("authd.v1.Account/\(method)", input, credentials: credentials, client: client, returning: output)
    }

    /// `Account/CreateAnonymousSession`: a new anonymous user, signed in.
    public func createAnonymousSession(client: ClientInfo? = nil) async throws -> Session {
        try await account("CreateAnonymousSession", Authd_V1_CreateAnonymousSessionRequest(), .none, client, Session.self)
    }

    /// `Account/UpdateSession`: extends a session (by id or `current`).
    public func updateSession(sessionID: String = "current", credentials: Credentials, client: ClientInfo? = nil) async throws -> Session {
        var input = Authd_V1_UpdateSessionRequest()
        input.sessionID = sessionID
        return try await account("UpdateSession", input, credentials, client, Session.self)
    }

    /// `Account/Delete`.
    public func deleteAccount(credentials: Credentials, client: ClientInfo? = nil) async throws {
        _ = try await account("Delete", Authd_V1_DeleteAccountRequest(), credentials, client, Authd_V1_Empty.self)
    }

    /// `Account/UpdateName`.
    public func updateName(_ name: String, credentials: Credentials, client: ClientInfo? = nil) async throws -> User {
        var input = Authd_V1_UpdateNameRequest()
        input.name = name
        return try await account("UpdateName", input, credentials, client, User.self)
    }

    /// `Account/UpdatePassword`: `oldPassword` is needed when the account has a password.
    public func updatePassword(
        _ password: String, oldPassword: String = "", invalidateSessions: Bool = false, credentials: Credentials,
        client: ClientInfo? = nil
    ) async throws -> User {
        var input = Authd_V1_UpdatePasswordRequest()
        input.password = password
        input.oldPassword = oldPassword
        input.invalidateSessions = invalidateSessions
        return try await account("UpdatePassword", input, credentials, client, User.self)
    }

    /// `Account/UpdateEmail`: needs the password (an account without one sets it here).
    public func updateEmail(_ email: String, password: String, credentials: Credentials, client: ClientInfo? = nil) async throws -> User {
        var input = Authd_V1_UpdateEmailRequest()
        input.email = email
        input.password = password
        return try await account("UpdateEmail", input, credentials, client, User.self)
    }

    /// `Account/UpdatePhone`: needs the password.
    public func updatePhone(_ phone: String, password: String, credentials: Credentials, client: ClientInfo? = nil) async throws -> User {
        var input = Authd_V1_UpdatePhoneRequest()
        input.phone = phone
        input.password = password
        return try await account("UpdatePhone", input, credentials, client, User.self)
    }

    /// `Account/GetPrefs`.
    public func getPrefs(credentials: Credentials) async throws -> String {
        try await account("GetPrefs", Authd_V1_GetPrefsRequest(), credentials, nil, Authd_V1_Preferences.self).prefs
    }

    /// `Account/UpdatePrefs`: replaces the preferences (a JSON object, at most 65535 bytes).
    public func updatePrefs(_ prefs: String, credentials: Credentials) async throws -> String {
        var input = Authd_V1_UpdatePrefsRequest()
        input.prefs = prefs
        return try await account("UpdatePrefs", input, credentials, nil, Authd_V1_Preferences.self).prefs
    }

    /// `Account/UpdateStatus`: blocks the caller's own account; every session ends.
    public func blockAccount(credentials: Credentials) async throws -> User {
        try await account("UpdateStatus", Authd_V1_UpdateStatusRequest(), credentials, nil, User.self)
    }

    /// `Account/ListLogs`: the caller's audit records, newest first.
    public func listLogs(limit: UInt32 = 25, offset: UInt32 = 0, beforeSequence: UInt64 = 0, credentials: Credentials) async throws -> LogList {
        var input = Authd_V1_ListLogsRequest()
        input.limit = limit
        input.offset = offset
        input.beforeSequence = beforeSequence
        return try await account("ListLogs", input, credentials, nil, LogList.self)
    }
}

extension AuthdClient {
    /// `Account/GetRoles`: the role strings of `credentials` (`any`, `guests`, `user:U`, ...).
    public func getRoles(credentials: Credentials = .none) async throws -> [String] {
        try await call("authd.v1.Account/GetRoles", Authd_V1_GetRolesRequest(), credentials: credentials, returning: Authd_V1_Roles.self).roles
    }
}

extension AuthdClient {
    /// `Account/CreateJWT`: a JWT for the current session (0 to 3600 s, default 900).
    public func createJWT(duration: UInt32? = nil, credentials: Credentials) async throws -> String {
        var input = Authd_V1_CreateJWTRequest()
        if let duration { input.duration = duration }
        return try await call("authd.v1.Account/CreateJWT", input, credentials: credentials, returning: Authd_V1_JWT.self).jwt
    }

    /// `Users/CreateJWT`: a JWT for a session of the user (`recent`: the newest).
    public func createUserJWT(userID: String, sessionID: String = "recent", duration: UInt32? = nil, credentials: Credentials = .none) async throws -> String {
        var input = Authd_V1_CreateUserJWTRequest()
        input.userID = userID
        input.sessionID = sessionID
        if let duration { input.duration = duration }
        return try await call("authd.v1.Users/CreateJWT", input, credentials: credentials, returning: Authd_V1_JWT.self).jwt
    }

    /// `Account/GetJWKS`: the public keys that verify authd's JWTs, as a JSON Web Key Set.
    public func getJWKS() async throws -> String {
        try await call("authd.v1.Account/GetJWKS", Authd_V1_GetJWKSRequest(), returning: Authd_V1_JWKS.self).jwks
    }

    /// `Keys/RotateJWTKey` (operators): a new signing key; returns its id.
    public func rotateJWTKey(credentials: Credentials = .none) async throws -> String {
        try await call("authd.v1.Keys/RotateJWTKey", Authd_V1_RotateJWTKeyRequest(), credentials: credentials, returning: Authd_V1_JWTKeyInfo.self).kid
    }
}
