import BranchyServing
import Testing

/// The model metadata and Triton's configuration, as tritonclient and perf_analyzer read them.
@Suite struct ModelMetadataTests {
    let metadata = ModelMetadata(
        name: "b-resnet3",
        inputs: [.init(name: "image", datatype: .fp32, shape: [-1, 1, 28, 28])],
        outputs: [.init(name: "class", datatype: .int64, shape: [-1]), .init(name: "probabilities", datatype: .fp32, shape: [-1, 10])],
        maxBatchSize: 64)

    @Test func modelMetadataResponse() throws {
        let v = try self.metadata.metadataJSON.withUnsafeBytes { try JSONReader.parse($0) }
        #expect(v["name"] == .string("b-resnet3") && v["versions"] == .array([.string("1")]) && v["platform"] == .string("branchy"))
        #expect(v["inputs"] == .array([.object([("name", .string("image")), ("datatype", .string("FP32")),
                                                 ("shape", .array([.number(-1), .number(1), .number(28), .number(28)]))])]))
        guard case .array(let outputs)? = v["outputs"] else { Issue.record("no outputs"); return }
        #expect(outputs.count == 2 && outputs[1]["shape"] == .array([.number(-1), .number(10)]))
    }

    @Test func tritonConfigDropsTheBatchDimension() throws {
        let v = try self.metadata.configJSON.withUnsafeBytes { try JSONReader.parse($0) }
        #expect(v["max_batch_size"] == .number(64))
        guard case .array(let inputs)? = v["input"], case .array(let outputs)? = v["output"] else { Issue.record("no tensors"); return }
        #expect(inputs[0]["data_type"] == .string("TYPE_FP32") && inputs[0]["dims"] == .array([.number(1), .number(28), .number(28)]))
        #expect(outputs[0]["data_type"] == .string("TYPE_INT64") && outputs[0]["dims"] == .array([]))
        #expect(outputs[1]["dims"] == .array([.number(10)]))
    }
}
