import AuthdCore
import AuthdProto
import AuthdStore
import Glibc
import NIOCore

/// Every rpc the daemon serves, by full method name (`authd.v1.Account/Get`), with the scopes
/// it requires (the caller must hold one). Each entry is a thin adapter from the wire message
/// to a domain call.
public struct MethodTable: Sendable {
    public static let version = "0.2.0"

    /// A reference, so that finding a call's method costs one retain, not one per field.
    ///
    /// The endpoint's closure is kept in the one field of its kind, the other two nil, and a
    /// call is served by calling it where it is stored: bound out of the `Endpoint` case, the
    /// closure was copied, its context retained and released on every call (perf, issue 5).
    final class Entry: Sendable {
        let name: String
        let scopes: ScopeMask
        let immediate: Endpoint.Immediate?
        let lending: Endpoint.Lending?
        let deferred: Endpoint.Prepare?

        init(name: String, scopes: Set<String>, endpoint: Endpoint) {
            self.name = name
            self.scopes = ScopeMask(scopes)
            var immediate: Endpoint.Immediate?
            var lending: Endpoint.Lending?
            var deferred: Endpoint.Prepare?
            switch endpoint {
            case .immediate(let run): immediate = run
            case .immediateLending(let run): lending = run
            case .deferred(let prepare): deferred = prepare
            }
            self.immediate = immediate
            self.lending = lending
            self.deferred = deferred
        }
    }

    let entries: [String: Entry]
    /// The same entries by the bytes of their names, so that a call's method is found straight
    /// from its frame without building a string.
    private let index: MethodIndex
    let authorizer: Authorizer

    /// `sweep`: the daemon's expiry sweep, whose totals `Health/Stats` reports (none when off).
    public init(authorizer: Authorizer, directory: Directory, jwt: JWTIssuer, sweep: ExpirySweep? = nil) {
        self.authorizer = authorizer
        var table: [String: Entry] = [:]
        func add(_ service: String, _ method: String, _ scopes: Set<String>, _ endpoint: Endpoint) {
            let name = "authd.v1.\(service)/\(method)"
            table[name] = Entry(name: name, scopes: scopes, endpoint: endpoint)
        }
        let accounts = Accounts(directory: directory)
        let users = Users(directory: directory)
        Self.addHealth(add, directory, authorizer, jwt, sweep)
        Self.addAccount(add, accounts)
        Self.addUsers(add, users)
        Self.addKeys(add, ApiKeys(directory: directory))
        Self.addJWT(add, accounts, users, jwt)
        Self.addSettings(add, ProjectSettings(directory: directory))
        entries = table
        index = MethodIndex(table)
    }

    /// A table of exactly these entries (tests: endpoints that misbehave on purpose).
    init(authorizer: Authorizer, entries: [String: Entry]) {
        self.authorizer = authorizer
        self.entries = entries
        index = MethodIndex(entries)
    }

    typealias Add = (String, String, Set<String>, Endpoint) -> Void

