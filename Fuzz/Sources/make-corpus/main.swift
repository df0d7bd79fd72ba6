import BranchyModel
import BranchyTensor
import BranchyWire
import Foundation
import NIOCore

/// Writes the seed corpora of the fuzz targets into Fuzz/Corpus/<target>/, replacing what is
/// there: frames and payloads from the project's own encoder, safetensors files from its
/// writer, the shipped model.json and topology files, small IDX files (plain and gzip).
///
/// Usage: make-corpus [REPO_ROOT]   (default: the current directory)
enum MakeCorpus {
    static func main() throws {
        let root = URL(fileURLWithPath: CommandLine.arguments.dropFirst().first ?? FileManager.default.currentDirectoryPath)
        let corpus = root.appendingPathComponent("Fuzz/Corpus")
        var writer = CorpusWriter(corpus: corpus)

        // Frames and payloads.
        let fingerprint = ModelFingerprint(bytes: (0..<32).map { UInt8($0 &* 7 &+ 1) })!
        let hellos = [
            Hello(role: .device, nodeName: "device", fingerprint: fingerprint),
            Hello(role: .edge, nodeName: "edge-α", fingerprint: .zero),
            Hello(role: .cloud, nodeName: "", fingerprint: fingerprint),
        ]
        let tensor = Tensor(shape: [1, 2, 2, 2], data: [0.5, -1.25, 3, 0, 7.5, -0.125, 2, 1])
        let requests = [
            InferRequest(sampleID: 42, deadlineMillis: 250, stageIndex: 1, tensor: tensor, codec: .float32),
            InferRequest(sampleID: 43, deadlineMillis: 0, stageIndex: 2, tensor: tensor, codec: .float16),
            InferRequest(sampleID: 44, deadlineMillis: 1000, stageIndex: 1, tensor: tensor, codec: .int8),
            InferRequest(sampleID: 45, stageIndex: 0, tensor: Tensor(shape: [3], data: [1, 2, 3]), codec: .int8),
        ]
        let results = [
            InferResult(exitIndex: 0, exitName: "device-exit", nodeName: "device", predictedClass: 7,
                        confidence: 0.875, entropy: 0.42),
            InferResult(status: .degraded, reason: "cloud unreachable: connection refused", exitIndex: 1,
                        exitName: "edge-exit", nodeName: "edge-α", predictedClass: 3, confidence: 0.5, entropy: 1.5,
                        hops: [HopCost(link: "device->edge", requestFrameBytes: 150, responseFrameBytes: 90,
                                       requestTLSBytes: 179, responseTLSBytes: 119),
                               HopCost(link: "edge->cloud", requestFrameBytes: 1234, responseFrameBytes: 99,
                                       requestTLSBytes: 1263, responseTLSBytes: 128)]),
        ]
        let errors = [
            ErrorFrame(code: .badTensor, message: "tensor.rank 7 is not in 1...6"),
            ErrorFrame(code: ErrorCode(rawValue: 999), message: ""),
        ]
        for (i, hello) in hellos.enumerated() {
            try writer.write("hello", "hello-\(i)", payload(.hello(hello)))
            try writer.write("frame", "hello-\(i)", try frames([Frame(requestID: 0, message: .hello(hello))]))
        }
        try writer.write("frame", "hello-ack", try frames([Frame(requestID: 0, message: .helloAck(hellos[1]))]))
        for (i, request) in requests.enumerated() {
            try writer.write("infer-request", "infer-\(request.features.kind)-\(i)", payload(.infer(request)))
            try writer.write("frame", "infer-\(request.features.kind)-\(i)",
                             try frames([Frame(requestID: UInt64(i + 1), message: .infer(request))]))
        }
        for (i, result) in results.enumerated() {
            try writer.write("infer-result", "result-\(i)", payload(.result(result)))
            try writer.write("frame", "result-\(i)", try frames([Frame(requestID: 9, message: .result(result))]))
        }
        for (i, error) in errors.enumerated() {
            try writer.write("frame", "error-\(i)", try frames([Frame(requestID: UInt64(i), message: .error(error))]))
        }
        try writer.write("frame", "goodbye", try frames([Frame(requestID: 0, message: .goodbye)]))
        try writeVersion2(&writer, hello: hellos[0])
        // A whole client conversation in one stream, and a stream cut inside its last frame.
        let conversation = try frames([
            Frame(requestID: 0, message: .hello(hellos[0])),
            Frame(requestID: 1, message: .infer(requests[2])),
            Frame(requestID: 2, message: .infer(requests[0])),
            Frame(requestID: 0, message: .goodbye),
        ])
        try writer.write("frame", "conversation", conversation)
        try writer.write("frame", "conversation-cut", Array(conversation.dropLast(7)))

        // Safetensors: the project's writer (F32), and one file per other dtype the reader converts.
        try writer.write("safetensors", "f32", [UInt8](SafeTensors.encode([
            "stage.trunk.conv1.weight": Tensor(shape: [2, 1, 2, 2], data: [1, -2, 3, -4, 0.5, 0.25, -0.125, 8]),
            "stage.trunk.conv1.bias": Tensor(shape: [2], data: [0.1, -0.1]),
        ], metadata: ["format": "pt", "note": "seed"])))
        try writer.write("safetensors", "f32-empty", [UInt8](SafeTensors.encode([
            "empty": Tensor(shape: [0, 3], data: []),
            "scalar": Tensor(shape: [], data: [42]),
        ])))
        try writer.write("safetensors", "f16-bf16-f64", safetensors([
            ("a", "F16", [2], [0x00, 0x3C, 0x00, 0xC0]),             // 1, -2
            ("b", "BF16", [2], [0x80, 0x3F, 0x00, 0x40]),            // 1, 2
            ("c", "F64", [1], [0, 0, 0, 0, 0, 0, 0xF0, 0x3F]),       // 1
        ]))

        // Model descriptions: the shipped ones as they are, the built-in architectures compact.
        for name in ["b-lenet", "b-lenet3"] {
            try writer.copy("model-spec", "shipped-\(name).json", from: root.appendingPathComponent("models/\(name)/model.json"))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try writer.write("model-spec", "compact-b-lenet.json", [UInt8](encoder.encode(Architectures.bLeNet)))
        try writer.write("model-spec", "batchnorm-avgpool.json", [UInt8](encoder.encode(ModelSpec(
            name: "tiny", input: [1, 8, 8], classes: 3,
            stages: [
                StageSpec(name: "a", trunk: [.conv("c", out: 2, kernel: 3, pad: 1),
                                             LayerSpec(op: "batchnorm", name: "bn", epsilon: 1e-3), .relu,
                                             LayerSpec(op: "avgpool", kernel: 2, ceil: true)],
                          exit: ExitSpec(name: "a-exit", layers: [.flatten, .linear("fc", out: 3)])),
                StageSpec(name: "b", trunk: [.maxPool(2, stride: 1), .flatten, LayerSpec(op: "linear", name: "l", out: 4, bias: false),
                                             LayerSpec(op: "batchnorm", name: "bn")],
                          exit: ExitSpec(name: "b-exit", layers: [.linear("fc", out: 3)])),
            ],
            defaults: ModelSpec.Defaults(thresholds: [0.5], codec: "float16")))))
        try writer.write("model-spec", "residual-lrn.json", [UInt8](encoder.encode(ModelSpec(
            name: "tiny-res", input: [2, 6, 6], classes: 3,
            stages: [
                StageSpec(name: "a", trunk: [
                    .residual("r1", [LayerSpec(op: "conv", name: "c1", out: 4, kernel: 3, stride: 2, pad: 1),
                                     LayerSpec(op: "batchnorm", name: "bn1", momentum: 0.5)],
                              shortcut: [.avgPool(1, stride: 2), .padChannels(out: 4)]),
                    .relu, .lrn(size: 3, alpha: 0.5, beta: 0.75, k: 1),
                    .residual("r2", [.residual("r3", [.conv("c2", out: 4, kernel: 1)])]),
                ], exit: ExitSpec(name: "a-exit", layers: [.flatten, .linear("fc", out: 3)])),
            ]))))

        // Topologies: the shipped files.
        let topologies = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("topology").path)
        for file in topologies.sorted() where file.hasSuffix(".yaml") {
            try writer.copy("topology", file, from: root.appendingPathComponent("topology/\(file)"))
        }

        // IDX: [UInt32 big-endian images length][images file][labels file].
        let images = idx(magic: 0x803, dimensions: [3, 4, 4], payload: (0..<48).map { UInt8(($0 * 37 + 11) % 256) })
        let labels = idx(magic: 0x801, dimensions: [3], payload: [7, 0, 9])
        try writer.write("idx", "plain", idxInput(images, labels))
        try writer.write("idx", "gzip-images", idxInput(try gzip(images), labels))
        try writer.write("idx", "gzip-both", idxInput(try gzip(images), try gzip(labels)))

        print("wrote \(writer.count) files under \(corpus.path)")
    }

