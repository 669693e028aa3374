import XCTest

@testable import AuthdCore

final class InsertionOrderTests: XCTestCase {
    /// A cache that still holds every key.
    private let everyKey = Dictionary(uniqueKeysWithValues: (0..<1000).map { ($0, ()) })

    func testKeysComeOutOldestFirstOnce() {
        var order = InsertionOrder<Int>()
        for key in 1...3 { order.append(key, capacity: 10, heldIn: everyKey) }
        XCTAssertEqual(order.popOldest(), 1)
        XCTAssertEqual(order.popOldest(), 2)
        order.append(4, capacity: 10, heldIn: everyKey)
        XCTAssertEqual(order.popOldest(), 3)
        XCTAssertEqual(order.popOldest(), 4)
        XCTAssertNil(order.popOldest(), "every key was handed out")
        order.append(5, capacity: 10, heldIn: everyKey)
        order.removeAll()
        XCTAssertNil(order.popOldest())
    }

    func testDroppedKeysDoNotPileUp() {
        // A cache of 4 whose keys a commit drops soon after they are added (all but two): the
        // order keeps only what is still held, in the order it was added.
        var order = InsertionOrder<Int>()
        let held: Set<Int> = [7, 300]
        var entries: [Int: Void] = [7: (), 300: ()]
        for key in 0..<1000 {
            entries[key] = ()
            order.append(key, capacity: 4, heldIn: entries)
            if !held.contains(key) { entries[key] = nil }
            XCTAssertLessThanOrEqual(order.count, 2 * 4 + 64 + 1)
        }
        var remaining: [Int] = []
        while let key = order.popOldest() { remaining.append(key) }
        XCTAssertEqual(remaining.filter(held.contains), [7, 300], "held keys survive compaction, in order")
        XCTAssertEqual(remaining.last, 999)
    }

    func testHandedOutKeysAreForgotten() {
        // A full cache that pops one key per insert: what was handed out is let go of.
        var order = InsertionOrder<Int>()
        for key in 0..<1000 {
            order.append(key, capacity: 8, heldIn: everyKey)
            if key >= 8 { _ = order.popOldest() }
        }
        XCTAssertEqual(order.count, 8)
        XCTAssertEqual(order.popOldest(), 992)
    }
}
