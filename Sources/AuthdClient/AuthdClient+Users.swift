import AuthdProto

/// Users/List's answer: a page of users and the number of matches.
public typealias UserList = Authd_V1_UserList
/// A single-use token; `secret` is set only in the answer of Users/CreateToken.
public typealias Token = Authd_V1_Token

/// The Users API: server calls (an API key, or a process mapped by its Unix user or group).
extension AuthdClient {
    private func users<Input: SwiftProtobuf.Message, Output: SwiftProtobuf.Message>(
        _ method: String, _ input: Input, _ credentials: Credentials, _ output: Output.Type
    ) async throws -> Output {
        try await call("authd.v1.Users/\(method)", input, credentials: credentials, returning: output)
    }

    private func userID(_ id: String) -> Authd_V1_UserIdRequest {
        var request = Authd_V1_UserIdRequest()
        request.userID = id
        return request
    }

    /// `Users/Create`: every field but the id is optional.
    public func createUser(
        userID: String = "unique()", email: String? = nil, phone: String? = nil, password: String? = nil,
        name: String? = nil, credentials: Credentials = .none
    ) async throws -> User {
        var input = Authd_V1_CreateUserRequest()
        input.userID = userID
        if let email { input.email = email }
        if let phone { input.phone = phone }
        if let password { input.password = password }
        if let name { input.name = name }
        return try await users("Create", input, credentials, User.self)
    }

    /// `Users/Get`.
    public func getUser(userID: String, credentials: Credentials = .none) async throws -> User {
        try await users("Get", self.userID(userID), credentials, User.self)
    }

    /// `Users/Delete`: the user, their sessions and tokens.
    public func deleteUser(userID: String, credentials: Credentials = .none) async throws {
        _ = try await users("Delete", self.userID(userID), credentials, Authd_V1_Empty.self)
    }

    /// `Users/List` with Appwrite JSON queries and an optional full-text search.
    public func listUsers(queries: [String] = [], search: String = "", credentials: Credentials = .none) async throws -> UserList {
        var input = Authd_V1_ListUsersRequest()
        input.queries = queries
        input.search = search
        return try await users("List", input, credentials, UserList.self)
    }

    /// Any `Users/Update*` call, with its request message.
    public func updateUser<Input: SwiftProtobuf.Message>(
        _ method: String, _ input: Input, credentials: Credentials = .none
    ) async throws -> User {
        try await users(method, input, credentials, User.self)
    }

    /// `Users/UpdateStatus`: false blocks the user.
    public func updateUserStatus(userID: String, status: Bool, credentials: Credentials = .none) async throws -> User {
        var input = Authd_V1_UpdateUserStatusRequest()
        input.userID = userID
        input.status = status
        return try await updateUser("UpdateStatus", input, credentials: credentials)
    }

    /// `Users/UpdatePassword`; an empty password removes it.
    public func updateUserPassword(
        userID: String, password: String, invalidateSessions: Bool = false, credentials: Credentials = .none
    ) async throws -> User {
        var input = Authd_V1_UpdateUserPasswordRequest()
        input.userID = userID
        input.password = password
        input.invalidateSessions = invalidateSessions
        return try await updateUser("UpdatePassword", input, credentials: credentials)
    }

    /// `Users/UpdatePrefs`: replaces the preferences (a JSON object, at most 65535 bytes).
    public func updateUserPrefs(userID: String, prefs: String, credentials: Credentials = .none) async throws -> String {
        var input = Authd_V1_UpdateUserPrefsRequest()
        input.userID = userID
        input.prefs = prefs
        return try await users("UpdatePrefs", input, credentials, Authd_V1_Preferences.self).prefs
    }

    /// `Users/GetPrefs`.
    public func getUserPrefs(userID: String, credentials: Credentials = .none) async throws -> String {
        try await users("GetPrefs", self.userID(userID), credentials, Authd_V1_Preferences.self).prefs
    }