    static func addHealth(_ add: Add, _ directory: Directory, _ authorizer: Authorizer, _ jwt: JWTIssuer, _ sweep: ExpirySweep?) {
        add("Health", "Check", [Scope.public], .immediate(Authd_V1_HealthCheckRequest.self) { _, _ in
            var response = Authd_V1_HealthCheckResponse()
            response.status = "pass"
            response.version = MethodTable.version
            return response
        })
        add("Health", "Stats", [Scope.settingsRead], .immediate(Authd_V1_StatsRequest.self) { _, _ in
            let store = try directory.storeStatistics()
            var response = Authd_V1_StatsResponse()
            response.writeCommits = store.commits
            response.writes = store.writes
            response.largestBatch = UInt32(clamping: store.largestBatch)
            response.writesQueuedMicros = store.writesQueuedMicros
            response.writesCommittingMicros = store.writesCommittingMicros
            response.writesAcknowledgingMicros = store.writesAcknowledgingMicros
            response.commitsWaitedForCompany = store.commitsWaitedForCompany
            response.companyWaitMicros = store.companyWaitMicros
            response.users = UInt64(store.users)
            response.sessions = UInt64(store.sessions)
            response.dataBytes = store.dataBytes
            response.dataBytesPrewarmed = store.dataBytesPrewarmed
            response.dataBytesPrewarmLimit = store.dataBytesPrewarmLimit
            response.dataPrewarmDone = store.dataPrewarmDone
            response.sessionsCached = UInt64(authorizer.cachedSessions)
            response.usersCached = UInt64(directory.cachedUsers)
            response.apiKeysCached = UInt64(authorizer.cachedApiKeys)
            let sessionCache = authorizer.sessionCacheFigures
            response.sessionCacheHits = sessionCache.hits
            response.sessionCacheMisses = sessionCache.misses
            response.sessionCacheEvictions = sessionCache.evictions
            let userCache = directory.userCacheFigures
            response.userCacheHits = userCache.hits
            response.userCacheMisses = userCache.misses
            response.userCacheEvictions = userCache.evictions
            let process = ProcessFigures.current()
            response.residentBytes = process.residentBytes
            response.anonymousBytes = process.anonymousBytes
            response.openFiles = process.openFiles
            response.cpuUserMicros = process.cpuUserMicros
            response.cpuSystemMicros = process.cpuSystemMicros
            response.cpuWaitMicros = process.cpuWaitMicros
            response.hashingCpuMicros = directory.hashingMicros
            response.queryCpuMicros = directory.queryMicros
            response.callsRefusedBusy = directory.callsRefusedBusy + authorizer.verificationsRefusedBusy
            response.eventLoopCpuMicros = process.eventLoopCPUMicros
            response.writerCpuMicros = process.writerCPUMicros
            response.acknowledgerCpuMicros = process.acknowledgerCPUMicros
            let jwtCounts = jwt.verificationCounts
            response.jwtVerifications = jwtCounts.verified
            response.jwtsRefused = jwtCounts.refused
            response.jwtVerificationCpuMicros = authorizer.verificationMicros
            response.connectionReadsPaused = RequestHandler.pausedReads.load(ordering: .relaxed)
            response.connectionReadsPausedUnread = RequestHandler.pausedReadsUnread.load(ordering: .relaxed)
            if let totals = sweep?.totals {
                response.sweeps = UInt64(totals.sweeps)
                response.expiredSessionsDeleted = UInt64(totals.deleted.sessions)
                response.expiredTokensDeleted = UInt64(totals.deleted.tokens)
                response.changesPruned = UInt64(totals.deleted.changes)
            }
            return response
        })
    }

