import AuthdCore
import AuthdProto
import AuthdStore

/// Domain values to wire models. Only the fields a client may see are copied: never the
/// password hash or a secret hash.
extension Authd_V1_User {
    /// The hash algorithm is shown to server callers only.
    init(_ user: UserRecord, for call: Call) {
        self.init()
        impersonator = user.impersonator
        if call.caller.isServer { hash = user.hashAlgorithm.isEmpty ? "argon2" : user.hashAlgorithm }
        id = user.id
        createdAt = user.createdAt
        updatedAt = user.updatedAt
        name = user.name
        registration = user.registration
        status = user.status
        labels = user.labels
        passwordUpdate = user.passwordUpdate
        email = user.email
        phone = user.phone
        emailVerification = user.emailVerification
        phoneVerification = user.phoneVerification
        mfa = user.mfa
        prefs = user.prefs
        accessedAt = user.accessedAt
    }
}

extension Authd_V1_Session {
    init(_ view: SessionView) {
        self.init()
        let s = view.record
        id = s.id
        createdAt = s.createdAt
        updatedAt = s.updatedAt
        userID = s.userID
        expire = s.expire
        provider = s.provider
        providerUid = s.providerUID
        ip = s.ip
        userAgent = s.userAgent
        countryCode = s.countryCode
        countryName = s.countryCode == "--" ? "Unknown" : s.countryCode
        current = view.isCurrent
        factors = s.factors
        secret = view.secret
        mfaUpdatedAt = s.mfaUpdatedAt
    }
}

extension Authd_V1_SessionList {
    init(_ sessions: [SessionView]) {
        self.init()
        total = UInt32(sessions.count)
        self.sessions = sessions.map(Authd_V1_Session.init)
    }
}

extension Authd_V1_LogList {
    init(_ page: (entries: [ChangeRecord], total: Int)) {
        self.init()
        total = UInt32(page.total)
        logs = page.entries.map { change in
            var log = Authd_V1_Log()
            log.sequence = change.sequence
            log.event = change.auditEvent
            log.fullEvent = change.event
            log.resource = change.resource
            log.userID = change.userID
            log.userType = change.actorType
            log.actorID = change.actorID
            log.ip = change.ip
            log.userAgent = change.userAgent
            log.time = change.time
            return log
        }
    }
}

extension Authd_V1_ApiKey {
    /// Never carries the secret: only Keys/Create sets it, once.
    init(_ key: ApiKeyRecord) {
        self.init()
        id = key.id
        name = key.name
        scopes = key.scopes
        createdAt = key.createdAt
        expire = key.expire
        revokedAt = key.revokedAt
        accessedAt = key.accessedAt
    }
}
