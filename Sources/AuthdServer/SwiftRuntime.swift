import Glibc

/// Process-wide switches of the Swift runtime.
enum SwiftRuntime {
    /// In release builds, turns the runtime's exclusivity checks off for the whole process.
    ///
    /// Why: the daemon's own modules are already compiled without them in release builds
    /// (`-enforce-exclusivity=unchecked`, Package.swift), but the generated protobuf code
    /// (AuthdProto, a library product that cannot carry that flag) and its library still check
    /// every access to a message's storage, and each check looked up a thread-local through
    /// `__tls_get_addr`: 22 % of the daemon's samples on `Users/Get` (perf, issue 5). The
    /// runtime's own switch, `_swift_disableExclusivityChecking`, makes `swift_beginAccess`
    /// return before any of that. Debug builds, which the tests run, keep every check, so a
    /// conflicting access is still caught there.
    ///
    /// Returns whether the checks are off.
    @discardableResult
    static func skipExclusivityChecksInRelease() -> Bool {
        #if DEBUG
        return false
        #else
        guard let exclusivitySwitch else { return false }
        exclusivitySwitch.pointee = true
        return true
        #endif
    }

    /// The runtime's switch, found with `dlsym` so that a runtime without it only keeps its
    /// checks.
    static var exclusivitySwitch: UnsafeMutablePointer<Bool>? {
        // A null handle is RTLD_DEFAULT: every object loaded, libswiftCore among them.
        dlsym(nil, "_swift_disableExclusivityChecking")?.assumingMemoryBound(to: Bool.self)
    }
}
