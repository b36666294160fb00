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
        .library(name: "CoffreCore", targets: ["CoffreCore"]),
        .library(name: "CoffreStorage", targets: ["CoffreStorage"]),
        .library(name: "CoffreTesting", targets: ["CoffreTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .target(name: "CShims"),
        .target(name: "CoffreCore", swiftSettings: swiftSettings),
        .target(
            name: "CoffreStorage",
            dependencies: [
                "CoffreCore", "CZstd", "CShims",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "CoffreTesting", dependencies: ["CoffreCore", "CoffreStorage"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "coffre",
            dependencies: [
                "CoffreCore", "CoffreStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CoffreStorageTests",
            dependencies: ["CoffreCore", "CoffreStorage", "CoffreTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CoffreCLITests",
            dependencies: ["CoffreCore", "CoffreTesting"],
            swiftSettings: swiftSettings
        ),
    ]
)