    /// Version 2 seeds: a conversation (a version 2 hello, then compact frames of every codec kind,
    /// compressed and not, results, stats), and the compact payloads for the payload targets, whose
    /// results refer to the names the payload targets decode with.
    static func writeVersion2(_ writer: inout CorpusWriter, hello: Hello) throws {
        let names = NameTable(["device", "edge", "cloud", "device-exit", "edge-exit", "cloud-exit", "device->edge", "edge->cloud"])
        let v2 = FrameDialect.v2(names: names)
        var h = hello
        h.protocolVersion = 2
        var ack = h
        ack.names = names
        var conversation = ByteBuffer()
        conversation.writeFrame(Frame(requestID: 0, message: .hello(h)), dialect: .open)
        var helloPayload = ByteBuffer()
        helloPayload.writeFrame(Frame(requestID: 0, message: .helloAck(ack)), dialect: .open)
        try writer.write("hello", "hello-v2", Array(helloPayload.readableBytesView.dropFirst(FrameHeader.size)))
        func compactPayload(_ f: Frame) throws -> [UInt8] {
            try f.validate(dialect: v2)
            var b = ByteBuffer()
            b.writeFrame(f, dialect: v2)
            return Array(b.readableBytesView.dropFirst(FrameHeader.compactSize(requestID: f.requestID, payloadLength: f.payloadSize(in: v2))))
        }
        let sparse = Tensor(shape: [4, 6, 6], data: (0..<144).map { $0 % 9 == 0 ? Float($0 % 7) / 3 - 0.5 : 0 })
        var id: UInt64 = 1
        for kind in FeatureCodecKind.allCases {
            for compression in LosslessCompression.allCases {
                let encoded = (try? kind.encode(sparse).compressed(with: compression)) ?? kind.encode(sparse)
                let f = Frame(requestID: id, message: .infer(InferRequest(sampleID: id * 1000, deadlineMillis: 900, stageIndex: 1, features: encoded)))
                try writer.write("infer-request", "infer-v2-\(kind)-\(encoded.compression)", compactPayload(f))
                conversation.writeFrame(f, dialect: v2)
                id += 1
            }
        }
        // A request with the options block: thresholds, timings, and probabilities asked for.
        var asking = InferRequest(sampleID: id * 1000, deadlineMillis: 900, stageIndex: 1, features: FeatureCodecKind.int8.encode(sparse))
        asking.exitThresholds = [1: 0.5, 2: 1.25]
        asking.wantsTimings = true
        asking.wantsProbabilities = true
        let options = Frame(requestID: id, message: .infer(asking))
        try writer.write("infer-request", "infer-v2-options", compactPayload(options))
        conversation.writeFrame(options, dialect: v2)
        id += 1
        var timed = InferResult(exitIndex: 2, exitName: "cloud-exit", nodeName: "cloud", predictedClass: 7, confidence: 0.5, entropy: 1,
                                hops: [HopCost(link: "edge->cloud", requestFrameBytes: 150, responseFrameBytes: 20, requestTLSBytes: 172,
                                               responseTLSBytes: 42, roundTripMicros: 812, upstreamMicros: 640)])
        timed.serviceMicros = 1_500
        timed.probabilities = [0.25, 0.25, 0.5]
        let results = [
            timed,
            InferResult(exitIndex: 1, exitName: "edge-exit", nodeName: "edge", predictedClass: 3, confidence: 0.75, entropy: 0.5),
            InferResult(status: .degraded, reason: "cloud unreachable", exitIndex: 2, exitName: "cloud-exit", nodeName: "cloud-2",
                        predictedClass: 300, confidence: 0.25, entropy: 1.5,
                        hops: [HopCost(link: "edge->cloud", requestFrameBytes: 150, responseFrameBytes: 20, requestTLSBytes: 172, responseTLSBytes: 42)]),
        ]
        for (i, r) in results.enumerated() {
            let f = Frame(requestID: id, message: .result(r))
            try writer.write("infer-result", "result-v2-\(i)", compactPayload(f))
            conversation.writeFrame(f, dialect: v2)
            id += 1
        }
        conversation.writeFrame(Frame(requestID: id, message: .statsRequest), dialect: v2)
        conversation.writeFrame(Frame(requestID: id, message: .stats([LinkTotals(link: "edge->cloud", connections: 1, handshakeBytes: 5476,
                                                                                bytesSent: 123_456, bytesReceived: 7_890)])), dialect: v2)
        conversation.writeFrame(Frame(requestID: 0, message: .goodbye), dialect: v2)
        try writer.write("frame", "conversation-v2", Array(conversation.readableBytesView))
    }

