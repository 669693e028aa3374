import AuthdProto
import Foundation

/// Maps records to and from their on-disk protobuf encoding.
enum RecordCodec {
    static func encode(_ user: UserRecord) throws -> [UInt8] {
        var r = Authd_Store_V1_UserRecord()
        r.id = user.id
        r.createdAt = user.createdAt
        r.updatedAt = user.updatedAt
        r.name = user.name
        r.email = user.email
        r.phone = user.phone
        r.status = user.status
        r.labels = user.labels
        r.passwordHash = user.passwordHash
        r.hashAlgorithm = user.hashAlgorithm
        r.passwordUpdate = user.passwordUpdate
        r.registration = user.registration
        r.emailVerification = user.emailVerification
        r.phoneVerification = user.phoneVerification
        r.mfa = user.mfa
        r.prefs = user.prefs
        r.accessedAt = user.accessedAt
        r.passwordHistory = user.passwordHistory
        r.reset = user.reset
        r.impersonator = user.impersonator
        r.hashOptions = user.hashOptions
        return try r.serializedBytes()
    }

    /// A stored user's `status` (field 7) alone, read off the wire format without decoding the
    /// record: a token's redemption needs only that, and the whole record (labels, prefs,
    /// password history) cost more than the rest of the call. Absent means false, as in proto3.
    static func userStatus(_ raw: UnsafeRawBufferPointer) throws -> Bool {
        var status = false
        try readFields(raw, of: "UserRecord") { field, wireType, reader throws(WireFormatError) in
            // The last one wins, as in any decoder; a field 7 of another wire type is unknown, as
            // protobuf's parsers treat it.
            if field == 7, wireType == .varint { status = try reader.varint() != 0 } else { try reader.skip(wireType) }
        }
        return status
    }

    /// Calls `body` with a stored user's fields that a list filters on (`UserFields`): the text
    /// ones where they lie in `raw`, the numbers and flags read, without decoding the record (a
    /// scan for a search or a filter reads every user's). The fields are lent, not returned:
    /// a copy of them per user was a tenth of such a scan. The last of a single field wins, as
    /// in any decoder; a field of another wire type than its own is unknown, as protobuf's
    /// parsers treat it.
    @inline(__always)
    static func withUserFields<R>(_ raw: UnsafeRawBufferPointer, _ body: (borrowing UserFields) throws -> R) throws -> R {
        var fields = UserFields()
        try readFields(raw, of: "UserRecord") { field, wireType, reader throws(WireFormatError) in
            switch (field, wireType) {
            case (1, .lengthDelimited), (4, .lengthDelimited), (5, .lengthDelimited), (6, .lengthDelimited), (8, .lengthDelimited):
                let bytes = UnsafeRawBufferPointer(rebasing: raw[try reader.lengthDelimited()])
                switch field {
                case 1: fields.id = bytes
                case 4: fields.name = bytes
                case 5: fields.email = bytes
                case 6: fields.phone = bytes
                default: fields.labels.append(bytes)
                }
            case (2, .varint): fields.createdAt = Int64(bitPattern: try reader.varint())
            case (3, .varint): fields.updatedAt = Int64(bitPattern: try reader.varint())
            case (7, .varint): fields.status = try reader.varint() != 0
            case (11, .varint): fields.passwordUpdate = Int64(bitPattern: try reader.varint())
            case (12, .varint): fields.registration = Int64(bitPattern: try reader.varint())
            case (13, .varint): fields.emailVerification = try reader.varint() != 0
            case (14, .varint): fields.phoneVerification = try reader.varint() != 0
            case (17, .varint): fields.accessedAt = Int64(bitPattern: try reader.varint())
            case (20, .varint): fields.impersonator = try reader.varint() != 0
            default: try reader.skip(wireType)
            }
        }
        return try body(fields)
    }

