// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "coffre",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "coffre", targets: ["coffre"]),
        .executable(name: "coffre-agent", targets: ["coffre-agent"]),
        .library(name: "CoffreCore", targets: ["CoffreCore"]),
        .library(name: "CoffreSystem", targets: ["CoffreSystem"]),
        .library(name: "CoffreStorage", targets: ["CoffreStorage"]),
        .library(name: "CoffreS3", targets: ["CoffreS3"]),
        .library(name: "CoffreSQLite", targets: ["CoffreSQLite"]),
        .library(name: "CoffrePostgres", targets: ["CoffrePostgres"]),
        .library(name: "CoffreLocalFabric", targets: ["CoffreLocalFabric"]),
        .library(name: "CoffreExtension", targets: ["CoffreExtension"]),
        .library(name: "CoffreEngine", targets: ["CoffreEngine"]),
        .library(name: "CoffreTesting", targets: ["CoffreTesting"]),
        .library(name: "CoffreServer", targets: ["CoffreServer"]),
        .library(name: "CoffreNBD", targets: ["CoffreNBD"]),
        .library(name: "CoffreMount", targets: ["CoffreMount"]),
        .library(name: "CoffreLibvirt", targets: ["CoffreLibvirt"]),
    ],
    traits: [
        // The libvirt/QEMU fabric links libvirt (Debian's libvirt-dev to build, libvirt0 to run):
        // off by default so that a vault for folders of disk images needs no libvirt.
        // `swift build --traits Libvirt`; every file of CoffreLibvirt is inside `#if Libvirt`.
        .trait(name: "Libvirt", description: "The libvirt/QEMU fabric (needs libvirt-dev)"),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .target(name: "CShims"),
        // Records the commit being built before every build, for `--version` (BuildInfo).
        .plugin(name: "BuildCommit", capability: .buildTool()),
        // libfuse 3 for mounts of points (Debian's libfuse3-dev to build, libfuse3-3 and fuse3 to run).
        .systemLibrary(
            name: "CFuse",
            pkgConfig: "fuse3",
            providers: [.apt(["libfuse3-dev"])]
        ),
        // libvirt's headers (libvirt-dev); the library itself is opened at run time (lazy.c).
        .target(name: "CLibvirt"),
        .target(name: "CoffreCore", swiftSettings: swiftSettings),
        .target(name: "CoffreSystem", dependencies: ["CoffreCore", "CShims"], swiftSettings: swiftSettings,
                plugins: ["BuildCommit"]),
        .target(
            name: "CoffreStorage",
            dependencies: [
                "CoffreCore", "CoffreSystem", "CZstd",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CoffreS3",
            dependencies: [
                "CoffreCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CoffreSQLite",
            dependencies: ["CoffreCore", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CoffrePostgres",
            dependencies: [
                "CoffreCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "CoffreLocalFabric", dependencies: ["CoffreCore", "CoffreSystem"], swiftSettings: swiftSettings),
        .target(name: "CoffreExtension", dependencies: ["CoffreCore", "CoffreSystem"], swiftSettings: swiftSettings),
        .target(
            name: "CoffreEngine",
            dependencies: [
                "CoffreCore",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "CoffreNBD", dependencies: ["CoffreCore", "CoffreSystem"], swiftSettings: swiftSettings),
        .target(name: "CoffreMount", dependencies: ["CoffreCore", "CoffreSystem", "CFuse"], swiftSettings: swiftSettings),
        .target(
            name: "CoffreLibvirt",
            dependencies: ["CoffreCore", "CoffreSystem", "CoffreNBD", .target(name: "CLibvirt", condition: .when(traits: ["Libvirt"]))],
            swiftSettings: swiftSettings
        ),
        .target(name: "CoffreTesting", dependencies: ["CoffreCore"], swiftSettings: swiftSettings),
        .target(
            name: "CoffreServer",
            dependencies: [
                "CoffreCore", "CoffreEngine",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            resources: [.embedInCode("OpenAPI/openapi.json")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "coffre",
            dependencies: [
                "CoffreCore", "CoffreSystem", "CoffreStorage", "CoffreSQLite", "CoffrePostgres", "CoffreLocalFabric", "CoffreEngine",
                "CoffreServer", "CoffreS3", "CoffreMount", "CoffreNBD", .target(name: "CoffreLibvirt", condition: .when(traits: ["Libvirt"])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "coffre-agent",
            dependencies: [
                "CoffreCore", "CoffreSystem", "CoffreExtension",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "CoffreCoreTests", dependencies: ["CoffreCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "CoffreSystemTests",
            dependencies: ["CoffreCore", "CoffreSystem", "CoffreTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CoffreStorageTests",
            dependencies: ["CoffreCore", "CoffreSystem", "CoffreStorage", "CoffreS3", "CoffreTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CoffreS3Tests",
            dependencies: [
                "CoffreS3", "CoffreCore", "CoffreStorage", "CoffreSystem", "CoffreTesting",
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CoffreSQLiteTests",
            dependencies: [
                "CoffreCore", "CoffreSQLite", "CoffrePostgres", "CoffreTesting",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CoffreLocalFabricTests",
            dependencies: ["CoffreCore", "CoffreSystem", "CoffreStorage", "CoffreLocalFabric", "CoffreTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CoffreExtensionTests",
            dependencies: ["CoffreCore", "CoffreSystem", "CoffreExtension", "CoffreTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CoffreEngineTests",
            dependencies: ["CoffreCore", "CoffreSystem", "CoffreStorage", "CoffreSQLite", "CoffreLocalFabric", "CoffreEngine", "CoffreTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CoffreServerTests",
            dependencies: [
                "CoffreCore", "CoffreSystem", "CoffreStorage", "CoffreSQLite", "CoffreLocalFabric", "CoffreEngine", "CoffreServer",
                "CoffreTesting", "CoffreMount",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CoffreMountTests",
            dependencies: ["CoffreCore", "CoffreSystem", "CoffreMount", "CoffreTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "CoffreNBDTests", dependencies: ["CoffreCore", "CoffreSystem", "CoffreNBD"], swiftSettings: swiftSettings),
        .testTarget(
            name: "CoffreLibvirtTests",
            dependencies: [
                "CoffreCore", "CoffreSystem", "CoffreStorage", "CoffreSQLite", "CoffreEngine", "CoffreNBD",
                .target(name: "CoffreLibvirt", condition: .when(traits: ["Libvirt"])),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CoffreCLITests",
            dependencies: ["CoffreCore", "CoffreS3", "CoffreTesting", "CoffreMount"],
            swiftSettings: swiftSettings
        ),
    ]
)
