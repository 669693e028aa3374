import AuthdStore
import XCTest

final class PowerOfTwoTests: XCTestCase {
    func testTheSmallestPowerOfTwoAtOrAboveTheCountAndTheMinimum() {
        XCTAssertEqual([0, 1, 2, 3, 5, 8, 9, 4096, 4097].map { Int.powerOfTwo(atLeast: $0) }, [1, 1, 2, 4, 8, 8, 16, 4096, 8192])
        XCTAssertEqual([0, 63, 64, 65, 6_250].map { Int.powerOfTwo(atLeast: $0, minimum: 64) }, [64, 64, 64, 128, 8192])
    }
}