    /// Reads a stored `message`'s bytes field by field, without decoding the record: `visit`
    /// reads or skips each field. A wire-format fault is a corrupt store.
    @inline(__always)
    private static func readFields(
        _ raw: UnsafeRawBufferPointer, of message: String,
        _ visit: (_ field: Int, _ wireType: WireReader.WireType, _ reader: inout WireReader) throws(WireFormatError) -> Void
    ) throws {
        var reader = WireReader(bytes: raw)
        do {
            while let (field, wireType) = try reader.nextTag() { try visit(field, wireType, &reader) }
        } catch {
            throw StoreError(.corrupt, "undecodable authd.store.v1.\(message): \(error)")
        }
    }

    static func decodeUser(_ raw: UnsafeRawBufferPointer) throws -> UserRecord {
        let r = try decode(Authd_Store_V1_UserRecord.self, raw)
        var user = UserRecord(id: r.id, createdAt: r.createdAt)
        user.updatedAt = r.updatedAt
        user.name = r.name
        user.email = r.email
        user.phone = r.phone
        user.status = r.status
        user.labels = r.labels
        user.passwordHash = r.passwordHash
        user.hashAlgorithm = r.hashAlgorithm
        user.passwordUpdate = r.passwordUpdate
        user.registration = r.registration
        user.emailVerification = r.emailVerification
        user.phoneVerification = r.phoneVerification
        user.mfa = r.mfa
        user.prefs = r.prefs
        user.accessedAt = r.accessedAt
        user.passwordHistory = r.passwordHistory
        user.reset = r.reset
        user.impersonator = r.impersonator
        user.hashOptions = r.hashOptions
        return user
    }

    static func encode(_ session: SessionRecord) throws -> [UInt8] {
        // Neither the id (the record's key) nor an update time equal to the creation's is
        // written: about a sixth of a session's bytes, in the largest tree of the store.
        var r = Authd_Store_V1_SessionRecord()
        r.userID = session.userID
        r.createdAt = session.createdAt
        if session.updatedAt != session.createdAt { r.updatedAt = session.updatedAt }
        r.expire = session.expire
        r.provider = session.provider
        r.providerUid = session.providerUID
        r.secretHash = Data(session.secretHash)
        r.ip = session.ip
        r.userAgent = session.userAgent
        r.countryCode = session.countryCode
        r.factors = session.factors
        r.mfaUpdatedAt = session.mfaUpdatedAt
        r.secretLocator = session.secretLocator
        return try r.serializedBytes()
    }

    /// The session stored under `id` (its key in `sessions`), which records written before
    /// schema version 5 also hold.
    static func decodeSession(_ raw: UnsafeRawBufferPointer, id: @autoclosure () -> String) throws -> SessionRecord {
        let r = try decode(Authd_Store_V1_SessionRecord.self, raw)
        var session = SessionRecord(
            id: r.id.isEmpty ? id() : r.id, userID: r.userID, createdAt: r.createdAt, expire: r.expire,
            provider: r.provider, secretHash: [UInt8](r.secretHash))
        session.updatedAt = r.updatedAt == 0 ? r.createdAt : r.updatedAt
        session.providerUID = r.providerUid
        session.ip = r.ip
        session.userAgent = r.userAgent
        session.countryCode = r.countryCode
        session.factors = r.factors
        session.mfaUpdatedAt = r.mfaUpdatedAt
        session.secretLocator = r.secretLocator
        return session
    }

    static func encode(_ change: ChangeRecord) throws -> [UInt8] {
        var r = Authd_Store_V1_ChangeRecord()
        r.sequence = change.sequence
        r.time = change.time
        if let rest = userEvent(of: change.event, userID: change.userID) {
            r.userEvent = rest
        } else {
            r.event = change.event
        }
        r.auditEvent = change.auditEvent
        if isUserResource(change.resource, userID: change.userID) {
            r.resourceIsUser = true
        } else {
            r.resource = change.resource
        }
        r.userID = change.userID
        r.actorType = change.actorType
        r.actorID = change.actorID
        r.ip = change.ip
        r.userAgent = change.userAgent
        r.userPreviousSequence = change.userPreviousSequence
        return try r.serializedBytes()
    }

