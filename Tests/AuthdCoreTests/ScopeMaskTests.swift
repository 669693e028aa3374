@testable import AuthdCore
import XCTest

final class ScopeMaskTests: XCTestCase {
    func testMasksHoldExactlyTheirScopes() {
        XCTAssertEqual(ScopeMask(Scope.operatorScopes).names, Scope.operatorScopes.sorted())
        XCTAssertEqual(ScopeMask(["users.write", "no-such-scope", "account"]).names, ["account", "users.write"])
        XCTAssertTrue(ScopeMask.user.isDisjoint(with: ScopeMask([Scope.usersRead])))
        XCTAssertFalse(ScopeMask.impersonator.isDisjoint(with: ScopeMask([Scope.usersRead])))
        XCTAssertEqual(Caller.guest.scopeMask.names, Scope.guest.sorted())
    }
}
