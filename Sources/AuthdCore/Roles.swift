/// The role strings of a caller (spec 11.2). Teams add `team:` and `member:` roles when the
/// Teams API lands.
extension Caller {
    public var roles: [String] {
        switch self {
        case .guest:
            return ["any", "guests"]
        case .server:
            return ["any", "keys"]
        case .user(let signedIn):
            let user = signedIn.user
            let verified = user.emailVerification || user.phoneVerification
            var roles = ["any", "users", "user:\(user.id)"]
            roles += verified ? ["user:\(user.id)/verified", "users/verified"] : ["user:\(user.id)/unverified", "users/unverified"]
            roles += user.labels.map { "label:\($0)" }
            return roles
        }
    }
}