    /// `change` with its numbers: protobuf takes fields in any order, so the sequence (field 1)
    /// goes before the prepared bytes and the previous entry (field 11, absent when 0) after.
    static func encode(_ change: PreparedChange, sequence: UInt64, userPreviousSequence: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(change.unnumbered.count + 22)
        bytes.append(1 << 3)
        appendVarint(sequence, to: &bytes)
        bytes.append(contentsOf: change.unnumbered)
        if userPreviousSequence != 0 {
            bytes.append(11 << 3)
            appendVarint(userPreviousSequence, to: &bytes)
        }
        return bytes
    }

    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    static func decodeChange(_ raw: UnsafeRawBufferPointer) throws -> ChangeRecord {
        let r = try decode(Authd_Store_V1_ChangeRecord.self, raw)
        var change = ChangeRecord(
            time: r.time,
            event: r.userEvent.isEmpty ? r.event : userEventPrefix(r.userID) + r.userEvent,
            auditEvent: r.auditEvent,
            resource: r.resourceIsUser ? userResource(r.userID) : r.resource,
            userID: r.userID)
        change.sequence = r.sequence
        change.actorType = r.actorType
        change.actorID = r.actorID
        change.ip = r.ip
        change.userAgent = r.userAgent
        change.userPreviousSequence = r.userPreviousSequence
        return change
    }

    // An entry about its own user stores the user's id once (`user_id`), not in its event and
    // its resource too.

    /// `users.<user_id>.`, the start of the events about a user.
    private static func userEventPrefix(_ userID: String) -> String { "users.\(userID)." }

    /// `user/<user_id>`, the resource of the changes to a user.
    private static func userResource(_ userID: String) -> String { "user/\(userID)" }

    /// Whether `resource` is `user/<user_id>`, byte for byte (`==` would take canonically equal
    /// text, which reads back as other bytes).
    private static func isUserResource(_ resource: String, userID: String) -> Bool {
        !userID.isEmpty && resource.utf8.elementsEqual(userResource(userID).utf8)
    }

    /// What follows `users.<user_id>.` in `event`, which the log stores alone (`user_event`);
    /// nil when the event does not start so, or nothing follows (an empty field reads as
    /// absent). Compared byte for byte (`hasPrefix` would match canonically equal text), and cut
    /// after the prefix's ASCII dot, so that prefix + rest gives back the same bytes.
    private static func userEvent(of event: String, userID: String) -> String? {
        guard !userID.isEmpty else { return nil }
        let prefix = userEventPrefix(userID).utf8
        guard event.utf8.count > prefix.count, event.utf8.starts(with: prefix) else { return nil }
        return String(decoding: event.utf8.dropFirst(prefix.count), as: UTF8.self)
    }

    static func encode(_ token: TokenRecord) throws -> [UInt8] {
        var r = Authd_Store_V1_TokenRecord()
        r.id = token.id
        r.userID = token.userID
        r.type = token.type
        r.secretHash = Data(token.secretHash)
        r.createdAt = token.createdAt
        r.expire = token.expire
        r.ip = token.ip
        r.userAgent = token.userAgent
        return try r.serializedBytes()
    }

    /// A token record's secret hash (where it lies in `raw`) and expiry, read off its bytes
    /// without decoding the record; the last of a field wins, as in any decoder.
    static func tokenSecretAndExpiry(_ raw: UnsafeRawBufferPointer) throws -> (secretHash: Range<Int>, expire: Int64) {
        var secretHash = 0..<0
        var expire: Int64 = 0
        try readFields(raw, of: "TokenRecord") { field, wireType, reader throws(WireFormatError) in
            switch (field, wireType) {
            case (4, .lengthDelimited): secretHash = try reader.lengthDelimited()
            case (6, .varint): expire = Int64(bitPattern: try reader.varint())
            default: try reader.skip(wireType)
            }
        }
        return (secretHash, expire)
    }

