@testable import AuthdClient
import AuthdProto
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import XCTest

/// The client's pipeline handler on an EmbeddedChannel: ids, matching, batching, failures.
final class ResponseDispatcherTests: XCTestCase {
    var loop: EmbeddedEventLoop!
    var channel: EmbeddedChannel!
    var dispatcher: ResponseDispatcher!

    // Synchronous, as the tests are: an EmbeddedEventLoop belongs to the thread that made it.
    override func setUpWithError() throws {
        loop = EmbeddedEventLoop()
        channel = EmbeddedChannel(loop: loop)
        dispatcher = ResponseDispatcher(logger: Logger(label: "test"))
        try channel.pipeline.syncOperations.addHandler(dispatcher)
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/unused")).wait()
    }

    private func sentRequests() throws -> [Authd_V1_Request] {
        var result: [Authd_V1_Request] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            let length = try XCTUnwrap(buffer.readInteger(as: UInt32.self))
            result.append(try Authd_V1_Request(serializedBytes: buffer.readBytes(length: Int(length))!))
        }
        return result
    }

    private func respond(_ response: Authd_V1_Response) throws {
        let bytes: [UInt8] = try response.serializedBytes()
        try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
    }

    func testCallsGetDistinctIdsShareAFlushAndMatchAnswersInAnyOrder() throws {
        let first = loop.makePromise(of: Data.self)
        let second = loop.makePromise(of: Data.self)
        var request = Authd_V1_Request()
        request.method = "authd.v1.Health/Check"
        dispatcher.send(request, promise: first)
        dispatcher.send(request, promise: second)
        XCTAssertEqual(try sentRequests().count, 0, "nothing flushed until the loop runs")
        loop.run()
        let sent = try sentRequests()
        XCTAssertEqual(sent.map(\.id), [1, 2])

        var answerTwo = Authd_V1_Response()
        answerTwo.id = 2
        answerTwo.body = Data([2])
        var answerOne = Authd_V1_Response()
        answerOne.id = 1
        answerOne.error.type = "user_invalid_credentials"
        answerOne.error.code = 401
        answerOne.error.message = "Invalid credentials."
        try respond(answerTwo)
        try respond(answerOne)
        XCTAssertEqual(try second.futureResult.wait(), Data([2]))
        XCTAssertThrowsError(try first.futureResult.wait()) { error in
            XCTAssertEqual(error as? AuthdClientError, AuthdClientError(type: "user_invalid_credentials", code: 401, message: "Invalid credentials."))
        }
    }

    func testCallsWaitingWhenTheConnectionClosesFailAsConnectionClosed() throws {
        let waiting = loop.makePromise(of: Data.self)
        dispatcher.send(Authd_V1_Request(), promise: waiting)
        loop.run()
        try channel.close().wait()
        XCTAssertThrowsError(try waiting.futureResult.wait()) { error in
            XCTAssertEqual((error as? AuthdClientError)?.type, "client_connection_closed")
        }
        let late = loop.makePromise(of: Data.self)
        dispatcher.send(Authd_V1_Request(), promise: late)
        XCTAssertThrowsError(try late.futureResult.wait()) { error in
            XCTAssertEqual((error as? AuthdClientError)?.type, "client_connection_closed")
        }
    }

    func testAnUnreadableAnswerFailsTheCallsAndClosesTheConnection() throws {
        let waiting = loop.makePromise(of: Data.self)
        dispatcher.send(Authd_V1_Request(), promise: waiting)
        loop.run()
        try channel.writeInbound(channel.allocator.buffer(bytes: [0x0a, 0x7f]))
        XCTAssertThrowsError(try waiting.futureResult.wait()) { error in
            XCTAssertEqual((error as? AuthdClientError)?.type, "client_protocol_error")
        }
        XCTAssertFalse(channel.isActive)
    }
}
