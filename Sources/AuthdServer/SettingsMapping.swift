import AuthdCore
import AuthdProto
import AuthdStore

extension Authd_V1_AuthSettings {
    init(_ s: AuthSettings) {
        self.init()
        userLimit = UInt32(s.userLimit)
        maxSessions = UInt32(s.maxSessions)
        duration = UInt32(s.duration)
        invalidateSessions = s.invalidateSessions
        sessionAlerts = s.sessionAlerts
        passwordHistory = UInt32(s.passwordHistory)
        passwordDictionary = s.passwordDictionary
        personalDataCheck = s.personalDataCheck
        passwordMinLength = UInt32(s.passwordMinLength)
        passwordUppercase = s.passwordUppercase
        passwordLowercase = s.passwordLowercase
        passwordNumber = s.passwordNumber
        passwordSymbols = s.passwordSymbols
        membershipsUserID = s.membershipsUserID
        membershipsUserEmail = s.membershipsUserEmail
        membershipsUserPhone = s.membershipsUserPhone
        membershipsUserName = s.membershipsUserName
        membershipsMfa = s.membershipsMFA
        membershipsUserAccessedAt = s.membershipsUserAccessedAt
        mockNumbers = s.mockNumbers.map { n in
            var m = Authd_V1_MockNumber()
            m.phone = n.phone
            m.otp = n.otp
            return m
        }
        disabledMethods = s.disabledMethods.sorted()
    }

    /// Copies the fields named in `mask` onto `settings`; an unknown name is an error.
    func apply(_ mask: [String], to s: inout AuthSettings) throws {
        for field in mask {
            switch field {
            case "user_limit": s.userLimit = Int(userLimit)
            case "max_sessions": s.maxSessions = Int(maxSessions)
            case "duration": s.duration = Int64(duration)
            case "invalidate_sessions": s.invalidateSessions = invalidateSessions
            case "session_alerts": s.sessionAlerts = sessionAlerts
            case "password_history": s.passwordHistory = Int(passwordHistory)
            case "password_dictionary": s.passwordDictionary = passwordDictionary
            case "personal_data_check": s.personalDataCheck = personalDataCheck
            case "password_min_length": s.passwordMinLength = Int(passwordMinLength)
            case "password_uppercase": s.passwordUppercase = passwordUppercase
            case "password_lowercase": s.passwordLowercase = passwordLowercase
            case "password_number": s.passwordNumber = passwordNumber
            case "password_symbols": s.passwordSymbols = passwordSymbols
            case "memberships_user_id": s.membershipsUserID = membershipsUserID
            case "memberships_user_email": s.membershipsUserEmail = membershipsUserEmail
            case "memberships_user_phone": s.membershipsUserPhone = membershipsUserPhone
            case "memberships_user_name": s.membershipsUserName = membershipsUserName
            case "memberships_mfa": s.membershipsMFA = membershipsMfa
            case "memberships_user_accessed_at": s.membershipsUserAccessedAt = membershipsUserAccessedAt
            case "mock_numbers": s.mockNumbers = mockNumbers.map { AuthSettings.MockNumber(phone: $0.phone, otp: $0.otp) }
            case "disabled_methods": s.disabledMethods = Set(disabledMethods)
            default: throw AuthdError.argumentInvalid("Invalid `update_mask` param: unknown field `\(field)`")
            }
        }
    }
}