    /// A change-log entry's time and where its user id lies in `raw`, read off its bytes without
    /// decoding the entry: pruning the log reads thousands per write, on the writer's thread.
    static func changeTimeAndUser(_ raw: UnsafeRawBufferPointer) throws -> (time: Int64, userID: Range<Int>) {
        var time: Int64 = 0
        var userID = 0..<0
        try readFields(raw, of: "ChangeRecord") { field, wireType, reader throws(WireFormatError) in
            switch (field, wireType) {
            case (2, .varint): time = Int64(bitPattern: try reader.varint())
            case (6, .lengthDelimited): userID = try reader.lengthDelimited()
            default: try reader.skip(wireType)
            }
        }
        return (time, userID)
    }

    /// A session record's expiry, read off its bytes without decoding the record: the expiry
    /// sweep looks at every session.
    static func sessionExpiry(_ raw: UnsafeRawBufferPointer) throws -> Int64 {
        var expire: Int64 = 0
        try readFields(raw, of: "SessionRecord") { field, wireType, reader throws(WireFormatError) in
            switch (field, wireType) {
            case (5, .varint): expire = Int64(bitPattern: try reader.varint())
            default: try reader.skip(wireType)
            }
        }
        return expire
    }

    /// A session record's secret hash (where it lies in `raw`) and locator, read off its bytes
    /// without decoding the record; the last of a field wins, as in any decoder.
    static func sessionSecret(_ raw: UnsafeRawBufferPointer) throws -> (secretHash: Range<Int>, locator: UInt64) {
        var secretHash = 0..<0
        var locator: UInt64 = 0
        try readFields(raw, of: "SessionRecord") { field, wireType, reader throws(WireFormatError) in
            switch (field, wireType) {
            case (8, .lengthDelimited): secretHash = try reader.lengthDelimited()
            case (14, .fixed64): locator = try reader.fixed64()
            default: try reader.skip(wireType)
            }
        }
        return (secretHash, locator)
    }

    static func decodeToken(_ raw: UnsafeRawBufferPointer) throws -> TokenRecord {
        let r = try decode(Authd_Store_V1_TokenRecord.self, raw)
        var token = TokenRecord(
            id: r.id, userID: r.userID, type: r.type, secretHash: [UInt8](r.secretHash), createdAt: r.createdAt,
            expire: r.expire)
        token.ip = r.ip
        token.userAgent = r.userAgent
        return token
    }

    static func encode(_ key: ApiKeyRecord) throws -> [UInt8] {
        var r = Authd_Store_V1_ApiKeyRecord()
        r.id = key.id
        r.name = key.name
        r.scopes = key.scopes
        r.secretHash = Data(key.secretHash)
        r.createdAt = key.createdAt
        r.expire = key.expire
        r.revokedAt = key.revokedAt
        r.accessedAt = key.accessedAt
        return try r.serializedBytes()
    }

    static func decodeApiKey(_ raw: UnsafeRawBufferPointer) throws -> ApiKeyRecord {
        let r = try decode(Authd_Store_V1_ApiKeyRecord.self, raw)
        var key = ApiKeyRecord(
            id: r.id, name: r.name, scopes: r.scopes, secretHash: [UInt8](r.secretHash), createdAt: r.createdAt)
        key.expire = r.expire
        key.revokedAt = r.revokedAt
        key.accessedAt = r.accessedAt
        return key
    }

