// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Branchy",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "branchy", targets: ["branchy"]),
        .executable(name: "branchy-device", targets: ["branchy-device"]),
        .executable(name: "branchy-edge", targets: ["branchy-edge"]),
        .executable(name: "branchy-cloud", targets: ["branchy-cloud"]),
        .executable(name: "branchy-probe", targets: ["branchy-probe"]),
        // Libraries for the fuzz targets and their seed generator in Fuzz/ (a separate
        // package that depends on this one).
        .library(name: "BranchyTensor", targets: ["BranchyTensor"]),
        .library(name: "BranchyWire", targets: ["BranchyWire"]),
        .library(name: "BranchyModel", targets: ["BranchyModel"]),
        .library(name: "BranchyTopology", targets: ["BranchyTopology"]),
        .library(name: "BranchyData", targets: ["BranchyData"]),
        .library(name: "BranchyImport", targets: ["BranchyImport"]),
        .library(name: "BranchyServing", targets: ["BranchyServing"]),
        // For applications: embed a device slice and classify in process (Examples/EmbeddedDevice).
        .library(name: "Branchy", targets: ["Branchy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
    ],
    // Release builds keep every check (plain -O, no unchecked mode): input from files and peers is checked
    // with thrown errors, and the preconditions left guard invariants of the code itself.
    targets: [
        // Layer 0: kernels. The C kernels carry one path per vector ISA, chosen at run time;
        // they are optimised in every configuration so that debug test runs stay quick.
        .target(name: "CBranchyKernels", cSettings: [.unsafeFlags(["-O2", "-fno-math-errno"])]),
        // Lossless compressors (LZ4, Zstandard) loaded from the system's shared libraries at run time.
        .target(name: "CBranchyCompression", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "BranchyTensor", dependencies: ["CBranchyKernels", "CBranchyCompression"]),
        // Layer 1: data sets and model description / weights.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // PNG and JPEG decoding through libpng and libjpeg-turbo, loaded at run time.
        .target(name: "CBranchyImages", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "BranchyData", dependencies: ["CZlib", "CBranchyImages"]),
        .target(name: "BranchyModel", dependencies: ["BranchyTensor", "BranchyData"]),
        // ONNX import: the protobuf schema's generated code (scripts/generate-onnx-proto.sh) read
        // through SwiftProtobuf, folded and split into stages as a model description.
        .target(name: "BranchyImport", dependencies: [
            "BranchyModel", "BranchyTensor",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], exclude: ["Generated/onnx.proto"]),
        // The Open Inference Protocol's requests and responses (JSON and binary tensor data), decoded and checked.
        .target(name: "BranchyServing"),
        // The Open Inference Protocol over HTTP/1.1 for one backend.
        .target(name: "BranchyFrontDoor", dependencies: [
            "BranchyServing",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        // Triton's gRPC service (`inference.GRPCInferenceService`): the code protoc makes of its .proto files
        // (scripts/generate-triton-grpc.sh), committed.
        .target(name: "BranchyInferenceGRPC", dependencies: [
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], exclude: ["proto"]),
        // The Open Inference Protocol over gRPC for one backend, on grpc-swift's HTTP/2 transport.
        .target(name: "BranchyFrontDoorGRPC", dependencies: [
            "BranchyFrontDoor", "BranchyServing", "BranchyInferenceGRPC",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // Layer 2: training and evaluation.
        // Run reports, their JSON, the terminal table and progress bar, the HTML/SVG report, calibration files.
        .target(name: "BranchyReport", dependencies: ["BranchyWire"]),
        .target(name: "BranchyTraining", dependencies: ["BranchyModel", "BranchyData", "BranchyReport"]),
        // Protocol and configuration.
        .target(name: "BranchyWire", dependencies: [
            "BranchyTensor",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .target(name: "BranchyTopology", dependencies: [
            .product(name: "Yams", package: "Yams"),
        ]),
        // What a node tells its operator: Prometheus metrics, JSON logs, rate-limited warnings.
        .target(name: "BranchyObservability", dependencies: [
            "BranchyReport", "BranchyWire",
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // Below the protocol: TLS contexts and peer names, bytes counted below TLS, accept backoff,
        // connection caps and input budgets, budgeted frame decoding, reconnect backoff, the metrics endpoint.
        .target(name: "BranchyTransport", dependencies: [
            "BranchyObservability", "BranchyWire", "BranchyTopology",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The rules of a node's connection upstream, as values tested without sockets: the connection
        // state machine and its request table, failures, reconnect backoff, replica outlier ejection.
        .target(name: "BranchyLink", dependencies: [
            "BranchyWire", "BranchyTopology",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The dynamic batcher's rules as a value (when a batch closes) and the batch-size histogram.
        .target(name: "BranchyBatching"),
        // Node runtime: the tiers, their forwarding path and upstream links.
        .target(name: "BranchyNode", dependencies: [
            "BranchyWire", "BranchyTopology", "BranchyModel", "BranchyData", "BranchyReport", "BranchyObservability", "BranchyTransport", "BranchyLink", "BranchyBatching",
            "BranchyServing", "BranchyFrontDoor", "BranchyFrontDoorGRPC",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // The library applications embed: a device slice of a cluster, classifying in process.
        .target(name: "Branchy", dependencies: [
            "BranchyNode", "BranchyReport", "BranchyTensor",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Its runnable example: classifies test images through a running cluster, and times classify.
        .executableTarget(name: "branchy-embedded-example", dependencies: ["Branchy", "BranchyData"], path: "Examples/EmbeddedDevice"),
        // Command-line options the node executables share.
        .target(name: "BranchyNodeOptions", dependencies: [
            "BranchyNode", "BranchyObservability", "BranchyTopology", "BranchyFrontDoor", "BranchyServing",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Thin executables.
        // Counts the process's heap allocations for `branchy bench`.
        .target(name: "CAllocationCounter"),
        .executableTarget(name: "branchy", dependencies: [
            "BranchyImport", "BranchyTraining", "BranchyModel", "BranchyData", "BranchyTopology", "BranchyWire", "BranchyReport", "CAllocationCounter",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "branchy-device", dependencies: [
            "BranchyFrontDoor", "BranchyNode", "BranchyNodeOptions", "BranchyReport", "BranchyObservability", "BranchyTransport", "BranchyWire", "BranchyServing", "BranchyTopology",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "branchy-edge", dependencies: [
            "BranchyNodeOptions",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "branchy-cloud", dependencies: [
            "BranchyNodeOptions",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The hostile clients of the hardening checks in scripts/e2e-faults.sh.
        .executableTarget(name: "branchy-probe", dependencies: [
            "BranchyTransport", "BranchyWire", "BranchyTopology", "BranchyTensor", "CZlib",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "BranchyTensorTests", dependencies: ["BranchyTensor"]),
        .testTarget(name: "BranchyDataTests", dependencies: ["BranchyData"]),
        .testTarget(name: "BranchyModelTests", dependencies: ["BranchyModel"]),
        .testTarget(name: "BranchyServingTests", dependencies: ["BranchyServing"]),
        .testTarget(name: "BranchyFrontDoorTests", dependencies: ["BranchyFrontDoor", "BranchyServing",
                                                                  .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(name: "BranchyFrontDoorGRPCTests", dependencies: [
            "BranchyFrontDoorGRPC", "BranchyFrontDoor", "BranchyServing", "BranchyInferenceGRPC",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
        ]),
        .testTarget(name: "BranchyImportTests", dependencies: ["BranchyImport", "BranchyModel", "BranchyTensor",
                                                            .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .testTarget(name: "BranchyTrainingTests", dependencies: ["BranchyTraining"]),
        .testTarget(name: "BranchyWireTests", dependencies: [
            "BranchyWire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOTestUtils", package: "swift-nio"),
        ]),
        .testTarget(name: "BranchyTopologyTests", dependencies: ["BranchyTopology"]),
        .testTarget(name: "BranchyBatchingTests", dependencies: ["BranchyBatching"]),
        .testTarget(name: "BranchyLinkTests", dependencies: [
            "BranchyLink", "BranchyWire", "BranchyTopology", "BranchyTensor",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        .testTarget(name: "BranchyReportTests", dependencies: ["BranchyReport", "BranchyWire"]),
        .testTarget(name: "BranchyToolTests", dependencies: ["branchy", "BranchyTopology", "BranchyReport"]),
        .testTarget(name: "BranchyNodeTests", dependencies: [
            "BranchyNode", "BranchyModel", "BranchyData", "BranchyTensor", "BranchyWire", "BranchyTopology", "BranchyReport",
            "BranchyObservability", "BranchyTransport", "BranchyLink",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
