// swift-tools-version:6.1
import PackageDescription

/// Release builds on Linux link with lld and place the functions `serve` runs side by side
/// (`scripts/link-order` writes the list): the kernel keeps a binary's code resident in 64 KiB
/// windows around each page touched, so packing the used code together keeps about 2 MiB less
/// of it resident (`make bench`). A name the list has and the binary lacks is ignored.
let linkOrder = String(#filePath.dropLast("Package.swift".count)) + "Sources/pg_lock_exporter/link-order.txt"

let package = Package(
    name: "pg_lock_exporter",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pg_lock_exporter", targets: ["pg_lock_exporter"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
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
        .systemLibrary(name: "CMalloc"),
        .systemLibrary(name: "CProcessControl"),
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"]), .brew(["libyaml"])]
        ),
        .systemLibrary(name: "CPGQuery", providers: [.apt(["libpg-query-dev"])]),
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"]), .brew(["curl"])]
        ),
        .target(
            name: "PGLockExporter",
            dependencies: [
                "CLibPQ",
                "CMicroHTTPD",
                "CCrypt",
                "CMalloc",
                "CProcessControl",
                "CYAML",
                "CPGQuery",
                "CSQLite",
                "CCurl",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "pg_lock_exporter",
            dependencies: [
                "PGLockExporter",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["link-order.txt"],
            linkerSettings: [
                .unsafeFlags(
                    ["-use-ld=lld", "-Xlinker", "--symbol-ordering-file=\(linkOrder)", "-Xlinker", "--no-warn-symbol-ordering"],
                    .when(platforms: [.linux], configuration: .release))
            ]
        ),
        .testTarget(
            name: "PGLockExporterTests",
            dependencies: [
                "PGLockExporter", "CLibPQ", "CSQLite",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

/// The libFuzzer harness (`make fuzz`, `scripts/fuzz`): one executable that runs libFuzzer's
/// driver on the target `PG_LOCK_EXPORTER_FUZZ_TARGET` names. It links only with
/// `-sanitize=fuzzer`, so it exists only in the fuzz build (`scripts/fuzz` sets
/// `PG_LOCK_EXPORTER_FUZZ=1` and builds with libFuzzer and AddressSanitizer in `.build-fuzz`); an
/// ordinary `swift build` never sees it.
if Context.environment["PG_LOCK_EXPORTER_FUZZ"] != nil {
    package.targets += [
        .systemLibrary(name: "CLibFuzzer", path: "Fuzz/CLibFuzzer"),
        .executableTarget(
            name: "pg_lock_exporter_fuzz",
            dependencies: ["PGLockExporter", "CLibFuzzer", .product(name: "Logging", package: "swift-log")],
            path: "Fuzz/Sources"
        ),
    ]
    package.products.append(.executable(name: "pg_lock_exporter_fuzz", targets: ["pg_lock_exporter_fuzz"]))
}
