import AuthdStore
import Crypto
import Foundation
import Synchronization

/// JSON Web Tokens signed with Ed25519 (EdDSA), with a key id in the header and the public keys
/// served as a JWKS, so co-located services can verify tokens offline (spec 10, beyond
/// Appwrite's HS256).
///
/// Written on swift-crypto rather than jwt-kit: a token is checked synchronously on every
/// JWT-authenticated call (found kept, on the event loop; verified in full, on the verification
/// threads), and jwt-kit's key collection is an actor.
public final class JWTIssuer: Sendable {
    /// Tokens live at most this long, so a retired key stays published this long.
    public static let maximumDuration: Int64 = 3600

    struct Key: Sendable {
        let kid: String
        let signing: Curve25519.Signing.PrivateKey
        let retiredAt: Int64
    }

    /// What a valid token says, kept for the tokens verified lately.
    struct Claims: Sendable {
        let userID: String
        let sessionID: String
        /// Unix time in seconds.
        let expire: Int64
    }

    let directory: Directory
    private let keys = Mutex<[Key]>([])
    /// Tokens verified lately, by the SHA-256 of the whole token. A backend acting for a user
    /// presents the same token on every call for up to an hour, and verifying it cost 146 µs of
    /// the event loop per call (Ed25519 53 %, the base64url decoding 26 %: perf, issue 5); a
    /// token verified once stays verified while its key does. Expiry is checked on every use.
    /// Only tokens that verified are kept, so forged ones cannot fill it; a change of the keys
    /// empties it (`load`), so a token is accepted only while its key is loaded.
    private let verified: ReadCache<SecretDigest, Claims>

    /// Tokens checked in full (`verifyAndKeep`) and, of those, refused, since start.
    private let verifications = Atomic<UInt64>(0)
    private let refusals = Atomic<UInt64>(0)

    /// `verifiedCacheSize`: valid tokens kept verified (0: every use verifies).
    public init(directory: Directory, verifiedCacheSize: Int = 10_000) {
        self.directory = directory
        verified = ReadCache(capacity: verifiedCacheSize)
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
        // After the new keys are in: a verification that read the cache's generation before
        // this and found the old keys is not kept.
        verified.dropAll()
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
        let claims = try verify(token, digest: SecretToken.digest(token))
        return (claims.userID, claims.sessionID)
    }

    /// `verify`, given the token's SHA-256 (`SecretToken.digest`): found kept, or checked in
    /// full and kept.
    func verify(_ token: String, digest: SecretDigest) throws -> Claims {
        try keptClaims(digest, at: directory.clock.now() / 1000) ?? verifyAndKeep(token, digest: digest)
    }

    /// The claims of a token verified lately, refused if expired at `now` (Unix seconds: the
    /// event loop passes the time it read for the whole batch of calls); nil when the token has
    /// not been verified lately, and `verifyAndKeep` must check it.
    func keptClaims(_ digest: SecretDigest, at now: Int64) throws -> Claims? {
        guard let claims = verified.lookup(digest) else { return nil }
        guard claims.expire > now else { throw Self.invalid }
        return claims
    }

    /// Checks a token's signature and claims, and keeps it if it verifies. This costs about
    /// 90 µs (Ed25519, base64url, JSON), a session check's 150 times over: the event loops
    /// leave it to a pool (`Authorizer.verifyCredential`), so that a flood of forged tokens,
    /// which are never kept, does not stall every call on their loop.
    func verifyAndKeep(_ token: String, digest: SecretDigest) throws -> Claims {
        verifications.add(1, ordering: .relaxed)
        let now = directory.clock.now() / 1000
        // Read before the keys: a change of the keys after it moves it, and the claims are not kept.
        let generation = verified.generation
        guard token.utf8.count <= 4096, let claims = try? verifySignatureAndClaims(token), claims.expire > now else {
            refusals.add(1, ordering: .relaxed)
            throw Self.invalid
        }
        verified.insert(claims, for: digest, readAt: generation)
        return claims
    }

    /// Tokens checked in full since start, and those of them refused.
    public var verificationCounts: (verified: UInt64, refused: UInt64) {
        (verifications.load(ordering: .relaxed), refusals.load(ordering: .relaxed))
    }

    /// Whether a token verified now may be kept (`verifyAndKeep`), for it to be found after.
    var keepsVerifiedTokens: Bool { verified.capacity > 0 }

    static let invalid = AuthdError(type: "user_jwt_invalid", code: 401, message: "The JWT is invalid or has expired: create a new one.")

    /// Tokens kept verified (for tests).
    var verifiedCount: Int { verified.count }

    /// How the verified tokens served their lookups (for tests).
    var verifiedFigures: CacheFigures { verified.figures }

    private func verifySignatureAndClaims(_ token: String) throws -> Claims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
            let headerData = Self.decodeBase64URL(parts[0]), let payloadData = Self.decodeBase64URL(parts[1]),
            let signature = Self.decodeBase64URL(parts[2]),
            let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any],
            header["alg"] as? String == "EdDSA", let kid = header["kid"] as? String,
            let key = keys.withLock({ $0.first { $0.kid == kid } }),
            key.signing.publicKey.isValidSignature(signature, for: Array((parts[0] + "." + parts[1]).utf8)),
            let payload = try? JSONSerialization.jsonObject(with: payloadData) as? [String: Any],
            let userID = payload["userId"] as? String, let exp = (payload["exp"] as? NSNumber)?.int64Value
        else { throw Self.invalid }
        return Claims(userID: userID, sessionID: payload["sessionId"] as? String ?? "", expire: exp)
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

    /// Unpadded base64url (RFC 7515, 2), byte by byte: `replacingOccurrences` went through
    /// NSString, and was a quarter of a token's verification (perf, issue 5).
    static func base64URL<D: DataProtocol>(_ data: D) -> String {
        let base64 = Data(data).base64EncodedData()
        var url = [UInt8]()
        url.reserveCapacity(base64.count)
        for byte in base64 {
            switch byte {
            case UInt8(ascii: "+"): url.append(UInt8(ascii: "-"))
            case UInt8(ascii: "/"): url.append(UInt8(ascii: "_"))
            case UInt8(ascii: "="): break
            default: url.append(byte)
            }
        }
        return String(decoding: url, as: UTF8.self)
    }

    /// The bytes of unpadded base64url; nil for anything else (padding and the standard
    /// alphabet's `+` and `/` included).
    static func decodeBase64URL(_ text: Substring) -> Data? {
        var base64 = [UInt8]()
        base64.reserveCapacity(text.utf8.count + 3)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "="): return nil
            case UInt8(ascii: "-"): base64.append(UInt8(ascii: "+"))
            case UInt8(ascii: "_"): base64.append(UInt8(ascii: "/"))
            default: base64.append(byte)
            }
        }
        while base64.count % 4 != 0 { base64.append(UInt8(ascii: "=")) }
        return Data(base64Encoded: Data(base64))
    }
}
