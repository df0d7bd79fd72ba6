import BranchyData
import BranchyModel
import BranchyTensor
import Testing
@testable import BranchyTraining

@Suite struct EvaluatorTests {
    @Test func codecAppliesPerSample() {
        // Sample 0 spans [0, 1]; sample 1 spans [−1000, 1000]. Quantising the batch as one tensor
        // would crush sample 0 to a couple of levels; per sample, each keeps its own range.
        let small: [Float] = [0, 0.1, 0.25, 0.5, 0.75, 1]
        let large: [Float] = [-1000, -3, 0, 7, 500, 1000]
        let batch = Tensor(shape: [2, 2, 3], data: small + large)
        for codec in FeatureCodecKind.allCases {
            let out = Evaluator.codecPerSample(batch, codec)
            #expect(out.shape == [2, 2, 3])
            #expect(out.items(0..<1).data == codec.roundTrip(Tensor(shape: [2, 3], data: small)).data, "\(codec)")
            #expect(out.items(1..<2).data == codec.roundTrip(Tensor(shape: [2, 3], data: large)).data, "\(codec)")
        }
        let int8 = Evaluator.codecPerSample(batch, .int8)
        #expect(zip(int8.data.prefix(6), small).allSatisfy { abs($0 - $1) < 0.01 })
        #expect(int8 != FeatureCodecKind.int8.roundTrip(batch))
        #expect(Evaluator.codecPerSample(batch, .float32) == batch)
    }

    /// 20 synthetic 6×6 images, labels cycling through 0…2.
    static let data: IDXDataset = {
        var rng = SeededRandom(seed: 99)
        return IDXDataset(images: (0..<(20 * 36)).map { _ in rng.uniform(0, 1) }, labels: (0..<20).map { UInt8($0 % 3) },
                          rows: 6, cols: 6)
    }()

    func network() throws -> Network {
        let n = try Network(spec: TrainingFixture.tinySpec)
        n.initialize(seed: 4)
        return n
    }

    @Test func traceRunsEveryExitOnEverySample() throws {
        let network = try network()
        let trace = try Evaluator.trace(network: network, data: Self.data, batchSize: 7)
        #expect(trace.exitNames == ["exit-a", "exit-b"])
        #expect(trace.samples == 20)
        #expect(trace.labels == (0..<20).map { $0 % 3 })
        #expect(trace.outputs.map(\.count) == [20, 20])

        // Same as running the whole set as one batch by hand.
        let x = Tensor(shape: [20, 1, 6, 6], data: Self.data.images)
        let f0 = network.trunk(0, x)
        #expect(trace.outputs[0] == network.classify(exit: 0, features: f0))
        #expect(trace.outputs[1] == network.classify(exit: 1, features: network.trunk(1, f0)))

        // Batch size does not matter; limit takes a prefix.
        let whole = try Evaluator.trace(network: network, data: Self.data)
        #expect(whole.outputs == trace.outputs)
        let limited = try Evaluator.trace(network: network, data: Self.data, limit: 5, batchSize: 2)
        #expect(limited.samples == 5)
        #expect(limited.outputs.map { Array($0) } == trace.outputs.map { Array($0.prefix(5)) })
    }

    @Test func imagesOfAnotherSizeAreAnError() throws {
        // 5×5 images for a model on 1×6×6 inputs used to fail a precondition deep in the batch.
        let other = IDXDataset(images: [Float](repeating: 0, count: 4 * 25), labels: [0, 1, 2, 0], rows: 5, cols: 5)
        let error = #expect(throws: TrainingError.self) { try Evaluator.trace(network: try network(), data: other) }
        #expect(error?.description == "the data set's images are 1×5×5, but model tiny expects [1, 6, 6]")
    }

    @Test func traceSendsFeaturesThroughTheCodec() throws {
        let network = try network()
        let plain = try Evaluator.trace(network: network, data: Self.data, batchSize: 8)
        let int8 = try Evaluator.trace(network: network, data: Self.data, codec: .int8, batchSize: 8)
        // The first exit sees the trunk output directly; later stages see the decoded features.
        #expect(int8.outputs[0] == plain.outputs[0])
        let x = Tensor(shape: [20, 1, 6, 6], data: Self.data.images)
        let f0 = Evaluator.codecPerSample(network.trunk(0, x), .int8)
        #expect(int8.outputs[1] == network.classify(exit: 1, features: network.trunk(1, f0)))
    }
}
