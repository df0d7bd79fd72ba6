import Foundation
import Testing
@testable import BranchyModel

/// The registry of operators: one entry per `op`, each key it claims a real key of the
/// description, and the shipped descriptions unchanged by decoding and encoding.
@Suite struct OperatorRegistryTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A description that sets every field.
    static let everyField = LayerSpec(op: "x", name: "n", out: 1, kernel: 1, stride: 1, pad: 0, ceil: true, bias: true, epsilon: 1,
                                      momentum: 0.5, size: 1, alpha: 1, beta: 1, k: 1, layers: [], shortcut: [], groups: 1,
                                      dilation: 1, min: 0, max: 1, merge: "add", branches: [])

    @Test func everyOperatorOnce() {
        let ops = Operators.all.map { $0.op }
        #expect(Set(ops).count == ops.count, "an op registered twice: \(ops)")
        #expect(ops.allSatisfy { !$0.isEmpty && $0 == $0.lowercased() })
        for op in ops { #expect(Operators.named(op)?.op == op) }
        #expect(Operators.named("softmax") == nil)
        #expect(Operators.names == ops.dropLast().joined(separator: ", ") + " or " + ops.last!)
        // The operators before HardSwish keep their places (error messages list them in this order).
        #expect(ops.prefix(13) == ["conv", "maxpool", "avgpool", "relu", "flatten", "linear", "batchnorm", "residual", "lrn",
                                   "padchannels", "sign", "binlinear", "hardswish"])
    }

    @Test func exclusiveKeysAreKeysOfOneOperator() {
        let keys = Operators.all.flatMap { $0.exclusiveKeys }
        #expect(Set(keys).count == keys.count, "a key claimed twice: \(keys)")
        #expect(Set(keys).isSubset(of: Self.everyField.keysSet))
        #expect(Self.everyField.keysSet.count == 22)
    }

    @Test func keysSetNamesTheJSONKeys() throws {
        let conv = LayerSpec.conv("c", out: 2, kernel: 3)
        #expect(conv.keysSet == ["op", "name", "out", "kernel", "pad"])
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(Self.everyField)) as! [String: Any]
        #expect(Set(json.keys) == Set(Self.everyField.keysSet))
    }

    /// Every shipped model.json decodes and encodes (as `Model.save` writes it) to its own bytes.
    @Test(arguments: ["b-lenet", "b-lenet3", "b-lenet3-bin", "b-resnet3"])
    func shippedDescriptionsRoundTrip(name: String) throws {
        let url = Self.root.appendingPathComponent("models/\(name)/model.json")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        #expect(try encoder.encode(Model.readSpec(url)) == Data(contentsOf: url))
    }

    @Test func anUnknownOpListsEveryOperator() {
        let spec = ModelSpec(name: "t", input: [1, 4, 4], classes: 2, stages: [
            StageSpec(name: "a", trunk: [LayerSpec(op: "gelu")], exit: ExitSpec(name: "e", layers: [.flatten, .linear("fc", out: 2)])),
        ])
        let error = ModelFixture.buildError(spec)
        #expect(error?.location == "stages[0].trunk[0].op")
        #expect(error?.reason == "unknown op 'gelu' (expected \(Operators.names))")
        #expect(error?.reason.contains("conv, maxpool, avgpool, relu, flatten, linear, batchnorm, residual, lrn, padchannels, "
            + "sign, binlinear") == true)
    }

    @Test func aKeyOfAnotherOperatorIsRefused() {
        let spec = ModelSpec(name: "t", input: [1, 4, 4], classes: 2, stages: [
            StageSpec(name: "a", trunk: [LayerSpec(op: "hardswish", size: 3)],
                      exit: ExitSpec(name: "e", layers: [.flatten, .linear("fc", out: 2)])),
        ])
        let error = ModelFixture.buildError(spec)
        #expect(error?.location == "stages[0].trunk[0].size")
        #expect(error?.reason == "'size' belongs to 'lrn' layers only, not to 'hardswish'")
    }
}
