import AuthdEventLoops
import Foundation
import NIOCore
import NIOPosix
import XCTest

/// A task that prefers the executor runs on its loop, before and after it waits.
final class EventLoopTaskExecutorTests: XCTestCase {
    func testATaskStartsAndResumesOnItsLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let executor = EventLoopTaskExecutor(loop)
        let seen = await Task(executorPreference: executor) { () async -> [Bool] in
            var onLoop = [loop.inEventLoop]
            // Resumed from a thread of its own, as the writer thread resumes a write's caller.
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                Thread { continuation.resume() }.start()
            }
            onLoop.append(loop.inEventLoop)
            return onLoop
        }.value
        XCTAssertEqual(seen, [true, true])
        try await group.shutdownGracefully()
    }

    func testManyTasksAllFinish() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let executor = EventLoopTaskExecutor(group.next())
        let total = await withTaskGroup(of: Int.self) { tasks in
            for index in 0..<1000 {
                tasks.addTask(executorPreference: executor) {
                    await Task.yield()
                    return index
                }
            }
            return await tasks.reduce(0, +)
        }
        XCTAssertEqual(total, 999 * 1000 / 2)
        try await group.shutdownGracefully()
    }
}
