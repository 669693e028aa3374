import AuthdCore
import AuthdProto

/// Every rpc the daemon serves, by full method name (`authd.v1.Account/Get`). Each entry is a
/// thin adapter from the wire message to a domain call.
public struct MethodTable: Sendable {
    public static let version = "0.1.0"

    let endpoints: [String: Endpoint]

    public init(accounts: Accounts) {
        var table: [String: Endpoint] = [:]
        func add(_ service: String, _ method: String, _ endpoint: Endpoint) {
            table["authd.v1.\(service)/\(method)"] = endpoint
        }

        add("Health", "Check", .immediate(Authd_V1_HealthCheckRequest.self) { _, _ in
            var response = Authd_V1_HealthCheckResponse()
            response.status = "pass"
            response.version = MethodTable.version
            return response
        })

        add("Account", "Create", .deferred(Authd_V1_CreateAccountRequest.self) { request, context in
            Authd_V1_User(
                try await accounts.create(
                    userID: request.userID, email: request.email, password: request.password,
                    name: request.hasName ? request.name : nil, context: context))
        })
        add("Account", "Get", .immediate(Authd_V1_GetAccountRequest.self) { _, context in
            Authd_V1_User(try accounts.get(context: context))
        })
        add("Account", "CreateEmailPasswordSession", .deferred(Authd_V1_CreateEmailPasswordSessionRequest.self) {
            request, context in
            Authd_V1_Session(
                try await accounts.createEmailPasswordSession(
                    email: request.email, password: request.password, context: context))
        })
        add("Account", "ListSessions", .immediate(Authd_V1_ListSessionsRequest.self) { _, context in
            let sessions = try accounts.listSessions(context: context)
            var list = Authd_V1_SessionList()
            list.total = UInt32(sessions.count)
            list.sessions = sessions.map(Authd_V1_Session.init)
            return list
        })
        add("Account", "GetSession", .immediate(Authd_V1_GetSessionRequest.self) { request, context in
            Authd_V1_Session(try accounts.getSession(id: request.sessionID, context: context))
        })
        add("Account", "DeleteSession", .deferred(Authd_V1_DeleteSessionRequest.self) { request, context in
            try await accounts.deleteSession(id: request.sessionID, context: context)
            return Authd_V1_Empty()
        })
        add("Account", "DeleteSessions", .deferred(Authd_V1_DeleteSessionsRequest.self) { _, context in
            try await accounts.deleteSessions(context: context)
            return Authd_V1_Empty()
        })
        endpoints = table
    }

    subscript(method: String) -> Endpoint? { endpoints[method] }

    /// The names of all methods served, sorted.
    public var methods: [String] { endpoints.keys.sorted() }
}
