import AuthdStore
import Crypto
import Foundation
import Synchronization

/// JSON Web Tokens signed with Ed25519 (EdDSA), with a key id in the header and the public keys
/// served as a JWKS, so co-located services can verify tokens offline (spec 10, beyond
/// Appwrite's HS256).
///
/// Written on swift-crypto rather than jwt-kit: verification runs synchronously on the event
/// loop for every JWT-authenticated call, and jwt-kit's key collection is an actor.
public final class JWTIssuer: Sendable {
    /// Tokens live at most this long, so a retired key stays published this long.
    public static let maximumDuration: Int64 = 3600

    struct Key: Sendable {
        let kid: String
        let signing: Curve25519.Signing.PrivateKey
        let retiredAt: Int64
    }

    let directory: Directory
    private let keys = Mutex<[Key]>([])

    public init(directory: Directory) {
        self.directory = directory
    }

    /// Loads the signing keys, making the first one on a new data folder.
    public func start() async throws {
        let stored = try directory.store.read { try $0.jwtKeys() }
        if stored.isEmpty {
            _ = try await rotate(call: nil)
        } else {
            try load(stored)
        }
    }

    private func load(_ stored: [JWTKeyRecord]) throws {
        let loaded = try stored.map {
            Key(kid: $0.kid, signing: try Curve25519.Signing.PrivateKey(rawRepresentation: $0.privateKey), retiredAt: $0.retiredAt)
        }
        keys.withLock { $0 = loaded }
    }

    /// A new signing key; the previous one is retired but still verifies until its tokens expire.
    public func rotate(call: Call?) async throws -> String {
        let now = directory.clock.now()
        let fresh = JWTKeyRecord(
            kid: Identifiers.unique(nowMicroseconds: now * 1000),
            privateKey: Array(Curve25519.Signing.PrivateKey().rawRepresentation), createdAt: now)
        let change = call.map {
            directory.changeRecord("keys.jwt.\(fresh.kid).create", audit: "key.create", resource: "jwt/\(fresh.kid)", userID: "", call: $0, time: now)
        }
        let all = try await directory.store.write { w -> [JWTKeyRecord] in
            var keys = try w.jwtKeys()
            for i in keys.indices where keys[i].retiredAt == 0 { keys[i].retiredAt = now }
            // Keys retired longer ago than any token lives are of no further use.
            keys.removeAll { $0.retiredAt != 0 && $0.retiredAt + (Self.maximumDuration + 60) * 1000 < now }
            keys.append(fresh)
            try w.putJWTKeys(keys)
            if let change { try w.appendChange(change) }
            return keys
        }
        try load(all)
        return fresh.kid
    }

    /// A token for `userID` (and `sessionID`, empty for none) valid `duration` seconds.
    public func sign(userID: String, sessionID: String, duration: Int64) throws -> String {
        guard let key = keys.withLock({ $0.last(where: { $0.retiredAt == 0 }) }) else {
            throw AuthdError.serverError
        }
        let now = directory.clock.now() / 1000
        let header = try Self.json(["alg": "EdDSA", "kid": key.kid, "typ": "JWT"])
        let payload = try Self.json(["userId": userID, "sessionId": sessionID, "iat": now, "exp": now + duration])
        let signingInput = Self.base64URL(header) + "." + Self.base64URL(payload)
        let signature = try key.signing.signature(for: Array(signingInput.utf8))
        return signingInput + "." + Self.base64URL(signature)
    }

    /// The claims of a valid token; `user_jwt_invalid` for anything malformed, forged, signed by
    /// an unknown key, or expired.
    public func verify(_ token: String) throws -> (userID: String, sessionID: String) {
        let invalid = AuthdError(type: "user_jwt_invalid", code: 401, message: "The JWT is invalid or has expired: create a new one.")
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard token.utf8.count <= 4096, parts.count == 3,
            let headerData = Self.decodeBase64URL(parts[0]), let payloadData = Self.decodeBase64URL(parts[1]),
            let signature = Self.decodeBase64URL(parts[2]),
            let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any],
            header["alg"] as? String == "EdDSA", let kid = header["kid"] as? String,
            let key = keys.withLock({ $0.first { $0.kid == kid } }),
            key.signing.publicKey.isValidSignature(signature, for: Array((parts[0] + "." + parts[1]).utf8)),
            let payload = try? JSONSerialization.jsonObject(with: payloadData) as? [String: Any],
            let userID = payload["userId"] as? String, let exp = (payload["exp"] as? NSNumber)?.int64Value
        else { throw invalid }
        guard exp > directory.clock.now() / 1000 else { throw invalid }
        return (userID, payload["sessionId"] as? String ?? "")
    }

    /// The public keys as a JSON Web Key Set.
    public func jwks() throws -> String {
        let published = keys.withLock { $0 }.map { key -> [String: Any] in
            ["kty": "OKP", "crv": "Ed25519", "x": Self.base64URL(key.signing.publicKey.rawRepresentation), "kid": key.kid,
             "alg": "EdDSA", "use": "sig"]
        }
        return String(decoding: try Self.json(["keys": published]), as: UTF8.self)
    }

    static func json(_ object: Any) throws -> Data {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    static func base64URL<D: DataProtocol>(_ data: D) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeBase64URL(_ text: Substring) -> Data? {
        guard !text.contains(where: { $0 == "+" || $0 == "/" || $0 == "=" }) else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }
}
