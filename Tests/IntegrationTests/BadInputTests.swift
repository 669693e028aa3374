import AuthdClient
import AuthdProto
import Crypto
import Foundation
import XCTest

/// Malformed input gets its error (or a close when the framing itself is unreadable), changes
/// nothing, and never stops the daemon serving other connections.
final class BadInputTests: XCTestCase {
    var daemon: DaemonProcess!

    override func setUp() async throws {
        daemon = try await DaemonProcess.start(extraArguments: ["--set", "max_frame_bytes=65536"])
        let client = try await daemon.connect()
        _ = try await client.createAccount(userID: "keep", email: "keep@example.com", password: "password-1")
        await client.close()
    }

    override func tearDown() async throws {
        await daemon?.cleanUp()
    }

    /// The data file's bytes up to its last non-zero byte: past LMDB's data the store keeps a
    /// zone of zeros (a hole, `GrowthZone`) that it extends between commits, on its own time,
    /// so the file's length alone may change after a write has been acknowledged.
    private func dataFingerprint() throws -> Data {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: daemon.dataPath + "/data.mdb"))
        return bytes.withUnsafeBytes { raw in
            // Eight bytes at a time: the zone is megabytes long.
            var end = raw.count
            while end >= 8, raw.loadUnaligned(fromByteOffset: end - 8, as: UInt64.self) == 0 { end -= 8 }
            while end > 0, raw[end - 1] == 0 { end -= 1 }
            return Data(SHA256.hash(data: UnsafeRawBufferPointer(rebasing: raw[..<end])))
        }
    }

    /// After each bad input, a fresh connection is still served.
    private func assertStillServing(file: StaticString = #filePath, line: UInt = #line) async throws {
        let client = try await daemon.connect()
        let health = try await client.healthCheck()
        XCTAssertEqual(health.status, "pass", file: file, line: line)
        let session = try await client.createEmailPasswordSession(email: "keep@example.com", password: "password-1")
        try await client.deleteSession(credentials: .session(session.secret))
        await client.close()
    }

    func testGarbageBytesAreAnsweredOrClosedAndChangeNothing() async throws {
        let before = try dataFingerprint()
        let raw = try RawConnection(socketPath: daemon.socketPath)
        // Announces a frame of 0xdeadbeef bytes: far beyond the maximum.
        try raw.send([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03, 0xff, 0xfe])
        let response = try XCTUnwrap(try raw.receiveResponse())
        XCTAssertEqual(response.error.type, "general_argument_invalid")
        XCTAssertEqual(response.error.code, 400)
        XCTAssertTrue(try raw.isClosedByPeer())
        XCTAssertEqual(try dataFingerprint(), before)
        try await assertStillServing()
    }

    func testOversizeLengthIsRefusedAtTheHeader() async throws {
        let before = try dataFingerprint()
        let raw = try RawConnection(socketPath: daemon.socketPath)
        // Only the header is sent: the refusal must not wait for (or allocate) the body.
        try raw.send(RawConnection.lengthPrefix(65537))
        let response = try XCTUnwrap(try raw.receiveResponse())
        XCTAssertEqual(response.id, 0)
        XCTAssertEqual(response.error.type, "general_argument_invalid")
        XCTAssertTrue(response.error.message.contains("65537"), response.error.message)
        XCTAssertTrue(try raw.isClosedByPeer())
        XCTAssertEqual(try dataFingerprint(), before)
        try await assertStillServing()
    }

    func testTruncatedFrameIsDroppedWhenTheClientLeaves() async throws {
        let before = try dataFingerprint()
        let raw = try RawConnection(socketPath: daemon.socketPath)
        var request = Authd_V1_Request()
        request.id = 9
        request.method = "authd.v1.Account/Create"
        var create = Authd_V1_CreateAccountRequest()
        create.userID = "truncated"
        create.email = "truncated@example.com"
        create.password = "password-1"
        request.body = try create.serializedData()
        let payload: [UInt8] = try request.serializedBytes()
        let frame = RawConnection.lengthPrefix(payload.count) + payload
        try raw.send(Array(frame.prefix(frame.count - 5)))
        raw.shutdownWrite()
        XCTAssertNil(try raw.receiveResponse(), "no answer for a frame that never completed")
        XCTAssertEqual(try dataFingerprint(), before)
        try await assertStillServing()
        let client = try await daemon.connect()
        await assertAuthdError("user_invalid_credentials", 401) {
            try await client.createEmailPasswordSession(email: "truncated@example.com", password: "password-1")
        }
        await client.close()
    }

    func testUndecodableEnvelopeGetsAnErrorAndTheConnectionStaysUsable() async throws {
        let before = try dataFingerprint()
        let raw = try RawConnection(socketPath: daemon.socketPath)
        // Field 1 announced as length-delimited with a length running past the end.
        try raw.sendFrame([0x0a, 0x7f, 0x01])
        let response = try XCTUnwrap(try raw.receiveResponse())
        XCTAssertEqual(response.id, 0)
        XCTAssertEqual(response.error.type, "general_argument_invalid")

        var health = Authd_V1_Request()
        health.id = 77
        health.method = "authd.v1.Health/Check"
        try raw.sendRequest(health)
        let answer = try XCTUnwrap(try raw.receiveResponse())
        XCTAssertEqual(answer.id, 77)
        XCTAssertFalse(answer.hasError)
        XCTAssertEqual(try Authd_V1_HealthCheckResponse(serializedBytes: answer.body).status, "pass")
        XCTAssertEqual(try dataFingerprint(), before)
    }

    func testUnknownMethodUndecodableBodyAndWrongTypedField() async throws {
        let before = try dataFingerprint()
        let raw = try RawConnection(socketPath: daemon.socketPath)

        var unknown = Authd_V1_Request()
        unknown.id = 1
        unknown.method = "authd.v1.Account/DropAllTables"
        try raw.sendRequest(unknown)

        var undecodable = Authd_V1_Request()
        undecodable.id = 2
        undecodable.method = "authd.v1.Account/Create"
        undecodable.body = Data([0xff, 0xff, 0xff])
        try raw.sendRequest(undecodable)

        // `user_id` (field 1, a string) sent as a varint: a wrong-typed field.
        var wrongType = Authd_V1_Request()
        wrongType.id = 3
        wrongType.method = "authd.v1.Account/Create"
        wrongType.body = Data([0x08, 0x2a, 0x12, 0x03, 0x61, 0x40, 0x62])
        try raw.sendRequest(wrongType)

        var answers: [UInt64: Authd_V1_Response] = [:]
        for _ in 0..<3 {
            let response = try XCTUnwrap(try raw.receiveResponse())
            answers[response.id] = response
        }
        XCTAssertEqual(answers[1]?.error.type, "general_route_not_found")
        XCTAssertEqual(answers[1]?.error.code, 404)
        XCTAssertEqual(answers[2]?.error.type, "general_argument_invalid")
        XCTAssertEqual(answers[2]?.error.code, 400)
        XCTAssertEqual(answers[3]?.error.type, "general_argument_invalid")
        XCTAssertEqual(answers[3]?.error.code, 400)

        // The same connection still serves.
        var health = Authd_V1_Request()
        health.id = 4
        health.method = "authd.v1.Health/Check"
        try raw.sendRequest(health)
        XCTAssertEqual(try raw.receiveResponse()?.id, 4)
        XCTAssertEqual(try dataFingerprint(), before)
        try await assertStillServing()
    }

    func testEmptyFrameIsAnEmptyRequest() async throws {
        let raw = try RawConnection(socketPath: daemon.socketPath)
        try raw.sendFrame([])
        let response = try XCTUnwrap(try raw.receiveResponse())
        XCTAssertEqual(response.error.type, "general_route_not_found")
    }

    /// A client that pipelines far more slow calls than it waits for (here, forged JWTs, each
    /// verified on another thread) has its reading paused while 1,024 of them are in flight:
    /// every call is still answered, and the daemon counts the pauses.
    func testAConnectionWithTooManySlowCallsInFlightIsReadAtTheDaemonsPace() async throws {
        // This process mapped, to read the statistics; one verification thread.
        await daemon.cleanUp()
        daemon = try await DaemonProcess.start(extraArguments: [
            "--set", "peer_uid.\(getuid())=sessions.write,users.write,settings.read", "--set", "hash_threads=1",
        ])
        let client = try await daemon.connect()
        _ = try await client.createUser(email: "slow@example.com", password: "password-1")
        let secret = try await client.createEmailPasswordSession(email: "slow@example.com", password: "password-1").secret
        let token = try await client.createJWT(credentials: .session(secret))
        let before = try await client.stats()
        let forged = signatureAltered(token)
        let count = 3000
        let batch = try accountGetCalls(count, credentials: .with { $0.jwt = forged })
        let raw = try RawConnection(socketPath: daemon.socketPath)
        // Sent from another thread: the socket's buffers hold a fraction of the megabyte, and
        // the daemon's answers are read here meanwhile.
        let sender = Task.detached { [batch, raw = UncheckedBox(raw)] in try raw.value.send(batch) }
        var answered = Set<UInt64>()
        for _ in 0..<count {
            let answer = try XCTUnwrap(try raw.receiveResponse())
            XCTAssertEqual(answer.error.type, "user_jwt_invalid")
            answered.insert(answer.id)
        }
        try await sender.value
        XCTAssertEqual(answered.count, count, "every call answered once")
        let after = try await client.stats()
        XCTAssertGreaterThan(after.connectionReadsPaused, before.connectionReadsPaused, "its reading paused")
        XCTAssertEqual(after.jwtsRefused - before.jwtsRefused, UInt64(count))
        await client.close()
    }

    func testAClientThatDoesNotReadItsAnswersIsReadNoFasterThanItReads() async throws {
        // This process mapped, to read the statistics.
        await daemon.cleanUp()
        daemon = try await DaemonProcess.start(extraArguments: ["--set", "peer_uid.\(getuid())=settings.read"])
        let client = try await daemon.connect()
        let before = try await client.stats()
        // Session checks with a secret no session has: each is answered at once, on the loop
        // that read it, with a refusal of about a hundred bytes; 2 MB of them in all, far more
        // than the socket's buffers and the daemon's 256 KiB of unread answers hold.
        let count = 20_000
        let batch = try accountGetCalls(count, credentials: .with { $0.session = String(repeating: "x", count: 54) })
        let raw = try RawConnection(socketPath: daemon.socketPath)
        // Sent from another thread, which the daemon holds up once it stops reading.
        let sender = Task.detached { [batch, raw = UncheckedBox(raw)] in try raw.value.send(batch) }
        // Nothing is read until the daemon has paused its reading of the connection.
        var paused = before.connectionReadsPausedUnread
        for _ in 0..<200 where paused == before.connectionReadsPausedUnread {
            try await Task.sleep(for: .milliseconds(50))
            paused = try await client.stats().connectionReadsPausedUnread
        }
        XCTAssertGreaterThan(paused, before.connectionReadsPausedUnread, "its reading paused with its answers unread")
        var answered = Set<UInt64>()
        for _ in 0..<count {
            let answer = try XCTUnwrap(try raw.receiveResponse())
            XCTAssertEqual(answer.error.code, 401)
            answered.insert(answer.id)
        }
        try await sender.value
        XCTAssertEqual(answered.count, count, "every call answered once, once the client read")
        let after = try await client.stats()
        XCTAssertEqual(after.connectionReadsPaused, before.connectionReadsPaused, "no pause for slow calls: there were none")
        await client.close()
    }

    /// More sign-ins at once than the hashing threads can take in line: the ones past the line
    /// are refused at once with a 503 and counted, the others are answered as usual, and the
    /// daemon goes on serving.
    func testSignInsPastTheHashingQueueAreRefusedAtOnce() async throws {
        // One call in line, and hashes of about a hundred milliseconds: a batch of sign-ins
        // read together finds the thread busy with the first.
        try await restartWithOneHashingThread(queueLimit: 1, argon2MemoryKiB: 32768, argon2Iterations: 3)
        let client = try await daemon.connect()
        let before = try await client.stats()
        let count = 12
        let raw = try RawConnection(socketPath: daemon.socketPath)
        try raw.send(signInsOfUnknownAddresses(count))
        var codes: [UInt32: Int] = [:]
        var answered = Set<UInt64>()
        for _ in 0..<count {
            let answer = try XCTUnwrap(try raw.receiveResponse())
            codes[answer.error.code, default: 0] += 1
            answered.insert(answer.id)
            if answer.error.code == 503 {
                XCTAssertEqual(answer.error.type, "general_unknown")
                XCTAssertTrue(answer.error.message.contains("busy"), answer.error.message)
            } else {
                XCTAssertEqual(answer.error.type, "user_invalid_credentials")
            }
        }
        XCTAssertEqual(answered.count, count, "every call answered once")
        XCTAssertEqual(Set(codes.keys), [401, 503], "refused as busy, or checked and refused as unknown: \(codes)")
        XCTAssertGreaterThanOrEqual(codes[503] ?? 0, count / 2, "at most the running one and the one in line, and a few the thread took between reads: \(codes)")
        let after = try await client.stats()
        XCTAssertEqual(after.callsRefusedBusy - before.callsRefusedBusy, UInt64(codes[503] ?? 0))
        XCTAssertEqual(after.users, before.users, "nothing was written for them")
        // The line is short again: a sign-in is checked.
        do {
            _ = try await client.createEmailPasswordSession(email: "nobody@example.com", password: "password-0")
            XCTFail("an unknown address signed in")
        } catch let error as AuthdClientError {
            XCTAssertEqual(error.code, 401, "\(error)")
        }
        await client.close()
    }

    /// With the line full of one address's sign-ins, a sign-in from another address is still
    /// taken and checked (its lane's share of the line), where it was refused as busy.
    func testAFloodFromOneAddressLeavesTheOthersTheirShareOfTheHashingLine() async throws {
        // Two calls in line, and hashes of a few hundred milliseconds, so that the line is still
        // full when the second client's sign-in arrives.
        try await restartWithOneHashingThread(queueLimit: 2, argon2MemoryKiB: 65536, argon2Iterations: 4)
        let count = 8
        let flood = try RawConnection(socketPath: daemon.socketPath)
        try flood.send(signInsOfUnknownAddresses(count, from: "198.51.100.7"))
        // A refusal is answered at once: the line is full now, and stays so for a hash's time.
        var floodCodes: [UInt32: Int] = [:]
        let first = try XCTUnwrap(try flood.receiveResponse())
        floodCodes[first.error.code, default: 0] += 1
        XCTAssertEqual(first.error.code, 503, "the flood filled the line")
        let other = try RawConnection(socketPath: daemon.socketPath)
        try other.send(signInsOfUnknownAddresses(1, from: "198.51.100.8"))
        let answer = try XCTUnwrap(try other.receiveResponse())
        XCTAssertEqual(answer.error.code, 401, "checked, not refused as busy: \(answer.error)")
        XCTAssertEqual(answer.error.type, "user_invalid_credentials")
        for _ in 1..<count {
            let floodAnswer = try XCTUnwrap(try flood.receiveResponse())
            floodCodes[floodAnswer.error.code, default: 0] += 1
        }
        XCTAssertEqual(Set(floodCodes.keys), [401, 503], "\(floodCodes)")
        XCTAssertLessThanOrEqual(floodCodes[401] ?? 0, 4, "the running one, its two in line, and at most one taken between reads: \(floodCodes)")
    }

    /// Replaces the daemon with one that has one hashing thread, `queueLimit` calls in its line,
    /// and Argon2id at the given cost; this process may read settings and sign in.
    private func restartWithOneHashingThread(queueLimit: Int, argon2MemoryKiB: Int, argon2Iterations: Int) async throws {
        await daemon.cleanUp()
        daemon = try await DaemonProcess.start(extraArguments: [
            "--set", "peer_uid.\(getuid())=settings.read,sessions.write", "--set", "hash_threads=1",
            "--set", "hash_queue_limit=\(queueLimit)", "--set", "argon2_memory_kib=\(argon2MemoryKiB)",
            "--set", "argon2_iterations=\(argon2Iterations)",
        ])
    }

    /// `count` framed sign-ins of unknown addresses (each checks the decoy hash), ids 1 to
    /// `count`, relayed from the end user's address `ip` if given, to be sent in one write.
    private func signInsOfUnknownAddresses(_ count: Int, from ip: String = "") throws -> [UInt8] {
        try RawConnection.frames(
            (1...count).map { id in
                var request = Authd_V1_Request()
                request.id = UInt64(id)
                request.method = "authd.v1.Account/CreateEmailPasswordSession"
                request.body = try Authd_V1_CreateEmailPasswordSessionRequest.with {
                    $0.email = "nobody-\(id)@example.com"
                    $0.password = "password-\(id)"
                }.serializedBytes()
                if !ip.isEmpty { request.client.ip = ip }
                return request
            })
    }

    /// `count` framed `Account/Get` calls, ids 1 to `count`, with these credentials, to be sent
    /// in one write.
    private func accountGetCalls(_ count: Int, credentials: Authd_V1_Credentials) throws -> [UInt8] {
        try RawConnection.frames(
            (1...count).map { id in
                var request = Authd_V1_Request()
                request.id = UInt64(id)
                request.method = "authd.v1.Account/Get"
                request.credentials = credentials
                return request
            })
    }
}

/// Hands a test's non-Sendable value to another thread that alone uses it meanwhile.
private struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