    static func encode(_ settings: AuthSettings) throws -> [UInt8] {
        var r = Authd_Store_V1_SettingsRecord()
        r.stored = true
        r.userLimit = UInt32(settings.userLimit)
        r.maxSessions = UInt32(settings.maxSessions)
        r.duration = UInt32(settings.duration)
        r.invalidateSessions = settings.invalidateSessions
        r.sessionAlerts = settings.sessionAlerts
        r.passwordHistory = UInt32(settings.passwordHistory)
        r.passwordDictionary = settings.passwordDictionary
        r.personalDataCheck = settings.personalDataCheck
        r.passwordMinLength = UInt32(settings.passwordMinLength)
        r.passwordUppercase = settings.passwordUppercase
        r.passwordLowercase = settings.passwordLowercase
        r.passwordNumber = settings.passwordNumber
        r.passwordSymbols = settings.passwordSymbols
        r.membershipsUserID = settings.membershipsUserID
        r.membershipsUserEmail = settings.membershipsUserEmail
        r.membershipsUserPhone = settings.membershipsUserPhone
        r.membershipsUserName = settings.membershipsUserName
        r.membershipsMfa = settings.membershipsMFA
        r.membershipsUserAccessedAt = settings.membershipsUserAccessedAt
        r.mockNumbers = settings.mockNumbers.map { n in
            var m = Authd_Store_V1_MockNumber()
            m.phone = n.phone
            m.otp = n.otp
            return m
        }
        r.disabledMethods = settings.disabledMethods.sorted()
        return try r.serializedBytes()
    }

    static func decodeSettings(_ raw: UnsafeRawBufferPointer) throws -> AuthSettings {
        let r = try decode(Authd_Store_V1_SettingsRecord.self, raw)
        var s = AuthSettings()
        s.userLimit = Int(r.userLimit)
        s.maxSessions = Int(r.maxSessions)
        s.duration = Int64(r.duration)
        s.invalidateSessions = r.invalidateSessions
        s.sessionAlerts = r.sessionAlerts
        s.passwordHistory = Int(r.passwordHistory)
        s.passwordDictionary = r.passwordDictionary
        s.personalDataCheck = r.personalDataCheck
        s.passwordMinLength = Int(r.passwordMinLength)
        s.passwordUppercase = r.passwordUppercase
        s.passwordLowercase = r.passwordLowercase
        s.passwordNumber = r.passwordNumber
        s.passwordSymbols = r.passwordSymbols
        s.membershipsUserID = r.membershipsUserID
        s.membershipsUserEmail = r.membershipsUserEmail
        s.membershipsUserPhone = r.membershipsUserPhone
        s.membershipsUserName = r.membershipsUserName
        s.membershipsMFA = r.membershipsMfa
        s.membershipsUserAccessedAt = r.membershipsUserAccessedAt
        s.mockNumbers = r.mockNumbers.map { AuthSettings.MockNumber(phone: $0.phone, otp: $0.otp) }
        s.disabledMethods = Set(r.disabledMethods)
        return s
    }

    static func encode(_ keys: [JWTKeyRecord]) throws -> [UInt8] {
        var set = Authd_Store_V1_JWTKeySet()
        set.keys = keys.map { key in
            var r = Authd_Store_V1_JWTKey()
            r.kid = key.kid
            r.privateKey = Data(key.privateKey)
            r.createdAt = key.createdAt
            r.retiredAt = key.retiredAt
            return r
        }
        return try set.serializedBytes()
    }

    static func decodeJWTKeys(_ raw: UnsafeRawBufferPointer) throws -> [JWTKeyRecord] {
        try decode(Authd_Store_V1_JWTKeySet.self, raw).keys.map { r in
            var key = JWTKeyRecord(kid: r.kid, privateKey: [UInt8](r.privateKey), createdAt: r.createdAt)
            key.retiredAt = r.retiredAt
            return key
        }
    }

    private static func decode<M: SwiftProtobuf.Message>(_ type: M.Type, _ raw: UnsafeRawBufferPointer) throws -> M {
        do {
            return try M(serializedBytes: raw.bytes)
        } catch {
            throw StoreError(.corrupt, "undecodable \(M.protoMessageName): \(error)")
        }
    }
}
