import BranchyModel
import BranchyTensor
import Foundation
import Testing
@testable import BranchyImport

/// The importer on graphs built here with the ONNX schema's own types: stages found at the
/// exits' branch points, batch norms folded, shape arithmetic folded, blocks recognised, and
/// bad graphs refused with the node, op type and opset named.
@Suite struct ONNXImporterTests {
    /// A float tensor.
    static func tensor(_ name: String, _ dims: [Int], seed: Int = 1) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims.map(Int64.init)
        t.dataType = 1
        let n = dims.reduce(1, *)
        t.floatData = (0..<n).map { Float(sin(Double($0 * 7 + seed))) * 0.5 }
        return t
    }

    static func ints(_ name: String, _ values: [Int]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = [Int64(values.count)]
        t.dataType = 7
        t.int64Data = values.map(Int64.init)
        return t
    }

    static func node(_ op: String, _ inputs: [String], _ outputs: [String], name: String, ints: [String: [Int]] = [:], int: [String: Int] = [:]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = name
        n.input = inputs
        n.output = outputs
        for (k, v) in ints.sorted(by: { $0.key < $1.key }) {
            var a = Onnx_AttributeProto(); a.name = k; a.type = .ints; a.ints = v.map(Int64.init); n.attribute.append(a)
        }
        for (k, v) in int.sorted(by: { $0.key < $1.key }) {
            var a = Onnx_AttributeProto(); a.name = k; a.type = .int; a.i = Int64(v); n.attribute.append(a)
        }
        return n
    }

    static func valueInfo(_ name: String, _ dims: [Int?]) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = 1
        var shape = Onnx_TensorShapeProto()
        for d in dims {
            var dim = Onnx_TensorShapeProto.Dimension()
            if let d { dim.dimValue = Int64(d) } else { dim.dimParam = "batch" }
            shape.dim.append(dim)
        }
        t.shape = shape
        v.type.tensorType = t
        return v
    }

    /// Two exits: conv → BN → relu → [residual block] → branch point; exit 0 pools and
    /// flattens through Shape/Gather/Concat/Reshape arithmetic; the deeper trunk convolves again.
    static func twoExitModel(opset: Int = 17) -> Onnx_ModelProto {
        var g = Onnx_GraphProto()
        g.input = [valueInfo("x", [nil, 2, 6, 6])]
        g.initializer = [tensor("w1", [4, 2, 3, 3]), tensor("s", [4], seed: 2), tensor("b", [4], seed: 3), tensor("m", [4], seed: 4),
                         tensor("v", [4], seed: 5).withPositive(), tensor("w2", [4, 4, 3, 3], seed: 6), tensor("fc0", [3, 4], seed: 7),
                         tensor("w3", [4, 4, 3, 3], seed: 8), tensor("fc1", [3, 36], seed: 9), ints("zero", [0]), ints("minus", [-1])]
        g.node = [
            node("Conv", ["x", "w1"], ["c1"], name: "/stem/Conv", ints: ["pads": [1, 1, 1, 1]]),
            node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["bn"], name: "/stem/bn"),
            node("Relu", ["bn"], ["r"], name: "/stem/relu"),
            node("Conv", ["r", "w2"], ["c2"], name: "/block/Conv", ints: ["pads": [1, 1, 1, 1]]),
            node("Add", ["c2", "r"], ["sum"], name: "/block/Add"),
            node("GlobalAveragePool", ["sum"], ["gap"], name: "/exit0/gap"),
            node("Shape", ["gap"], ["shape"], name: "/exit0/Shape"),
            node("Gather", ["shape", "zero"], ["n"], name: "/exit0/Gather", int: ["axis": 0]),
            node("Concat", ["n", "minus"], ["target"], name: "/exit0/Concat", int: ["axis": 0]),
            node("Reshape", ["gap", "target"], ["flat"], name: "/exit0/Reshape"),
            node("Gemm", ["flat", "fc0"], ["exit0"], name: "/exit0/fc", int: ["transB": 1]),
            node("Conv", ["sum", "w3"], ["c3"], name: "/deep/Conv", ints: ["strides": [2, 2], "pads": [1, 1, 1, 1]]),
            node("Relu", ["c3"], ["r3"], name: "/deep/relu"),
            node("Flatten", ["r3"], ["f3"], name: "/exit1/flatten"),
            node("Gemm", ["f3", "fc1"], ["exit1"], name: "/exit1/fc", int: ["transB": 1]),
        ]
        g.output = [valueInfo("exit1", [nil, 3]), valueInfo("exit0", [nil, 3])]
        var m = Onnx_ModelProto()
        m.irVersion = 8
        var o = Onnx_OperatorSetIdProto(); o.version = Int64(opset)
        m.opsetImport = [o]
        m.graph = g
        return m
    }

    static func write(_ model: Onnx_ModelProto, _ scratch: URL, _ name: String = "m.onnx") throws -> URL {
        let url = scratch.appendingPathComponent(name)
        try Data(model.serializedBytes() as [UInt8]).write(to: url)
        return url
    }

    static func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onnx-import-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func splitsAtTheBranchPoint() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try ONNXImporter.importModel(try Self.write(Self.twoExitModel(), dir))
        #expect(r.spec.stages.map(\.name) == ["device", "cloud"])
        #expect(r.spec.stages.map(\.exit.name) == ["exit0", "exit1"])  // ordered by depth, not by output order
        #expect(r.stages[0].forwarded == "sum" && r.stages[0].forwardedShape == [4, 6, 6])
        let trunk = r.spec.stages[0].trunk
        #expect(trunk.map(\.op) == ["conv", "relu", "residual"])  // the batch norm folded into the convolution
        #expect(trunk[0].name == "stem_Conv" && trunk[0].bias == true)
        #expect(trunk[2].layers?.map(\.op) == ["conv"] && trunk[2].shortcut == nil)
        #expect(r.spec.stages[0].exit.layers.map(\.op) == ["globalavgpool", "flatten", "linear"])
        #expect(r.spec.stages[1].trunk.map(\.op) == ["conv", "relu", "flatten"] && r.spec.stages[1].exit.layers.map(\.op) == ["linear"])
        // Trunk and head: the convolution with its batch norm, ReLU, block convolution, Add, pooling, Reshape, Gemm.
        #expect(r.stages[0].nodes == 8 && r.stages[0].parameters == 4 * 2 * 9 + 4 + 4 * 4 * 9 + 3 * 4)
        #expect(r.tensors.keys.sorted() == ["cloud.exit.exit1_fc.weight", "cloud.trunk.deep_Conv.weight", "device.exit.exit0_fc.weight",
                                            "device.trunk.block_Conv.weight", "device.trunk.stem_Conv.bias", "device.trunk.stem_Conv.weight"])
        let model = try ONNXImporter.write(r, to: dir.appendingPathComponent("model"), source: "m.onnx")
        #expect(model.spec.stages.count == 2)
    }

    @Test func exitsAndSplitCanBeNamed() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = try Self.write(Self.twoExitModel(), dir)
        let named = try ONNXImporter.importModel(url, exits: ["exit0", "exit1"], split: ["sum"])
        #expect(named.spec == (try ONNXImporter.importModel(url)).spec)
        // Forwarding the ReLU's output would leave the residual sum to both the exit head and the next stage.
        #expect(throws: ImportError.self) { try ONNXImporter.importModel(url, split: ["r"]) }
        #expect(throws: ImportError.self) { try ONNXImporter.importModel(url, exits: ["exit0", "nope"]) }
        let one = try ONNXImporter.importModel(url, exits: ["exit1"])
        #expect(one.spec.stages.count == 1)
        // With the head's pooling as the split, the deeper trunk would need the residual sum again.
        #expect(throws: ImportError.self) { try ONNXImporter.importModel(url, split: ["gap"]) }
    }

    /// Exits added to a one-output classifier: the stage ends at the named tensor, its exit is
    /// the documented head, whose tensors are left to train.
    @Test func addsExitsToAClassifier() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = try Self.write(Self.twoExitModel(), dir)
        let r = try ONNXImporter.importModel(url, exits: ["exit1"], addExits: ["sum"])
        #expect(r.spec.stages.map(\.name) == ["device", "cloud"])
        #expect(r.spec.stages[0].exit.name == "exit1" && r.spec.stages[0].exit.layers == ExitHead.layers(input: [4, 6, 6], classes: 3))
        #expect(r.spec.stages[0].exit.layers.map(\.op) == ["conv", "relu", "maxpool", "flatten", "linear"])
        #expect(r.spec.stages[1].exit.name == "exit1" || r.spec.stages[1].exit.layers.map(\.op) == ["linear"])
        #expect(r.addedExits.count == 1 && r.addedExits[0].stage == 0 && r.addedExits[0].input == [4, 6, 6])
        #expect(!r.tensors.keys.contains { $0.hasPrefix("device.exit.") })
        #expect(r.stages[0].parameters == 72 + 4 + 144 + ExitHead.cost(input: [4, 6, 6], classes: 3).parameters)
        #expect(throws: ImportError.self) { try ONNXImporter.importModel(url, addExits: ["sum"]) }  // two outputs
        #expect(throws: ImportError.self) { try ONNXImporter.importModel(url, exits: ["exit1"], addExits: ["nowhere"]) }
    }

    @Test func refusesBadGraphs() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        func error(_ model: Onnx_ModelProto) throws -> String {
            do { _ = try ONNXImporter.importModel(try Self.write(model, dir)); return "" } catch let e as ImportError { return e.description }
        }
        var m = Self.twoExitModel()
        m.graph.node[2].opType = "Erf"
        #expect(try error(m).contains("node '/stem/relu' (Erf, opset 17): operator not supported"))
        #expect(try error(Self.twoExitModel(opset: 12)).contains("opset 12 is not supported"))
        m = Self.twoExitModel()
        m.graph.node[3].input[0] = "nowhere"
        #expect(try error(m).contains("input 'nowhere' is not defined"))
        m = Self.twoExitModel()
        m.graph.node[0].input[0] = "sum"
        #expect(try error(m).contains("cycle"))
        m = Self.twoExitModel()
        m.graph.initializer[0].floatData.removeLast()
        #expect(try error(m).contains("initializer 'w1': holds 71 values, 72 expected"))
        m = Self.twoExitModel()
        m.graph.initializer[0].dataLocation = .external
        var entry = Onnx_StringStringEntryProto(); entry.key = "location"; entry.value = "../../etc/passwd"
        m.graph.initializer[0].externalData = [entry]
        #expect(try error(m).contains("must be a file in the model's folder"))
        let bytes: [UInt8] = try Self.twoExitModel().serializedBytes()
        try Data(bytes.prefix(bytes.count / 2)).write(to: dir.appendingPathComponent("cut.onnx"))
        #expect(throws: ImportError.self) { try ONNXImporter.importModel(dir.appendingPathComponent("cut.onnx")) }
    }

    /// External data: the tensor read from the file beside the model, at its offset.
    @Test func readsExternalData() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        var m = Self.twoExitModel()
        let w = m.graph.initializer[5]
        var raw = Data(repeating: 7, count: 16)
        for v in w.floatData { withUnsafeBytes(of: v.bitPattern.littleEndian) { raw.append(contentsOf: $0) } }
        try raw.write(to: dir.appendingPathComponent("weights.bin"))
        var t = w
        t.floatData = []
        t.dataLocation = .external
        t.externalData = [("location", "weights.bin"), ("offset", "16"), ("length", "\(w.floatData.count * 4)")].map {
            var e = Onnx_StringStringEntryProto(); e.key = $0.0; e.value = $0.1; return e
        }
        m.graph.initializer[5] = t
        let r = try ONNXImporter.importModel(try Self.write(m, dir))
        #expect(r.tensors["device.trunk.block_Conv.weight"]?.data == w.floatData)
    }
}

extension Onnx_TensorProto {
    /// The same values made positive (a variance).
    func withPositive() -> Onnx_TensorProto {
        var t = self
        t.floatData = floatData.map { abs($0) + 0.1 }
        return t
    }
}