    static func addAccount(_ add: Add, _ accounts: Accounts) {
        add("Account", "Create", [Scope.sessionsWrite], .deferred(Authd_V1_CreateAccountRequest.self) { request, call in
            Authd_V1_User(
                try await accounts.create(
                    userID: request.userID, email: request.email, password: request.password,
                    name: request.hasName ? request.name : nil, call: call), for: call)
        })
        // The hot path: the encoded user is kept with the session cache entry (built once per
        // version of the user) instead of being built and encoded on every call.
        add("Account", "Get", [Scope.account], .immediateLending(Authd_V1_GetAccountRequest.self) { _, call, answer in
            try accounts.get(call: call) { signedIn in
                try signedIn.encodedUser.withValue(orMake: { try Authd_V1_User(signedIn.user, for: call).serializedBytes() }, answer)
            }
        })
        add("Account", "CreateEmailPasswordSession", [Scope.sessionsWrite],
            .deferred(Authd_V1_CreateEmailPasswordSessionRequest.self) { request, call in
                Authd_V1_Session(
                    try await accounts.createEmailPasswordSession(email: request.email, password: request.password, call: call))
            })
        add("Account", "CreateSession", [Scope.sessionsWrite], .deferred(Authd_V1_CreateSessionRequest.self) { request, call in
            Authd_V1_Session(try await accounts.createSession(userID: request.userID, secret: request.secret, call: call))
        })
        add("Account", "CreateAnonymousSession", [Scope.sessionsWrite], .deferred(Authd_V1_CreateAnonymousSessionRequest.self) { _, call in
            Authd_V1_Session(try await accounts.createAnonymousSession(call: call))
        })
        add("Account", "UpdateSession", [Scope.account], .deferred(Authd_V1_UpdateSessionRequest.self) { r, call in
            Authd_V1_Session(try await accounts.updateSession(id: r.sessionID, call: call))
        })
        add("Account", "Delete", [Scope.account], .deferred(Authd_V1_DeleteAccountRequest.self) { _, call in
            try await accounts.delete(call: call)
            return Authd_V1_Empty()
        })
        add("Account", "UpdateName", [Scope.account], .deferred(Authd_V1_UpdateNameRequest.self) { r, call in
            Authd_V1_User(try await accounts.updateName(r.name, call: call), for: call)
        })
        add("Account", "UpdatePassword", [Scope.account], .deferred(Authd_V1_UpdatePasswordRequest.self) { r, call in
            Authd_V1_User(
                try await accounts.updatePassword(
                    r.password, oldPassword: r.oldPassword, invalidateSessions: r.invalidateSessions, call: call), for: call)
        })
        add("Account", "UpdateEmail", [Scope.account], .deferred(Authd_V1_UpdateEmailRequest.self) { r, call in
            Authd_V1_User(try await accounts.updateEmail(r.email, password: r.password, call: call), for: call)
        })
        add("Account", "UpdatePhone", [Scope.account], .deferred(Authd_V1_UpdatePhoneRequest.self) { r, call in
            Authd_V1_User(try await accounts.updatePhone(r.phone, password: r.password, call: call), for: call)
        })
        add("Account", "GetPrefs", [Scope.account], .immediate(Authd_V1_GetPrefsRequest.self) { _, call in
            var prefs = Authd_V1_Preferences()
            prefs.prefs = try accounts.getPrefs(call: call)
            return prefs
        })
        add("Account", "UpdatePrefs", [Scope.account], .deferred(Authd_V1_UpdatePrefsRequest.self) { r, call in
            var prefs = Authd_V1_Preferences()
            prefs.prefs = try await accounts.updatePrefs(r.prefs, call: call)
            return prefs
        })
        add("Account", "UpdateStatus", [Scope.account], .deferred(Authd_V1_UpdateStatusRequest.self) { _, call in
            Authd_V1_User(try await accounts.block(call: call), for: call)
        })
        add("Account", "ListLogs", [Scope.account], .deferred(Authd_V1_ListLogsRequest.self) { r, call in
            Authd_V1_LogList(
                try await accounts.listLogs(
                    limit: Int(r.limit), offset: Int(r.offset), beforeSequence: r.beforeSequence == 0 ? nil : r.beforeSequence,
                    call: call))
        })
        add("Account", "GetRoles", [Scope.public], .immediate(Authd_V1_GetRolesRequest.self) { _, call in
            var roles = Authd_V1_Roles()
            roles.roles = call.caller.roles
            return roles
        })
        add("Account", "ListSessions", [Scope.account], .immediate(Authd_V1_ListSessionsRequest.self) { _, call in
            Authd_V1_SessionList(try accounts.listSessions(call: call))
        })
        add("Account", "GetSession", [Scope.account], .immediate(Authd_V1_GetSessionRequest.self) { request, call in
            Authd_V1_Session(try accounts.getSession(id: request.sessionID, call: call))
        })
        add("Account", "DeleteSession", [Scope.account], .deferred(Authd_V1_DeleteSessionRequest.self) { request, call in
            try await accounts.deleteSession(id: request.sessionID, call: call)
            return Authd_V1_Empty()
        })
        add("Account", "DeleteSessions", [Scope.account], .deferred(Authd_V1_DeleteSessionsRequest.self) { _, call in
            try await accounts.deleteSessions(call: call)
            return Authd_V1_Empty()
        })
    }

