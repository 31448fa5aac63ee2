// swift-tools-version:6.2
import PackageDescription

// Settings applied to every target of the package (language mode 6 comes with the tools version).
let strictness: [SwiftSetting] = [
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "dynsecret",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "dynsecret", targets: ["dynsecret"]),
        .library(name: "DynSecretCore", targets: ["DynSecretCore"]),
        .executable(name: "kube-emulator", targets: ["kube-emulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        // Pure domain: object model, manifests, registry credentials. No I/O, no C.
        .target(
            name: "DynSecretCore",
            dependencies: [.product(name: "Yams", package: "Yams")]
        ),
        // System OpenSSL 3; imported only by DynSecretCrypto.
        .systemLibrary(
            name: "CDynSecretOpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(name: "DynSecretCrypto", dependencies: ["CDynSecretOpenSSL", "DynSecretCore"]),
        // System libcurl; imported only by DynSecretKube's transport.
        .systemLibrary(
            name: "CDynSecretCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .target(
            name: "DynSecretKube",
            dependencies: [
                "DynSecretCore", "DynSecretCrypto", "CDynSecretCurl",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The in-cluster controller: work queue, reconciler, leader election, health and metrics endpoints.
        .target(
            name: "DynSecretController",
            dependencies: [
                "DynSecretCore", "DynSecretCrypto", "DynSecretKube",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The validating admission webhook: informer-backed state, HTTPS server (swift-nio-ssl), metrics (docs/admission.md).
        .target(
            name: "DynSecretAdmission",
            dependencies: [
                "DynSecretCore", "DynSecretCrypto", "DynSecretKube",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "DynSecretCLI",
            dependencies: [
                "DynSecretCore", "DynSecretCrypto", "DynSecretKube", "DynSecretController", "DynSecretAdmission",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "dynsecret", dependencies: ["DynSecretCLI"]),
        // Test and development Kubernetes API server (design §9); never a dependency of a production target.
        .target(
            name: "KubeEmulator",
            dependencies: [
                "DynSecretCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .executableTarget(
            name: "kube-emulator",
            dependencies: ["KubeEmulator", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "dynsecret-bench",
            dependencies: ["DynSecretCore", "DynSecretCrypto", "DynSecretKube", "KubeEmulator"],
            path: "Benchmarks/dynsecret-bench"
        ),

        .testTarget(
            name: "DynSecretCoreTests",
            dependencies: ["DynSecretCore"],
            resources: [.copy("Golden")]
        ),
        .testTarget(
            name: "DynSecretCryptoTests",
            dependencies: ["DynSecretCrypto", "DynSecretCore"],
            // Read from the source tree: the Python reference reader and the published vectors.
            exclude: ["ksr1_reference.py", "Vectors"]
        ),
        .testTarget(name: "DynSecretControllerTests", dependencies: ["DynSecretController", "DynSecretCore", "DynSecretKube", "KubeEmulator"]),
        .testTarget(
            name: "DynSecretKubeTests",
            dependencies: ["DynSecretKube", "DynSecretCore", "KubeEmulator"],
            // Peers/: the Python peers of the cloud credential tests (moto, metadata and token endpoint doubles).
            exclude: ["Peers"]
        ),
        .testTarget(name: "KubeEmulatorTests", dependencies: ["KubeEmulator", "DynSecretCore", "kube-emulator"]),
        .testTarget(
            name: "DynSecretCLITests",
            dependencies: ["DynSecretCLI", "DynSecretCore", "DynSecretKube", "KubeEmulator", "dynsecret"],
            // registry_token_server.py: the token server of the verify tests, run with python3 from the source tree.
            exclude: ["Corpus", "registry_token_server.py"]
        ),
    ]
)

for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + strictness
}