    /// `Users/ListSessions`.
    public func listUserSessions(userID: String, credentials: Credentials = .none) async throws -> SessionList {
        try await users("ListSessions", self.userID(userID), credentials, SessionList.self)
    }

    /// `Users/CreateSession`: a server-made session; its secret is returned once.
    public func createUserSession(userID: String, credentials: Credentials = .none) async throws -> Session {
        try await users("CreateSession", self.userID(userID), credentials, Session.self)
    }

    /// `Users/DeleteSession`.
    public func deleteUserSession(userID: String, sessionID: String, credentials: Credentials = .none) async throws {
        var input = Authd_V1_DeleteUserSessionRequest()
        input.userID = userID
        input.sessionID = sessionID
        _ = try await users("DeleteSession", input, credentials, Authd_V1_Empty.self)
    }

    /// `Users/DeleteSessions`.
    public func deleteUserSessions(userID: String, credentials: Credentials = .none) async throws {
        _ = try await users("DeleteSessions", self.userID(userID), credentials, Authd_V1_Empty.self)
    }

    /// `Users/CreateToken`: `length` hex characters (4-128), valid `expire` seconds.
    public func createUserToken(
        userID: String, length: UInt32? = nil, expire: UInt32? = nil, credentials: Credentials = .none
    ) async throws -> Token {
        var input = Authd_V1_CreateUserTokenRequest()
        input.userID = userID
        if let length { input.length = length }
        if let expire { input.expire = expire }
        return try await users("CreateToken", input, credentials, Token.self)
    }

    /// `Account/CreateSession`: redeems a token for a session.
    public func createSession(userID: String, secret: String, client: ClientInfo? = nil) async throws -> Session {
        var input = Authd_V1_CreateSessionRequest()
        input.userID = userID
        input.secret = secret
        return try await call("authd.v1.Account/CreateSession", input, client: client, returning: Session.self)
    }
}

/// API key management (operators: root or the daemon's own user, connecting as themselves).
extension AuthdClient {
    /// `Keys/Create`; the answer's `secret` is the key, shown this once.
    public func createKey(name: String, scopes: [String], expire: Int64 = 0, credentials: Credentials = .none) async throws -> Authd_V1_ApiKey {
        var input = Authd_V1_CreateKeyRequest()
        input.name = name
        input.scopes = scopes
        input.expire = expire
        return try await call("authd.v1.Keys/Create", input, credentials: credentials, returning: Authd_V1_ApiKey.self)
    }

    /// `Keys/List`.
    public func listKeys(credentials: Credentials = .none) async throws -> Authd_V1_ApiKeyList {
        try await call("authd.v1.Keys/List", Authd_V1_ListKeysRequest(), credentials: credentials, returning: Authd_V1_ApiKeyList.self)
    }

    /// `Keys/Revoke`: the key stops working at once.
    public func revokeKey(id: String, credentials: Credentials = .none) async throws -> Authd_V1_ApiKey {
        var input = Authd_V1_RevokeKeyRequest()
        input.keyID = id
        return try await call("authd.v1.Keys/Revoke", input, credentials: credentials, returning: Authd_V1_ApiKey.self)
    }
}

/// The project's auth settings (operators, or keys with the settings scopes).
extension AuthdClient {
    /// `Settings/Get`.
    public func getSettings(credentials: Credentials = .none) async throws -> Authd_V1_AuthSettings {
        try await call("authd.v1.Settings/Get", Authd_V1_GetSettingsRequest(), credentials: credentials, returning: Authd_V1_AuthSettings.self)
    }

    /// `Settings/Update`: changes the fields named in `mask` (e.g. `password_history`) to their
    /// values in `settings`.
    public func updateSettings(_ settings: Authd_V1_AuthSettings, mask: [String], credentials: Credentials = .none) async throws -> Authd_V1_AuthSettings {
        var input = Authd_V1_UpdateSettingsRequest()
        input.settings = settings
        input.updateMask = mask
        return try await call("authd.v1.Settings/Update", input, credentials: credentials, returning: Authd_V1_AuthSettings.self)
    }
}
