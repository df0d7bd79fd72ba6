import BranchyModel
import BranchyTensor
import Foundation
import Testing
@testable import BranchyImport

/// The exported graphs themselves: inputs and outputs, every value defined before it is read,
/// the nodes of the operators the importer does not read back, batch norms folded or not, the
/// error naming a layer without an ONNX form, and the files written or, on failure, not.
@Suite struct ExportGraphTests {
    static let models = ["b-lenet", "b-lenet3", "b-lenet3-bin", "b-resnet3", "mobilenet-exits", "resnet-exits"]

    static func load(_ name: String) throws -> Model {
        try Model.load(directory: ONNXExporterTests.root.appendingPathComponent("models/\(name)"))
    }

    static func dims(_ v: Onnx_ValueInfoProto) -> [String] {
        v.type.tensorType.shape.dim.map { $0.dimParam.isEmpty ? "\($0.dimValue)" : $0.dimParam }
    }

    /// Checks that every node reads only the input, initializers and earlier nodes' outputs,
    /// that names are unique, and that the outputs are computed.
    static func checkOrder(_ m: Onnx_ModelProto) {
        var defined = Set(m.graph.input.map(\.name))
        for t in m.graph.initializer { #expect(defined.insert(t.name).inserted, "initializer \(t.name) defined twice") }
        for n in m.graph.node {
            for i in n.input where !i.isEmpty { #expect(defined.contains(i), "node \(n.name) reads \(i) before it is defined") }
            for o in n.output { #expect(defined.insert(o).inserted, "\(o) defined twice") }
        }
        for o in m.graph.output { #expect(defined.contains(o.name)) }
    }

    @Test(arguments: models)
    func graphsHaveTheScriptsInterface(_ name: String) throws {
        let model = try Self.load(name), network = model.network
        let full = try Onnx_ModelProto(serializedBytes: try ONNXExporter.fullModel(network))
        #expect(full.irVersion == 8 && full.opsetImport.map(\.version) == [17] && full.opsetImport[0].domain.isEmpty)
        #expect(full.producerName == "branchy export-onnx" && full.graph.name == "\(model.spec.name).full")
        #expect(full.graph.input.map(\.name) == ["image"] && Self.dims(full.graph.input[0]) == ["N"] + model.spec.input.map(String.init))
        #expect(full.graph.output.map(\.name) == network.stages.map { "logits_\($0.exitName)" })
        #expect(full.graph.output.allSatisfy { Self.dims($0) == ["N", "\(model.spec.classes)"] })
        Self.checkOrder(full)
        for (i, stage) in network.stages.enumerated() {
            let m = try Onnx_ModelProto(serializedBytes: try ONNXExporter.stageModel(network, stage: i))
            #expect(m.graph.input.map(\.name) == ["input"] && Self.dims(m.graph.input[0]) == ["N"] + stage.inputShape.map(String.init))
            #expect(m.graph.output.map(\.name) == ["features", "logits"])
            #expect(Self.dims(m.graph.output[0]) == ["N"] + stage.outputShape.map(String.init))
            Self.checkOrder(m)
        }
    }

    /// b-resnet3's batch norms all follow convolutions: folded, none is left; unfolded, each is a node.
    @Test func batchNormsFoldedOrNot() throws {
        let network = try Self.load("b-resnet3").network
        let folded = try Onnx_ModelProto(serializedBytes: try ONNXExporter.fullModel(network))
        let unfolded = try Onnx_ModelProto(serializedBytes: try ONNXExporter.fullModel(network, foldBatchNorm: false))
        #expect(!folded.graph.node.contains { $0.opType == "BatchNormalization" })
        #expect(unfolded.graph.node.filter { $0.opType == "BatchNormalization" }.count == 11)
        #expect(folded.graph.initializer.contains { $0.name == "device.trunk.conv1.weight+device.trunk.bn1" })
    }

    /// LRN (alpha times the window), channel padding, sign and a binary linear layer, which the
    /// importer does not read back: their nodes and constants as the script writes them.
    @Test func operatorsTheImporterDoesNotRead() throws {
        let spec = ModelSpec(name: "binary", input: [4, 5, 5], classes: 3, stages: [
            StageSpec(name: "only", trunk: [.lrn(size: 3, alpha: 1e-3, beta: 0.75, k: 1), .padChannels(out: 6), .sign, .flatten,
                                            LayerSpec(op: "binlinear", name: "bl", out: 7)],
                      exit: ExitSpec(name: "out", layers: [.linear("fc", out: 3)])),
        ])
        let network = try ONNXExporterTests.randomized(spec)
        let m = try Onnx_ModelProto(serializedBytes: try ONNXExporter.fullModel(network))
        #expect(m.graph.node.map(\.opType) == ["LRN", "Pad", "GreaterOrEqual", "Where", "Flatten", "GreaterOrEqual", "Where",
                                               "Gemm", "Mul", "Add", "Gemm"])
        let lrn = Dictionary(uniqueKeysWithValues: m.graph.node[0].attribute.map { ($0.name, $0) })
        #expect(lrn["size"]?.i == 3 && lrn["alpha"]?.f == Float(Double(Float(1e-3)) * 3) && lrn["beta"]?.f == 0.75 && lrn["bias"]?.f == 1)
        let initializers = Dictionary(uniqueKeysWithValues: m.graph.initializer.map { ($0.name, $0) })
        let pads = try #require(initializers[m.graph.node[1].input[1]])
        #expect(pads.dataType == 7 && pads.rawData.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) } == [0, 2, 0, 0, 0, 0, 0, 0])
        func floats(_ name: String) throws -> [Float] {
            try #require(initializers[name]).rawData.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        let weight = try #require(network.namedTensors["only.trunk.bl.weight"])
        #expect(try floats("only.trunk.bl.alpha") == BinaryLinear.scales(weight: weight))
        #expect(try floats("only.trunk.bl.weight.sign") == weight.data.map(Sign.value))
        #expect(try floats("sign.1") == [1] && floats("sign.-1") == [-1] && floats("sign.0") == [0])
    }

    /// A layer of an op the exporter does not know: the stage, key path and op named.
    @Test func namesALayerWithoutAnONNXForm() throws {
        var g = ExportGraph(weights: [:], foldBatchNorm: true)
        g.stage = "edge"
        let odd = ExportLayer(spec: LayerSpec(op: "mystery"), input: [2, 3, 3], output: [2, 3, 3], nested: [], location: "trunk[2].layers[0]")
        let block = ExportLayer(spec: .residual("r", [LayerSpec(op: "mystery")]), input: [2, 3, 3], output: [2, 3, 3],
                                nested: [[odd], []], location: "trunk[2]")
        let error = #expect(throws: ExportError.self) { try g.layers([block], "x", prefix: "edge.trunk", scope: "edge.trunk") }
        #expect(error?.description == "stage 'edge', layer trunk[2].layers[0] (op 'mystery'): this operator has no ONNX export")
    }

    /// Key paths of nested layers follow model.json.
    @Test func locationsFollowTheDescription() throws {
        let model = try Self.load("mobilenet-exits")
        let stage = model.network.stages[0]
        let layers = ExportLayer.list(model.spec.stages[0].trunk, stage.trunk, at: "trunk")
        let block = try #require(layers.first { $0.spec.op == "residual" })
        #expect(block.nested.count == 2 && block.nested[0].first?.location == "\(block.location).layers[0]")
        #expect(block.nested[0].map(\.input.count).allSatisfy { $0 == 3 })
    }

    @Test func writesTheFileAndTheStages() throws {
        let dir = try ONNXImporterTests.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let network = try Self.load("b-lenet3").network
        let file = dir.appendingPathComponent("model.onnx"), stages = dir.appendingPathComponent("stages")
        let written = try ONNXExporter.write(network, to: file, stages: stages)
        #expect(written.map(\.lastPathComponent) == ["device.onnx", "edge.onnx", "cloud.onnx", "model.onnx"])
        #expect(try Data(contentsOf: file) == ONNXExporter.fullModel(network))
        #expect(try Data(contentsOf: stages.appendingPathComponent("edge.onnx")) == ONNXExporter.stageModel(network, stage: 1))
    }

    /// A write that fails part way (a stage's path is a folder) removes what it wrote and leaves no temporary file.
    @Test func failedWriteLeavesNothing() throws {
        let dir = try ONNXImporterTests.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let network = try Self.load("b-lenet3").network
        let stages = dir.appendingPathComponent("stages")
        try FileManager.default.createDirectory(at: stages.appendingPathComponent("edge.onnx"), withIntermediateDirectories: true)
        let error = #expect(throws: ExportFileError.self) {
            try ONNXExporter.write(network, to: dir.appendingPathComponent("model.onnx"), stages: stages)
        }
        #expect(error?.file == stages.appendingPathComponent("edge.onnx").path)
        #expect(error?.reason == "cannot rename the temporary file into place: Is a directory")
        #expect(try FileManager.default.contentsOfDirectory(atPath: stages.path) == ["edge.onnx"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["stages"])
    }
}