    /// The encoded frames, one after another, written by `FrameEncoder` (which validates each).
    static func frames(_ frames: [Frame]) throws -> [UInt8] {
        var out = ByteBuffer()
        for frame in frames { try FrameEncoder().encode(data: frame, out: &out) }
        return Array(out.readableBytesView)
    }

    /// The payload of `message`: its encoded frame without the header.
    static func payload(_ message: Frame.Message) throws -> [UInt8] {
        Array(try frames([Frame(requestID: 1, message: message)]).dropFirst(FrameHeader.size))
    }

    /// A safetensors file of raw little-endian tensors with the given dtypes.
    static func safetensors(_ tensors: [(name: String, dtype: String, shape: [Int], bytes: [UInt8])]) -> [UInt8] {
        var entries: [String] = []
        var data: [UInt8] = []
        for t in tensors {
            entries.append("\"\(t.name)\":{\"dtype\":\"\(t.dtype)\",\"shape\":\(t.shape),\"data_offsets\":[\(data.count),\(data.count + t.bytes.count)]}")
            data += t.bytes
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)
        return withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header + data
    }

    static func idx(magic: UInt32, dimensions: [Int], payload: [UInt8]) -> [UInt8] {
        ([magic] + dimensions.map { UInt32($0) }).flatMap { withUnsafeBytes(of: $0.bigEndian, Array.init) } + payload
    }

    static func idxInput(_ images: [UInt8], _ labels: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt32(images.count).bigEndian, Array.init) + images + labels
    }

    /// `bytes` compressed by the system gzip tool (no name or time stamp, so the output is stable).
    static func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gzip", "-9", "-n", "-c"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(bytes))
        try input.fileHandleForWriting.close()
        let compressed = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
        return [UInt8](compressed)
    }
}

/// Writes files into per-target folders, emptying each folder the first time it is used.
struct CorpusWriter {
    let corpus: URL
    var cleared: Set<String> = []
    var count = 0

    mutating func folder(_ target: String) throws -> URL {
        let dir = corpus.appendingPathComponent(target)
        if cleared.insert(target).inserted {
            try? FileManager.default.removeItem(at: dir)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        }
        return dir
    }

    mutating func write(_ target: String, _ name: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: try folder(target).appendingPathComponent(name))
        count += 1
    }

    mutating func copy(_ target: String, _ name: String, from source: URL) throws {
        try write(target, name, [UInt8](try Data(contentsOf: source)))
    }
}

try MakeCorpus.main()