    static func addUsers(_ add: Add, _ users: Users) {
        let read: Set<String> = [Scope.usersRead]
        let write: Set<String> = [Scope.usersWrite]
        add("Users", "Create", write, .deferred(Authd_V1_CreateUserRequest.self) { r, call in
            Authd_V1_User(
                try await users.create(
                    userID: r.userID, email: r.hasEmail ? r.email : nil, phone: r.hasPhone ? r.phone : nil,
                    password: r.hasPassword ? r.password : nil, name: r.hasName ? r.name : nil, call: call), for: call)
        })
        func importing<Input: SwiftProtobuf.Message & Sendable>(
            _ method: String, _ type: Input.Type,
            _ fields: @escaping @Sendable (Input) -> (userID: String, email: String, password: ImportedPassword, name: String?)
        ) {
            add("Users", method, write, .deferred(type) { r, call in
                let f = fields(r)
                return Authd_V1_User(
                    try await users.importUser(userID: f.userID, email: f.email, password: f.password, name: f.name, call: call),
                    for: call)
            })
        }
        importing("CreateArgon2User", Authd_V1_CreateHashedUserRequest.self) { ($0.userID, $0.email, .argon2($0.password), $0.hasName ? $0.name : nil) }
        importing("CreateBcryptUser", Authd_V1_CreateHashedUserRequest.self) { ($0.userID, $0.email, .bcrypt($0.password), $0.hasName ? $0.name : nil) }
        importing("CreateMD5User", Authd_V1_CreateHashedUserRequest.self) { ($0.userID, $0.email, .md5($0.password), $0.hasName ? $0.name : nil) }
        importing("CreatePHPassUser", Authd_V1_CreateHashedUserRequest.self) { ($0.userID, $0.email, .phpass($0.password), $0.hasName ? $0.name : nil) }
        importing("CreateSHAUser", Authd_V1_CreateSHAUserRequest.self) {
            ($0.userID, $0.email, .sha($0.password, version: $0.passwordVersion), $0.hasName ? $0.name : nil)
        }
        importing("CreateScryptUser", Authd_V1_CreateScryptUserRequest.self) {
            ($0.userID, $0.email,
             .scrypt($0.password, salt: $0.passwordSalt, cpu: Int(min($0.passwordCpu, 1 << 40)), memory: Int($0.passwordMemory),
                     parallel: Int($0.passwordParallel), length: Int($0.passwordLength)),
             $0.hasName ? $0.name : nil)
        }
        importing("CreateScryptModifiedUser", Authd_V1_CreateScryptModifiedUserRequest.self) {
            ($0.userID, $0.email,
             .scryptModified($0.password, salt: $0.passwordSalt, saltSeparator: $0.passwordSaltSeparator, signerKey: $0.passwordSignerKey),
             $0.hasName ? $0.name : nil)
        }
        // A backend's most frequent lookup: the encoded answer is kept with the user cache's
        // entry (built once per version of the user and kind of caller).
        add("Users", "Get", read, .immediateLending(Authd_V1_UserIdRequest.self) { r, call, answer in
            let cached = try users.lookUp(userID: r.userID, call: call)
            try cached.withEncoded(for: call, orMake: { try Authd_V1_User(cached.user, for: call).serializedBytes() }, answer)
        })
        add("Users", "Delete", write, .deferred(Authd_V1_UserIdRequest.self) { r, call in
            try await users.delete(userID: r.userID, call: call)
            return Authd_V1_Empty()
        })
        add("Users", "List", read, .deferred(Authd_V1_ListUsersRequest.self) { r, call in
            let (page, total) = try await users.list(queries: r.queries, search: r.search, call: call)
            var list = Authd_V1_UserList()
            list.total = UInt32(total)
            list.users = page.map { Authd_V1_User($0, for: call) }
            return list
        })
        func update<Input: SwiftProtobuf.Message & Sendable>(
            _ method: String, _ type: Input.Type, _ body: @escaping @Sendable (Input, Call) async throws -> UserRecord
        ) {
            add("Users", method, write, .deferred(type) { r, call in Authd_V1_User(try await body(r, call), for: call) })
        }
        update("UpdateStatus", Authd_V1_UpdateUserStatusRequest.self) { try await users.updateStatus(userID: $0.userID, status: $0.status, call: $1) }
        update("UpdateLabels", Authd_V1_UpdateUserLabelsRequest.self) { try await users.updateLabels(userID: $0.userID, labels: $0.labels, call: $1) }
        update("UpdateName", Authd_V1_UpdateUserNameRequest.self) { try await users.updateName(userID: $0.userID, name: $0.name, call: $1) }
        update("UpdateEmail", Authd_V1_UpdateUserEmailRequest.self) { try await users.updateEmail(userID: $0.userID, email: $0.email, call: $1) }
        update("UpdatePhone", Authd_V1_UpdateUserPhoneRequest.self) { try await users.updatePhone(userID: $0.userID, number: $0.number, call: $1) }
        update("UpdatePassword", Authd_V1_UpdateUserPasswordRequest.self) {
            try await users.updatePassword(userID: $0.userID, password: $0.password, invalidateSessions: $0.invalidateSessions, call: $1)
        }
        update("UpdateEmailVerification", Authd_V1_UpdateUserEmailVerificationRequest.self) {
            try await users.updateEmailVerification(userID: $0.userID, verified: $0.emailVerification, call: $1)
        }
        update("UpdatePhoneVerification", Authd_V1_UpdateUserPhoneVerificationRequest.self) {
            try await users.updatePhoneVerification(userID: $0.userID, verified: $0.phoneVerification, call: $1)
        }
        update("UpdateImpersonator", Authd_V1_UpdateUserImpersonatorRequest.self) {
            try await users.updateImpersonator(userID: $0.userID, impersonator: $0.impersonator, call: $1)
        }
        update("UpdateMfa", Authd_V1_UpdateUserMfaRequest.self) { try await users.updateMFA(userID: $0.userID, mfa: $0.mfa, call: $1) }
        add("Users", "GetPrefs", read, .immediate(Authd_V1_UserIdRequest.self) { r, call in
            var prefs = Authd_V1_Preferences()
            prefs.prefs = try users.get(userID: r.userID, call: call).prefs
            return prefs
        })
        add("Users", "UpdatePrefs", write, .deferred(Authd_V1_UpdateUserPrefsRequest.self) { r, call in
            var prefs = Authd_V1_Preferences()
            prefs.prefs = try await users.updatePrefs(userID: r.userID, prefs: r.prefs, call: call)
            return prefs
        })
        add("Users", "ListSessions", read, .immediate(Authd_V1_UserIdRequest.self) { r, call in
            Authd_V1_SessionList(try users.listSessions(userID: r.userID, call: call))
        })
        add("Users", "CreateSession", write.union([Scope.sessionsWrite]), .deferred(Authd_V1_UserIdRequest.self) { r, call in
            Authd_V1_Session(try await users.createSession(userID: r.userID, call: call))
        })
        add("Users", "DeleteSession", write, .deferred(Authd_V1_DeleteUserSessionRequest.self) { r, call in
            try await users.deleteSession(userID: r.userID, sessionID: r.sessionID, call: call)
            return Authd_V1_Empty()
        })
        add("Users", "DeleteSessions", write, .deferred(Authd_V1_UserIdRequest.self) { r, call in
            try await users.deleteSessions(userID: r.userID, call: call)
            return Authd_V1_Empty()
        })
        add("Users", "ListLogs", read, .deferred(Authd_V1_ListUserLogsRequest.self) { r, call in
            Authd_V1_LogList(
                try await users.listLogs(
                    userID: r.userID, limit: Int(r.limit), offset: Int(r.offset),
                    beforeSequence: r.beforeSequence == 0 ? nil : r.beforeSequence, call: call))
        })
        add("Users", "ListMemberships", read, .immediate(Authd_V1_UserIdRequest.self) { r, call in
            // Teams arrive with the Teams issue; until then a user has no memberships.
            _ = try users.get(userID: r.userID, call: call)
            return Authd_V1_MembershipList()
        })
        add("Users", "CreateToken", write, .deferred(Authd_V1_CreateUserTokenRequest.self) { r, call in
            let (token, secret) = try await users.createToken(
                userID: r.userID, length: r.hasLength ? Int(r.length) : nil, expire: r.hasExpire ? Int(r.expire) : nil,
                call: call)
            var wire = Authd_V1_Token()
            wire.id = token.id
            wire.createdAt = token.createdAt
            wire.userID = token.userID
            wire.expire = token.expire
            wire.secret = secret
            return wire
        })
    }

