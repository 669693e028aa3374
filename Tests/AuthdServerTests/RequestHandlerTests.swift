@testable import AuthdServer
import AuthdCore
import AuthdProto
import AuthdStore
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Synchronization
import XCTest

/// The connection pipeline on an EmbeddedChannel: framing, dispatch, errors, flushing.
final class RequestHandlerTests: XCTestCase {
    var directory: String!
    var store: LMDBStore!
    var pool: BlockingPool!
    var channel: EmbeddedChannel!

    // Synchronous, as the tests are: an EmbeddedEventLoop belongs to the thread that made it,
    // and an async setUp runs on another one than the test (NIO logs every use as API misuse).
    override func setUpWithError() throws {
        directory = "/tmp/authd-server-test-\(UUID().uuidString.prefix(8))"
        store = try LMDBStore(directory: directory)
        pool = BlockingPool(threads: 1)
        let directory = try Directory(store: store, hasher: PasswordHasher(parameters: .testing), hashingPool: pool)
        let methods = MethodTable(authorizer: Authorizer(store: store), directory: directory, jwt: JWTIssuer(directory: directory))
        channel = try connectedChannel(methods)
    }

    /// A connection's pipeline, as the daemon installs it, serving `methods`.
    private func connectedChannel(_ methods: MethodTable) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try UnixSocketServer.installHandlers(
            on: channel, methods: methods, peer: nil, logger: Logger(label: "test"), maximumFrameBytes: 1024)
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/unused")).wait()
        return channel
    }

    override func tearDownWithError() throws {
        _ = try? channel.finish()
        pool.shutdown()
        store.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func frame(_ request: Authd_V1_Request) throws -> ByteBuffer {
        let bytes: [UInt8] = try request.serializedBytes()
        var buffer = channel.allocator.buffer(capacity: bytes.count + 4)
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
        return buffer
    }

    /// The frames of `requests`, one after another, as one read.
    private func frames(_ requests: Authd_V1_Request...) throws -> ByteBuffer {
        var batch = channel.allocator.buffer(capacity: 256)
        for request in requests {
            var next = try frame(request)
            batch.writeBuffer(&next)
        }
        return batch
    }

    private func request(_ id: UInt64, _ method: String, body: Data = Data()) -> Authd_V1_Request {
        var request = Authd_V1_Request()
        request.id = id
        request.method = method
        request.body = body
        return request
    }

    /// Reads every response written so far, once the loop's turn has ended (answers are
    /// written then).
    private func responses(of channel: EmbeddedChannel? = nil) throws -> [Authd_V1_Response] {
        let channel = channel ?? self.channel!
        channel.embeddedEventLoop.run()
        var result: [Authd_V1_Response] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            while let length = buffer.readInteger(as: UInt32.self) {
                let body = try XCTUnwrap(buffer.readBytes(length: Int(length)))
                result.append(try Authd_V1_Response(serializedBytes: body))
            }
        }
        return result
    }

    func testPipelinedCallsInOneReadAreAnsweredInOneFlush() throws {
        try channel.writeInbound(
            frames(request(1, "authd.v1.Health/Check"), request(2, "authd.v1.Account/Get"), request(3, "authd.v1.Health/Check")))
        let answers = try responses()
        XCTAssertEqual(answers.map(\.id), [1, 2, 3])
        XCTAssertEqual(try Authd_V1_HealthCheckResponse(serializedBytes: answers[0].body).status, "pass")
        XCTAssertEqual(answers[1].error.type, "general_unauthorized_scope")
        XCTAssertEqual(answers[1].error.code, 401)
        XCTAssertFalse(answers[2].hasError)
    }

    func testTheAnswersToOneReadAreOneWrite() throws {
        var batch = channel.allocator.buffer(capacity: 256)
        for id in 1...5 {
            var next = try frame(request(UInt64(id), id == 3 ? "authd.v1.Nope/Nothing" : "authd.v1.Health/Check"))
            batch.writeBuffer(&next)
        }
        try channel.writeInbound(batch)
        channel.embeddedEventLoop.run()
        var written = 0
        var ids: [UInt64] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            written += 1
            while let length = buffer.readInteger(as: UInt32.self) {
                ids.append(try Authd_V1_Response(serializedBytes: buffer.readBytes(length: Int(length))!).id)
            }
        }
        XCTAssertEqual(written, 1, "five answers, failures included, in one buffer")
        XCTAssertEqual(ids, [1, 2, 3, 4, 5])
    }

    /// A batch's buffer is reused for the next batch's answers: while the transport still holds
    /// the first (here: written, not yet read), the second goes to a buffer of its own.
    func testAWrittenBatchIsNotOverwrittenByTheNext() throws {
        try channel.writeInbound(frames(request(1, "authd.v1.Health/Check"), request(2, "authd.v1.Nope/Nothing")))
        channel.embeddedEventLoop.run()
        try channel.writeInbound(frames(request(3, "authd.v1.Nope/Nothing"), request(4, "authd.v1.Health/Check")))
        channel.embeddedEventLoop.run()
        var batches: [[UInt64]] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            var ids: [UInt64] = []
            while let length = buffer.readInteger(as: UInt32.self) {
                ids.append(try Authd_V1_Response(serializedBytes: XCTUnwrap(buffer.readBytes(length: Int(length)))).id)
            }
            batches.append(ids)
        }
        XCTAssertEqual(batches, [[1, 2], [3, 4]])
        // And once both are read, the next batch is answered in full again.
        try channel.writeInbound(frames(request(5, "authd.v1.Health/Check")))
        XCTAssertEqual(try responses().map(\.id), [5])
    }

    func testAnswersAreWrittenAtTheEndOfTheLoopsTurn() throws {
        try channel.writeInbound(try frame(request(1, "authd.v1.Health/Check")))
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "not while the loop is still reading")
        XCTAssertEqual(try responses().map(\.id), [1])
    }

    func testTheConnectionsOfOneLoopAreFlushedTogether() throws {
        let loop = channel.embeddedEventLoop
        let directory = try Directory(store: store, hasher: PasswordHasher(parameters: .testing), hashingPool: pool)
        let methods = MethodTable(authorizer: Authorizer(store: store), directory: directory, jwt: JWTIssuer(directory: directory))
        let shared = PerLoop(group: loop) { LoopShared(eventLoop: $0, authorizer: methods.authorizer) }
        let channels = [EmbeddedChannel(loop: loop), EmbeddedChannel(loop: loop)]
        for (index, other) in channels.enumerated() {
            try UnixSocketServer.installHandlers(
                on: other, methods: methods, peer: nil, logger: Logger(label: "test"), maximumFrameBytes: 1024,
                shared: shared)
            try other.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/unused")).wait()
            try other.writeInbound(try frame(request(UInt64(index + 1), "authd.v1.Health/Check")))
        }
        XCTAssertTrue(try channels.allSatisfy { try $0.readOutbound(as: ByteBuffer.self) == nil })
        loop.run()
        for (index, other) in channels.enumerated() {
            var buffer = try XCTUnwrap(try other.readOutbound(as: ByteBuffer.self))
            let length = try XCTUnwrap(buffer.readInteger(as: UInt32.self))
            XCTAssertEqual(try Authd_V1_Response(serializedBytes: buffer.readBytes(length: Int(length))!).id, UInt64(index + 1))
            XCTAssertNil(try other.readOutbound(as: ByteBuffer.self))
            _ = try other.finish()
        }
    }

    func testTheCallsOfOneReadShareOneReadingOfTheClock() throws {
        let clock = CountingClock()
        let directory = try Directory(store: store, hasher: PasswordHasher(parameters: .testing), hashingPool: pool)
        let methods = MethodTable(
            authorizer: Authorizer(store: store, clock: clock), directory: directory, jwt: JWTIssuer(directory: directory))
        let other = EmbeddedChannel()
        try UnixSocketServer.installHandlers(on: other, methods: methods, peer: nil, logger: Logger(label: "test"))
        var batch = try frame(request(1, "authd.v1.Health/Check"))
        for id in 2...4 {
            var next = try frame(request(UInt64(id), "authd.v1.Health/Check"))
            batch.writeBuffer(&next)
        }
        let readsBefore = clock.reads.load(ordering: .relaxed)
        try other.writeInbound(batch)
        other.embeddedEventLoop.run()
        XCTAssertEqual(clock.reads.load(ordering: .relaxed) - readsBefore, 1, "four calls, one read of the clock")
        XCTAssertNotNil(try other.readOutbound(as: ByteBuffer.self))
        _ = try other.finish()
    }

    func testAFrameSplitOverManyReadsIsReassembled() throws {
        var whole = try frame(request(9, "authd.v1.Health/Check", body: Data(repeating: 0, count: 0)))
        var second = try frame(request(10, "authd.v1.Health/Check"))
        whole.writeBuffer(&second)
        while whole.readableBytes > 0 {
            try channel.writeInbound(whole.readSlice(length: min(2, whole.readableBytes))!)
        }
        XCTAssertEqual(try responses().map(\.id), [9, 10])
    }

    func testCallsBeforeAnOversizeFrameAreAnsweredBeforeTheRefusal() throws {
        var batch = try frame(request(1, "authd.v1.Health/Check"))
        batch.writeInteger(UInt32(5000))
        batch.writeBytes([1, 2, 3])
        try channel.writeInbound(batch)
        let answers = try responses()
        XCTAssertEqual(answers.map(\.id), [1, 0])
        XCTAssertFalse(answers[0].hasError)
        XCTAssertEqual(answers[1].error.type, "general_argument_invalid")
        XCTAssertFalse(channel.isActive)
    }

    func testAFrameSplitAcrossReadsIsReassembled() throws {
        var whole = try frame(request(5, "authd.v1.Health/Check"))
        let head = whole.readSlice(length: 3)!
        try channel.writeInbound(head)
        XCTAssertEqual(try responses().count, 0)
        try channel.writeInbound(whole)
        XCTAssertEqual(try responses().map(\.id), [5])
    }

    func testUnknownMethodAndBadBodiesKeepTheConnection() throws {
        try channel.writeInbound(try frame(request(1, "authd.v1.Nope/Nothing")))
        try channel.writeInbound(try frame(request(2, "authd.v1.Account/Create", body: Data([0x0a, 0x05, 0x61]))))
        var garbage = channel.allocator.buffer(capacity: 8)
        garbage.writeInteger(UInt32(2))
        garbage.writeBytes([0xff, 0xff])
        try channel.writeInbound(garbage)
        try channel.writeInbound(try frame(request(4, "authd.v1.Health/Check")))
        let answers = try responses()
        XCTAssertEqual(answers.map(\.id), [1, 2, 0, 4])
        XCTAssertEqual(answers[0].error.type, "general_route_not_found")
        XCTAssertEqual(answers[1].error.type, "general_argument_invalid")
        XCTAssertEqual(answers[2].error.type, "general_argument_invalid")
        XCTAssertFalse(answers[3].hasError)
        XCTAssertTrue(channel.isActive)
    }

    func testOversizeFrameIsRefusedAndTheConnectionClosed() throws {
        var header = channel.allocator.buffer(capacity: 4)
        header.writeInteger(UInt32(1025))
        try channel.writeInbound(header)
        let answers = try responses()
        XCTAssertEqual(answers.count, 1)
        XCTAssertEqual(answers.first?.error.type, "general_argument_invalid")
        XCTAssertEqual(answers.first?.error.code, 400)
        XCTAssertFalse(channel.isActive)
    }

    /// A lending endpoint answers once, with what it lent first, whatever it does after: lends
    /// again, or throws. An endpoint that throws before lending is answered with its error.
    func testALendingEndpointAnswersOnce() throws {
        func lending(_ name: String, _ run: @escaping Endpoint.Lending) -> (String, MethodTable.Entry) {
            ("authd.v1.Test/\(name)", MethodTable.Entry(name: "authd.v1.Test/\(name)", scopes: [Scope.public], endpoint: .immediateLending(run)))
        }
        let entries = Dictionary(uniqueKeysWithValues: [
            lending("Twice") { _, _, answer in
                answer([0x0A, 0x01, 0x61])
                answer([0x0A, 0x01, 0x62])
            },
            lending("ThenThrows") { _, _, answer in
                answer([0x0A, 0x01, 0x63])
                throw AuthdError.argumentInvalid("after the answer")
            },
            lending("Throws") { _, _, _ in throw AuthdError.argumentInvalid("before any answer") },
        ])
        let channel = try connectedChannel(MethodTable(authorizer: Authorizer(store: store), entries: entries))
        defer { _ = try? channel.finish() }
        try channel.writeInbound(
            frames(request(1, "authd.v1.Test/Twice"), request(2, "authd.v1.Test/ThenThrows"), request(3, "authd.v1.Test/Throws")))
        let answers = try responses(of: channel)
        XCTAssertEqual(answers.map(\.id), [1, 2, 3], "one answer per call")
        XCTAssertEqual(Array(answers[0].body), [0x0A, 0x01, 0x61], "the first lent bytes")
        XCTAssertEqual(Array(answers[1].body), [0x0A, 0x01, 0x63])
        XCTAssertFalse(answers[1].hasError)
        XCTAssertEqual(answers[2].error.type, "general_argument_invalid")
    }

    func testResponseFramesDecodeWithSwiftProtobuf() throws {
        let body: [UInt8] = Array(repeating: 7, count: 300)
        var buffer = channel.allocator.buffer(capacity: 512)
        ResponseEncoding.writeSuccess(id: 1 << 40, body: body, into: &buffer)
        let length = try XCTUnwrap(buffer.readInteger(as: UInt32.self))
        XCTAssertEqual(Int(length), buffer.readableBytes)
        let decoded = try Authd_V1_Response(serializedBytes: buffer.readBytes(length: Int(length))!)
        XCTAssertEqual(decoded.id, 1 << 40)
        XCTAssertEqual([UInt8](decoded.body), body)
        XCTAssertFalse(decoded.hasError)
    }

    /// Ids and body lengths on each side of a varint's byte boundaries, and the zero id and
    /// empty body that the encoding leaves out, as protobuf does for defaults.
    func testResponseFramesAtVarintBoundariesDecodeWithSwiftProtobuf() throws {
        let ids: [UInt64] = [0, 1, 127, 128, 16_383, 16_384, UInt64(UInt32.max), 1 << 63 - 1, .max]
        let lengths = [0, 1, 127, 128, 16_383, 16_384, 70_000]
        for id in ids {
            for length in lengths {
                let body = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31) }
                var buffer = channel.allocator.buffer(capacity: 16)
                ResponseEncoding.writeSuccess(id: id, body: body, into: &buffer)
                let frameLength = try XCTUnwrap(buffer.readInteger(as: UInt32.self))
                XCTAssertEqual(Int(frameLength), buffer.readableBytes, "id \(id), body of \(length)")
                let bytes = buffer.readBytes(length: Int(frameLength))!
                let decoded = try Authd_V1_Response(serializedBytes: bytes)
                XCTAssertEqual(decoded.id, id)
                XCTAssertEqual([UInt8](decoded.body), body, "id \(id), body of \(length)")
                XCTAssertFalse(decoded.hasError)
                XCTAssertEqual(bytes, try decoded.serializedBytes(), "the bytes swift-protobuf writes for it")
            }
        }
    }
}

/// The system's time, counting how often it is read.
final class CountingClock: WallClock {
    let reads = Atomic<Int>(0)

    func now() -> Int64 {
        reads.add(1, ordering: .relaxed)
        return SystemWallClock().now()
    }
}
