import XCTest

@testable import AuthdServer

final class SwiftRuntimeTests: XCTestCase {
    func testTheRuntimeHasTheSwitchAndDebugBuildsKeepTheirChecks() throws {
        // Without the switch, release builds would quietly pay for the checks again.
        let exclusivitySwitch = try XCTUnwrap(SwiftRuntime.exclusivitySwitch, "this Swift runtime has no exclusivity switch")
        #if DEBUG
        XCTAssertFalse(SwiftRuntime.skipExclusivityChecksInRelease())
        XCTAssertFalse(exclusivitySwitch.pointee, "the tests run with every check")
        #endif
    }
}