    static func addKeys(_ add: Add, _ keys: ApiKeys) {
        add("Keys", "Create", [Scope.keysWrite], .deferred(Authd_V1_CreateKeyRequest.self) { r, call in
            let (key, secret) = try await keys.create(name: r.name, scopes: r.scopes, expire: r.expire, call: call)
            var wire = Authd_V1_ApiKey(key)
            wire.secret = secret
            return wire
        })
        add("Keys", "List", [Scope.keysRead, Scope.keysWrite], .immediate(Authd_V1_ListKeysRequest.self) { _, call in
            let all = try keys.list(call: call)
            var list = Authd_V1_ApiKeyList()
            list.total = UInt32(all.count)
            list.keys = all.map(Authd_V1_ApiKey.init)
            return list
        })
        add("Keys", "Revoke", [Scope.keysWrite], .deferred(Authd_V1_RevokeKeyRequest.self) { r, call in
            Authd_V1_ApiKey(try await keys.revoke(id: r.keyID, call: call))
        })
    }

    static func addJWT(_ add: Add, _ accounts: Accounts, _ users: Users, _ jwt: JWTIssuer) {
        add("Account", "CreateJWT", [Scope.account], .deferred(Authd_V1_CreateJWTRequest.self) { r, call in
            var token = Authd_V1_JWT()
            token.jwt = try await accounts.createJWT(duration: r.hasDuration ? Int(r.duration) : nil, jwt: jwt, call: call)
            return token
        })
        add("Users", "CreateJWT", [Scope.usersWrite], .immediate(Authd_V1_CreateUserJWTRequest.self) { r, call in
            var token = Authd_V1_JWT()
            token.jwt = try users.createJWT(
                userID: r.userID, sessionID: r.sessionID, duration: r.hasDuration ? Int(r.duration) : nil, jwt: jwt, call: call)
            return token
        })
        add("Account", "GetJWKS", [Scope.public], .immediate(Authd_V1_GetJWKSRequest.self) { _, _ in
            var set = Authd_V1_JWKS()
            set.jwks = try jwt.jwks()
            return set
        })
        add("Keys", "RotateJWTKey", [Scope.keysWrite], .deferred(Authd_V1_RotateJWTKeyRequest.self) { _, call in
            var info = Authd_V1_JWTKeyInfo()
            info.kid = try await jwt.rotate(call: call)
            return info
        })
    }

