@testable import AuthdClient
import AuthdProto
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Synchronization
import XCTest

/// The client's calls through its outbox and pipeline handler, on a testing channel: ids,
/// shared writes, matching, failures. The testing loop runs a task as soon as it is handed one;
/// a test that needs calls to wait in the outbox keeps the loop busy behind a semaphore.
final class ResponseDispatcherTests: XCTestCase {
    private struct Connected: Sendable {
        let client: AuthdClient
        let channel: NIOAsyncTestingChannel
        let outbox: Outbox
    }

    private func connected() async throws -> Connected {
        let outbox = Outbox(allocator: ByteBufferAllocator())
        let channel = try await NIOAsyncTestingChannel { channel in
            try channel.pipeline.syncOperations.addHandler(ResponseDispatcher(outbox: outbox, logger: Logger(label: "test")))
        }
        try await channel.connect(to: SocketAddress(unixDomainSocketPath: "/tmp/unused")).get()
        let dispatcher = try await channel.testingEventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: ResponseDispatcher.self), eventLoop: channel.eventLoop)
        }.get()
        return Connected(client: AuthdClient(channel: channel, dispatcher: dispatcher, outbox: outbox), channel: channel, outbox: outbox)
    }

    /// Waits (at most 5 s) until `count` calls sit in the outbox: a call's task posts it soon
    /// after it starts, on a thread of the pool.
    private func waitForOutbox(_ outbox: Outbox, count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while outbox.waitingCount < count {
            guard ContinuousClock.now < deadline else { return XCTFail("\(count) calls never reached the outbox") }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    private func requests(in write: ByteBuffer) throws -> [Authd_V1_Request] {
        var buffer = write
        var result: [Authd_V1_Request] = []
        while let length = buffer.readInteger(as: UInt32.self) {
            result.append(try Authd_V1_Request(serializedBytes: try XCTUnwrap(buffer.readBytes(length: Int(length)))))
        }
        return result
    }

    private func respond(_ response: Authd_V1_Response, on channel: NIOAsyncTestingChannel) async throws {
        let bytes: [UInt8] = try response.serializedBytes()
        try await channel.writeInbound(channel.allocator.buffer(bytes: bytes))
    }

    /// The call's outcome, or nil if it has none within 5 s (a call nobody resumes would
    /// otherwise hang the test).
    private func outcome(of call: Task<Data, any Error>) async throws -> Result<Data, any Error>? {
        let box = Mutex<Result<Data, any Error>?>(nil)
        Task { let result = await call.result; box.withLock { $0 = result } }
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if let result = box.withLock({ $0 }) { return result }
            try await Task.sleep(for: .milliseconds(1))
        }
        return nil
    }

    private func assertFails(_ call: Task<Data, any Error>, as type: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        switch try await outcome(of: call) {
        case nil: XCTFail("the call never ended", file: file, line: line)
        case .success: XCTFail("the call succeeded", file: file, line: line)
        case .failure(let error): XCTAssertEqual((error as? AuthdClientError)?.type, type, file: file, line: line)
        }
    }

    func testCallsMadeTogetherGetDistinctIdsShareOneWriteAndMatchAnswersInAnyOrder() async throws {
        let c = try await connected()
        var health = Authd_V1_Request()
        health.method = "authd.v1.Health/Check"
        let request = health
        // Nothing that needs the loop may be awaited until the gate opens.
        let gate = DispatchSemaphore(value: 0)
        c.channel.testingEventLoop.execute { gate.wait() }
        let first = Task { try await c.client.send(request) }
        try await waitForOutbox(c.outbox, count: 1)
        let second = Task { try await c.client.send(request) }
        try await waitForOutbox(c.outbox, count: 2)
        gate.signal()
        let sent = try requests(in: try await c.channel.waitForOutboundWrite(as: ByteBuffer.self))
        XCTAssertEqual(sent.map(\.id), [1, 2])
        XCTAssertEqual(sent.map(\.method), [request.method, request.method])
        let another = try await c.channel.readOutbound(as: ByteBuffer.self)
        XCTAssertNil(another, "both calls left in one write")
        XCTAssertEqual(c.outbox.waitingCount, 0)

        var answerTwo = Authd_V1_Response()
        answerTwo.id = 2
        answerTwo.body = Data([2])
        var answerOne = Authd_V1_Response()
        answerOne.id = 1
        answerOne.error.type = "user_invalid_credentials"
        answerOne.error.code = 401
        answerOne.error.message = "Invalid credentials."
        try await respond(answerTwo, on: c.channel)
        try await respond(answerOne, on: c.channel)
        let secondOutcome = try await outcome(of: second)
        let secondBody = try XCTUnwrap(secondOutcome).get()
        XCTAssertEqual(secondBody, Data([2]))
        switch try await outcome(of: first) {
        case .failure(let error):
            XCTAssertEqual(
                error as? AuthdClientError,
                AuthdClientError(type: "user_invalid_credentials", code: 401, message: "Invalid credentials."))
        case let other: XCTFail("the first call ended with \(String(describing: other))")
        }
    }

    func testCallsWaitingOrStillInTheOutboxWhenTheConnectionClosesFailAsConnectionClosed() async throws {
        let c = try await connected()
        let sent = Task { try await c.client.send(Authd_V1_Request()) }
        _ = try await c.channel.waitForOutboundWrite(as: ByteBuffer.self)
        // The loop closes the channel before it gets to the drain that this call schedules.
        let gate = DispatchSemaphore(value: 0)
        c.channel.testingEventLoop.execute {
            gate.wait()
            c.channel.close(promise: nil)
        }
        let stranded = Task { try await c.client.send(Authd_V1_Request()) }
        try await waitForOutbox(c.outbox, count: 1)
        gate.signal()
        try await assertFails(sent, as: "client_connection_closed")
        try await assertFails(stranded, as: "client_connection_closed")
        XCTAssertEqual(c.outbox.waitingCount, 0)
        try await assertFails(Task { try await c.client.send(Authd_V1_Request()) }, as: "client_connection_closed")
        await c.channel.testingEventLoop.run()
        let late = try await c.channel.readOutbound(as: ByteBuffer.self)
        XCTAssertNil(late, "nothing is written after the close")
    }

    func testAnUnreadableAnswerFailsTheCallsAndClosesTheConnection() async throws {
        let c = try await connected()
        let waiting = Task { try await c.client.send(Authd_V1_Request()) }
        _ = try await c.channel.waitForOutboundWrite(as: ByteBuffer.self)
        try await c.channel.writeInbound(c.channel.allocator.buffer(bytes: [0x0a, 0x7f]))
        try await assertFails(waiting, as: "client_protocol_error")
        let active = try await c.channel.testingEventLoop.submit { c.channel.isActive }.get()
        XCTAssertFalse(active)
    }
}
