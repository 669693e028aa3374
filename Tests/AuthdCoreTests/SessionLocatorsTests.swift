import AuthdStore
import Foundation
import Synchronization
import XCTest

@testable import AuthdCore

final class SessionLocatorsTests: XCTestCase {
    private let millisecond: Int64 = 1_800_000_000_000_000

    func testWithinAMillisecondTheyCountUpByAMicrosecond() {
        let locators = SessionLocators()
        XCTAssertEqual(locators.next(nowMicroseconds: millisecond), UInt64(millisecond))
        XCTAssertEqual(locators.next(nowMicroseconds: millisecond), UInt64(millisecond) + 1)
        XCTAssertEqual(locators.next(nowMicroseconds: millisecond), UInt64(millisecond) + 2)
        XCTAssertEqual(locators.next(nowMicroseconds: millisecond + 1000), UInt64(millisecond + 1000), "the clock again")
        XCTAssertEqual(SessionLocators().next(nowMicroseconds: 0), 1, "never 0: that is a secret without a locator")
    }

    func testAClockThatStepsBackDoesNotTurnThemBack() {
        let locators = SessionLocators()
        XCTAssertEqual(locators.next(nowMicroseconds: millisecond), UInt64(millisecond))
        XCTAssertEqual(locators.next(nowMicroseconds: millisecond - 5_000_000), UInt64(millisecond) + 1)
        XCTAssertEqual(locators.next(nowMicroseconds: millisecond + 1), UInt64(millisecond) + 2, "ahead until the clock catches up")
        XCTAssertEqual(locators.next(nowMicroseconds: millisecond + 1000), UInt64(millisecond + 1000))
    }

    func testThreadsAskingAtOnceEachGetTheirOwnInTheOrderTheyAsked() {
        let locators = SessionLocators()
        let threads = 4
        let each = 20_000
        let handedOut = Mutex<[[UInt64]]>([])
        let millisecond = millisecond
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            var mine: [UInt64] = []
            mine.reserveCapacity(each)
            for _ in 0..<each { mine.append(locators.next(nowMicroseconds: millisecond)) }
            handedOut.withLock { $0.append(mine) }
        }
        let all = handedOut.withLock { $0 }
        XCTAssertEqual(all.count, threads)
        for mine in all { XCTAssertEqual(mine, mine.sorted(), "one thread's locators grow") }
        XCTAssertEqual(Set(all.joined()).count, threads * each, "no locator handed out twice")
        XCTAssertEqual(all.joined().max(), UInt64(millisecond) + UInt64(threads * each) - 1, "no gaps either")
    }
}

/// Sessions made in one millisecond, through the domain, against the real store.
final class SessionLocatorOrderTests: DomainTestCase {
    func testSessionsOfOneMillisecondGetGrowingLocatorsAndEachSecretStillFindsItsSession() async throws {
        _ = try await users.create(userID: "ann", email: "ann@example.com", phone: nil, password: nil, name: nil, call: server)
        var made: [SessionView] = []
        // The clock stands still: every session is made in the same millisecond.
        for _ in 0..<3 { made.append(try await users.createSession(userID: "ann", call: server)) }
        let locators = made.map(\.record.secretLocator)
        XCTAssertEqual(locators.first, UInt64(clock.now()) * 1000)
        XCTAssertEqual(locators, locators.sorted())
        XCTAssertEqual(Set(locators).count, locators.count, "one millisecond, three locators")
        for session in made {
            let secret = session.secret
            XCTAssertFalse(secret.isEmpty)
            XCTAssertEqual(SecretToken.digest(secret).locator, session.record.secretLocator, "the secret carries its locator")
            let found = try store.read { try $0.session(secretHash: SecretToken.hash(secret), locator: session.record.secretLocator) }
            XCTAssertEqual(found?.id, session.record.id)
        }
    }
}