    static func addSettings(_ add: Add, _ settings: ProjectSettings) {
        add("Settings", "Get", [Scope.settingsRead, Scope.settingsWrite], .immediate(Authd_V1_GetSettingsRequest.self) { _, call in
            Authd_V1_AuthSettings(try settings.get(call: call))
        })
        add("Settings", "Update", [Scope.settingsWrite], .deferred(Authd_V1_UpdateSettingsRequest.self) { r, call in
            // Checked before the write, so that a bad mask changes nothing.
            var probe = AuthSettings()
            try r.settings.apply(r.updateMask, to: &probe)
            let wire = r.settings
            let mask = r.updateMask
            return Authd_V1_AuthSettings(try await settings.update(call: call) { s in try? wire.apply(mask, to: &s) })
        })
    }

    /// The entry named `method`, unretained: the table keeps its entries for as long as it
    /// lives, so a caller that holds the table may use the entry without a retain and release
    /// per call (`_withUnsafeGuaranteedRef`; perf, issue 5).
    func unretainedEntry(named method: UnsafeRawBufferPointer) -> Unmanaged<Entry>? { index.entry(named: method) }

    /// The names of all methods served, sorted.
    public var methods: [String] { entries.keys.sorted() }
}

/// Method entries by the bytes of their names: FNV-1a into a power-of-two table of slots,
/// probed linearly, names compared with memcmp. Finding a call's method hashes its name once
/// (SipHash through a Dictionary cost more than the rest of the lookup) and builds nothing.
struct MethodIndex: Sendable {
    /// Every name's bytes, one after another.
    private let names: [UInt8]
    /// Per slot: where its name is in `names`.
    private let slots: [Range<Int>]
    /// Per slot: its entry, kept alive here and handed out from `unretained`.
    private let entries: [MethodTable.Entry?]
    private let unretained: [Unmanaged<MethodTable.Entry>?]
    private let mask: Int

