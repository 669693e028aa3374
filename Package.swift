// swift-tools-version: 6.1
import PackageDescription

import class Foundation.ProcessInfo

// Versions are pinned exactly: only the versions in the machine's package mirror resolve.

// The daemon's own modules skip the runtime exclusivity checks in release builds: on the
// session-validation path they cost about a sixth of the daemon's CPU (perf, issue 5). Debug
// builds, which the tests use, keep them. Also set on authd-load. Not set on the library products (AuthdClient,
// AuthdProto), which other packages may depend on; in the daemon's process the runtime's own switch turns their
// checks off too (AuthdServer's SwiftRuntime, release builds only).
let daemonSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
let package = Package(
    name: "authd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "authd", targets: ["authd"]),
        .executable(name: "authd-load", targets: ["authd-load"]),
        .executable(name: "authctl", targets: ["authctl"]),
        .library(name: "AuthdClient", targets: ["AuthdClient"]),
        .library(name: "AuthdProto", targets: ["AuthdProto"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", exact: "1.35.2"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", exact: "4.5.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", exact: "0.2.0"),
    ],
    targets: [
        // Wire contract and stored record schemas: generated code only (scripts/gen-proto).
        .target(
            name: "AuthdProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CArgon2", pkgConfig: "libargon2", providers: [.apt(["libargon2-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // libxcrypt's crypt_r verifies imported bcrypt hashes; OpenSSL's EVP digests cover the
        // SHA-2 and SHA-3 variants swift-crypto lacks (SHA-224, SHA-512/224, SHA3-*).
        .systemLibrary(name: "CCrypt", pkgConfig: "libcrypt", providers: [.apt(["libcrypt-dev"])]),
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // ioprio_set(2), which neither glibc nor Swift's Glibc module offers.
        .target(name: "CIOPriority"),
        // ppoll(2), prctl(2) and pthread_setname_np for the load tool's open-loop caller, which Swift's Glibc hides.
        .target(name: "CCallerThread"),
        .target(
            name: "AuthdStore",
            dependencies: [
                "CLMDB", "CIOPriority", "AuthdProto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: daemonSettings
        ),
        .target(
            name: "AuthdCore",
            dependencies: [
                "AuthdStore", "CArgon2", "CCrypt", "CLibCrypto",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [],
            swiftSettings: daemonSettings
        ),
        // A task executor on an event loop, for the daemon's deferred calls and the client's callers.
        .target(
            name: "AuthdEventLoops",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(
            name: "AuthdServer",
            dependencies: [
                "AuthdCore", "AuthdStore", "AuthdProto", "AuthdEventLoops", "CSystemd",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: daemonSettings
        ),
        .target(
            name: "AuthdClient",
            dependencies: [
                "AuthdProto", "AuthdEventLoops",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "authd",
            dependencies: [
                "AuthdServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "authctl",
            dependencies: [
                "AuthdClient", "AuthdProto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "authd-load",
            dependencies: [
                "AuthdClient", "AuthdProto", "AuthdCore", "AuthdStore", "CCallerThread",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            // The load generator shares the machine with the daemon: what it spends is taken
            // from the figure it measures.
            swiftSettings: daemonSettings
        ),
        .testTarget(name: "AuthdStoreTests", dependencies: ["AuthdStore", "AuthdProto"]),
        .testTarget(
            name: "AuthdCoreTests", dependencies: ["AuthdCore", "AuthdStore"],
            exclude: ["Vectors/make_argon2_vectors.py", "Vectors/make_import_vectors.py"]
        ),
        .testTarget(
            name: "AuthdServerTests",
            dependencies: [
                "AuthdServer", "AuthdProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "AuthdClientTests", dependencies: ["AuthdClient"]),
        .testTarget(
            name: "AuthdEventLoopsTests",
            dependencies: [
                "AuthdEventLoops",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "AuthdClient", "AuthdProto", "AuthdStore", "authd", "authctl", "authd-load",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            exclude: ["Scripts/verify_jwt.py"]
        ),
    ]
)

// The benchmarks (ordo-one/benchmark) join the package only when asked for, so that everyday
// builds and tests do not compile the benchmark package: `scripts/bench` sets AUTHD_BENCHMARKS.
if ProcessInfo.processInfo.environment["AUTHD_BENCHMARKS"] != nil {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]))
    package.targets += [
        .executableTarget(
            name: "Allocations",
            dependencies: [
                "AuthdServer", "AuthdCore", "AuthdStore", "AuthdProto",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Allocations",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "Floors",
            dependencies: [
                "AuthdCore", "AuthdStore", "CLMDB",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/Floors",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
}
