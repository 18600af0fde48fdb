// swift-tools-version:5.9
import PackageDescription

// Dependencies point one way: executables → pipeline → models → engine → C libraries.
// The spool daemon (SemplesSpool) never imports the engine: it runs each job as a child
// `semples run` process.
let package = Package(
    name: "semples",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "semples", targets: ["semples"]),
        .executable(name: "semplesd", targets: ["semplesd"]),
        .library(name: "SemplesEngine", targets: ["SemplesEngine"]),
        .library(name: "SemplesFormats", targets: ["SemplesFormats"]),
        .library(name: "SemplesModels", targets: ["SemplesModels"]),
        .library(name: "SemplesPipeline", targets: ["SemplesPipeline"]),
        .library(name: "SemplesSpool", targets: ["SemplesSpool"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // C system libraries.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG",
                       providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "CInotify", path: "Sources/CInotify",
                       providers: [.apt(["libinotifytools0-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        // Thin C wrappers for libraries whose error handling needs setjmp (libjpeg, libpng).
        .target(name: "CCodecs", dependencies: ["CJPEG", "CPNG"], path: "Sources/CCodecs",
                linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16")]),

        // Libraries.
        .target(name: "CAllocCount", path: "Sources/CAllocCount"),
        // Element-wise kernels compiled for the x86-64 baseline and for AVX2 + FMA, chosen at run time.
        .target(name: "CKernels", path: "Sources/CKernels"),
        .target(name: "SemplesEngine", dependencies: ["CBLAS", "CAllocCount", "CKernels"]),
        .target(name: "SemplesFormats", dependencies: ["SemplesEngine", "CCodecs"]),
        .target(name: "SemplesModels", dependencies: ["SemplesEngine", "SemplesFormats", "CZlib"]),
        .target(name: "SemplesManifest", dependencies: ["Yams"]),
        .target(name: "SemplesPipeline",
                dependencies: ["SemplesEngine", "SemplesFormats", "SemplesModels", "SemplesManifest"]),
        .target(name: "SemplesSpool", dependencies: ["SemplesManifest", "CInotify", "Yams"]),

        // Executables: argument parsing and wiring only.
        .executableTarget(name: "semples", dependencies: [
            "SemplesPipeline", "SemplesFormats", "SemplesSpool",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "semplesd", dependencies: [
            "SemplesSpool",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Tests.
        .testTarget(name: "SemplesEngineTests", dependencies: ["SemplesEngine", "SemplesFormats"]),
        .testTarget(name: "SemplesFormatsTests", dependencies: ["SemplesFormats"]),
        .testTarget(name: "SemplesModelsTests", dependencies: ["SemplesModels"]),
        .testTarget(name: "SemplesManifestTests", dependencies: ["SemplesManifest"]),
        .testTarget(name: "SemplesPipelineTests", dependencies: ["SemplesPipeline"]),
        .testTarget(name: "SemplesSpoolTests", dependencies: ["SemplesSpool"]),
    ]
)