    init(_ table: [String: MethodTable.Entry]) {
        let size = Int.powerOfTwo(atLeast: table.count * 4, minimum: 8)
        var names: [UInt8] = []
        var slots = [Range<Int>](repeating: 0..<0, count: size)
        var entries = [MethodTable.Entry?](repeating: nil, count: size)
        for (name, entry) in table {
            let bytes = Array(name.utf8)
            var slot = bytes.withUnsafeBytes { Self.hash($0) } & (size - 1)
            while entries[slot] != nil { slot = (slot + 1) & (size - 1) }
            slots[slot] = names.count..<(names.count + bytes.count)
            names += bytes
            entries[slot] = entry
        }
        self.names = names
        self.slots = slots
        self.entries = entries
        unretained = entries.map { $0.map(Unmanaged.passUnretained) }
        mask = size - 1
    }

    /// Valid for as long as this index (or a copy of it) lives.
    func entry(named name: UnsafeRawBufferPointer) -> Unmanaged<MethodTable.Entry>? {
        var slot = Self.hash(name) & mask
        return names.withUnsafeBytes { all in
            while unretained[slot] != nil {
                let candidate = slots[slot]
                if candidate.count == name.count,
                    name.count == 0 || memcmp(all.baseAddress! + candidate.lowerBound, name.baseAddress!, name.count) == 0
                {
                    return unretained[slot]
                }
                slot = (slot + 1) & mask
            }
            return nil
        }
    }

    /// The last sixteen bytes of a name, as two words, and its length, multiplied together;
    /// the slot is taken from the product's high bits, which depend on all of them. Every name
    /// begins `authd.v1.`, so its end is what tells it apart. FNV-1a over every byte, as before,
    /// was a chain of twenty multiplications per call, 2 % of a session check (perf). Names
    /// that collide only probe one slot further.
    private static func hash(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard bytes.count >= 16 else {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            }
            return Int(truncatingIfNeeded: hash >> 32)
        }
        let head = bytes.loadUnaligned(fromByteOffset: bytes.count - 16, as: UInt64.self)
        let tail = bytes.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self)
        let mixed = ((head ^ UInt64(bytes.count)) &* 0x9E37_79B9_7F4A_7C15 ^ tail) &* 0xC2B2_AE3D_27D4_EB4F
        return Int(truncatingIfNeeded: mixed >> 32)
    }
}
