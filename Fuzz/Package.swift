// swift-tools-version:5.4
// libFuzzer targets for Branchy's decoders. A separate package so that the fuzzer and
// sanitizer flags never reach the main build; it depends on the main package by path.
// Build and run with scripts/fuzz.sh (see docs/FUZZING.md).
//
// Tools version 5.4 on purpose: from 5.5 on, SwiftPM renames an executable's `main` and
// links `main` to the renamed symbol, which a libFuzzer target (whose `main` comes from
// the fuzzer runtime) does not have, so the link fails.
import PackageDescription

/// name (Sources/fuzz-<name>, Corpus/<name>) and the products the target imports.
let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
    ("frame", [.product(name: "BranchyWire", package: "Branchy"), .product(name: "NIOCore", package: "swift-nio")]),
    ("hello", ["FuzzPayload"]),
    ("infer-request", ["FuzzPayload"]),
    ("infer-result", ["FuzzPayload"]),
    ("safetensors", [.product(name: "BranchyModel", package: "Branchy")]),
    ("model-spec", [.product(name: "BranchyModel", package: "Branchy")]),
    ("topology", [.product(name: "BranchyTopology", package: "Branchy")]),
    ("idx", [.product(name: "BranchyData", package: "Branchy")]),
    ("onnx", [.product(name: "BranchyImport", package: "Branchy")]),
    ("oip-request", [.product(name: "BranchyServing", package: "Branchy")]),
]

let package = Package(
    name: "BranchyFuzz",
    dependencies: [
        .package(name: "Branchy", path: ".."),
        // The same package and version the main package uses; needed for ByteBuffer.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: fuzzTargets.map { target in
        .executableTarget(name: "fuzz-\(target.name)", dependencies: target.dependencies, path: "Sources/fuzz-\(target.name)")
    } + [
        // The payload targets' shared body: read a payload behind a header, check it re-encodes.
        .target(name: "FuzzPayload", dependencies: [
            .product(name: "BranchyWire", package: "Branchy"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // Writes the seed corpora in Corpus/ with the project's own encoders (built without
        // the fuzzer flags; see docs/FUZZING.md).
        .executableTarget(name: "make-corpus", dependencies: [
            .product(name: "BranchyWire", package: "Branchy"),
            .product(name: "BranchyModel", package: "Branchy"),
            .product(name: "BranchyTensor", package: "Branchy"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
    ]
)
