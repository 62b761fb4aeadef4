// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "pg_lock_exporter",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pg_lock_exporter", targets: ["pg_lock_exporter"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"]), .brew(["libpq"])]
        ),
        .systemLibrary(
            name: "CMicroHTTPD",
            pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev", "libgnutls28-dev"]), .brew(["libmicrohttpd"])]
        ),
        .systemLibrary(
            name: "CCrypt",
            pkgConfig: "libxcrypt",
            providers: [.apt(["libcrypt-dev"])]
        ),
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"]), .brew(["libyaml"])]
        ),
        .target(
            name: "PGLockExporter",
            dependencies: [
                "CLibPQ",
                "CMicroHTTPD",
                "CCrypt",
                "CYAML",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "pg_lock_exporter",
            dependencies: [
                "PGLockExporter",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "PGLockExporterTests",
            dependencies: ["PGLockExporter", "CLibPQ"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
