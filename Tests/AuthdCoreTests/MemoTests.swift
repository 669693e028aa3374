@testable import AuthdCore
import Foundation
import Synchronization
import XCTest

/// The lock-free memo: made once, read by every thread as the one published value, released
/// with its owner.
final class MemoTests: XCTestCase {
    final class Value: Sendable {
        let number: Int
        let ended: (@Sendable () -> Void)?
        init(_ number: Int, ended: (@Sendable () -> Void)? = nil) {
            self.number = number
            self.ended = ended
        }
        deinit { ended?() }
    }

    final class Owner: Sendable {
        let memo = Memo<Value>()
    }

    func testTheFirstValueMadeIsTheOnlyOneSeen() {
        let owner = Owner()
        XCTAssertEqual(owner.memo.withValue(orMake: { Value(1) }) { $0.number }, 1)
        XCTAssertEqual(owner.memo.withValue(orMake: { XCTFail("made again"); return Value(2) }) { $0.number }, 1)
    }

    /// Threads racing to make the value all end up with the one that was published first;
    /// the values of the threads that lost are released, and the winner with its owner.
    func testRacingThreadsAgreeOnOneValue() {
        for _ in 0..<50 {
            let made = Atomic<Int>(0)
            let ended = Atomic<Int>(0)
            do {
                let owner = Owner()
                let seen = Mutex<Set<Int>>([])
                DispatchQueue.concurrentPerform(iterations: 8) { thread in
                    let number = owner.memo.withValue(orMake: {
                        made.add(1, ordering: .relaxed)
                        return Value(thread) { ended.add(1, ordering: .relaxed) }
                    }) { $0.number }
                    seen.withLock { _ = $0.insert(number) }
                }
                XCTAssertEqual(seen.withLock { $0.count }, 1, "one value for every thread")
                XCTAssertEqual(ended.load(ordering: .relaxed), made.load(ordering: .relaxed) - 1, "only the published one is kept")
            }
            XCTAssertEqual(ended.load(ordering: .relaxed), made.load(ordering: .relaxed), "and it ends with its owner")
        }
    }

    /// The published value lives as long as its memo, and no longer.
    func testTheValueIsReleasedWithItsOwner() {
        weak var published: Value?
        do {
            let owner = Owner()
            owner.memo.withValue(orMake: { Value(1) }) { published = $0 }
            XCTAssertNotNil(published, "kept while the owner lives")
        }
        XCTAssertNil(published, "released with the owner")
    }
}
