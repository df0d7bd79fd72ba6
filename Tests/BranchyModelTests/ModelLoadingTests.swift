import BranchyTensor
import Foundation
import Testing
@testable import BranchyModel

@Suite struct ModelLoadingTests {
    /// A saved random `tinyBatchNorm` model in a fresh scratch directory.
    func savedModel() throws -> (dir: ScratchDirectory, model: Model, network: Network) {
        let dir = try ScratchDirectory()
        let network = try ModelFixture.randomNetwork(ModelFixture.tinyBatchNorm, seed: 42)
        let model = try Model.save(network, to: dir.url, metadata: ["arch": "tiny-bn"])
        return (dir, model, network)
    }

    func specURL(_ dir: ScratchDirectory) -> URL { dir.path(Model.specFileName) }
    func weightsURL(_ dir: ScratchDirectory) -> URL { dir.path(Model.weightsFileName) }

    /// Rewrites the weights file of `dir` with `tensors`.
    func writeWeights(_ tensors: [String: Tensor], in dir: ScratchDirectory) throws {
        try SafeTensors.write(tensors, to: weightsURL(dir))
    }

    /// Loading `dir` fails with a `ModelError` for `file` at `location` whose reason contains `reason`.
    func expectModelError(_ dir: ScratchDirectory, file: URL, location: String?, _ reason: String,
                          sourceLocation: SourceLocation = #_sourceLocation) {
        guard let error = ModelFixture.loadError(dir.url) else {
            Issue.record("loading succeeded", sourceLocation: sourceLocation)
            return
        }
        guard let e = error as? ModelError else {
            Issue.record("expected a ModelError, got \(error)", sourceLocation: sourceLocation)
            return
        }
        #expect(e.file == file.path, sourceLocation: sourceLocation)
        #expect(e.location == location, sourceLocation: sourceLocation)
        #expect(e.reason.contains(reason), "reason: \(e.reason)", sourceLocation: sourceLocation)
        #expect(e.description.hasPrefix(file.path + ": " + (location.map { $0 + ": " } ?? "")), sourceLocation: sourceLocation)
    }

    // MARK: Round trip and fingerprint

    @Test func saveAndLoadRoundTrip() throws {
        let (dir, saved, network) = try savedModel()
        let loaded = try Model.load(directory: dir.url)
        #expect(loaded.spec == ModelFixture.tinyBatchNorm)
        #expect(loaded.network.namedTensors == network.namedTensors)
        #expect(saved.network.namedTensors == network.namedTensors)
        #expect(loaded.directory == dir.url)

        // The loaded network computes what the saved one does.
        let x = ModelFixture.randomInput([1, 6, 6], count: 3, seed: 5)
        for i in 0..<2 {
            let a = network.exitLogits(i, (0...i).reduce(x) { network.trunk($1, $0) })
            let b = loaded.network.exitLogits(i, (0...i).reduce(x) { loaded.network.trunk($1, $0) })
            #expect(a == b)
        }
        // Metadata passes through to the weights file.
        #expect(try SafeTensors.read(contentsOf: weightsURL(dir)).metadata == ["arch": "tiny-bn"])
    }

    @Test func fingerprintIsSHA256OfBothFiles() throws {
        let (dir, saved, _) = try savedModel()
        let specBytes = try Data(contentsOf: specURL(dir))
        let weightBytes = try Data(contentsOf: weightsURL(dir))
        let expected = SHA256.hash(specBytes + weightBytes)
        #expect(saved.fingerprint == expected)
        #expect(saved.fingerprint.count == 32)
        #expect(saved.fingerprintHex == SHA256.hex(expected))
        #expect(saved.fingerprintHex.count == 64)

        let first = try Model.load(directory: dir.url)
        let second = try Model.load(directory: dir.url)
        #expect(first.fingerprint == expected)
        #expect(second.fingerprint == expected)

        // Saving the same network again writes the same bytes.
        let other = try ScratchDirectory()
        let resaved = try Model.save(first.network, to: other.url, metadata: ["arch": "tiny-bn"])
        #expect(resaved.fingerprint == expected)
    }

    @Test func changingOneWeightChangesTheFingerprint() throws {
        let (dir, saved, network) = try savedModel()
        var w = network.namedTensors["b.exit.fc2.weight"]!
        w.data[4] = w.data[4].nextUp
        network.assign("b.exit.fc2.weight", w)
        let changed = try Model.save(network, to: dir.url, metadata: ["arch": "tiny-bn"])
        #expect(changed.fingerprint != saved.fingerprint)

        // So does changing a batch-norm statistic, or only the description's formatting.
        let (dir2, saved2, network2) = try savedModel()
        network2.assign("a.trunk.bn1.running_var", Tensor(shape: [3], data: [1, 1, 1]))
        #expect(try Model.save(network2, to: dir2.url, metadata: ["arch": "tiny-bn"]).fingerprint != saved2.fingerprint)

        let (dir3, saved3, _) = try savedModel()
        let json = try Data(contentsOf: specURL(dir3))
        try (json + Data("\n".utf8)).write(to: specURL(dir3))
        #expect(try Model.load(directory: dir3.url).fingerprint != saved3.fingerprint)
    }

    // MARK: Weights file errors

    @Test func missingTensor() throws {
        let (dir, _, network) = try savedModel()
        var tensors = network.namedTensors
        tensors["b.trunk.c2.weight"] = nil
        try writeWeights(tensors, in: dir)
        expectModelError(dir, file: weightsURL(dir), location: "b.trunk.c2.weight", "tensor missing (the model file needs it with shape [4, 3, 2, 2])")
    }

    @Test func missingStatistic() throws {
        let (dir, _, network) = try savedModel()
        var tensors = network.namedTensors
        tensors["b.exit.bn3.running_mean"] = nil
        try writeWeights(tensors, in: dir)
        expectModelError(dir, file: weightsURL(dir), location: "b.exit.bn3.running_mean", "tensor missing")
    }

    @Test func misShapedTensor() throws {
        let (dir, _, network) = try savedModel()
        var tensors = network.namedTensors
        tensors["a.exit.fc.weight"] = tensors["a.exit.fc.weight"]!.reshaped([27, 3])
        try writeWeights(tensors, in: dir)
        expectModelError(dir, file: weightsURL(dir), location: "a.exit.fc.weight", "shape [27, 3] does not match the model file's [3, 27]")
    }

    @Test func extraTensor() throws {
        let (dir, _, network) = try savedModel()
        var tensors = network.namedTensors
        tensors["a.exit.fc2.weight"] = Tensor(shape: [3, 3])
        try writeWeights(tensors, in: dir)
        expectModelError(dir, file: weightsURL(dir), location: "a.exit.fc2.weight", "tensor not described by model.json")
    }

    @Test func nonFiniteValue() throws {
        let (dir, _, network) = try savedModel()
        for bad: Float in [.nan, .infinity, -.infinity] {
            var tensors = network.namedTensors
            tensors["b.exit.fc1.bias"]!.data[2] = bad
            try writeWeights(tensors, in: dir)
            expectModelError(dir, file: weightsURL(dir), location: "b.exit.fc1.bias", "element 2 is not finite")
        }
    }

    @Test func truncatedWeightsFile() throws {
        let (dir, _, _) = try savedModel()
        let bytes = try Data(contentsOf: weightsURL(dir))
        // Tensors are laid out by name, so the last bytes belong to the last name.
        try bytes.prefix(bytes.count - 4).write(to: weightsURL(dir))
        let error = try #require(ModelFixture.loadError(dir.url))
        let text = "\(error)"
        #expect(text.hasPrefix(weightsURL(dir).path + ": "))
        #expect(text.contains("tensor 'b.trunk.c2.weight'"))
        #expect(text.contains("outside the"))

        // Cut inside the header: the error still names the file.
        try bytes.prefix(20).write(to: weightsURL(dir))
        let short = try #require(ModelFixture.loadError(dir.url))
        #expect("\(short)".hasPrefix(weightsURL(dir).path + ": header length"))
    }

    @Test func corruptHeader() throws {
        let (dir, _, _) = try savedModel()
        var bytes = [UInt8](try Data(contentsOf: weightsURL(dir)))
        bytes[8] = UInt8(ascii: "[") // the header's opening brace
        try Data(bytes).write(to: weightsURL(dir))
        let error = try #require(ModelFixture.loadError(dir.url))
        #expect("\(error)".hasPrefix(weightsURL(dir).path + ": header is not valid JSON"))

        // A header naming a tensor with a bad dtype names the tensor too.
        let header = #"{"a.trunk.c1.bias":{"dtype":"Q4","shape":[3],"data_offsets":[0,12]}}"#
        var file = [UInt8]()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { file += $0 }
        file += Array(header.utf8) + [UInt8](repeating: 0, count: 12)
        try Data(file).write(to: weightsURL(dir))
        let dtype = try #require(ModelFixture.loadError(dir.url))
        #expect("\(dtype)".hasPrefix(weightsURL(dir).path + ": tensor 'a.trunk.c1.bias': unsupported dtype 'Q4'"))
    }

    @Test func missingWeightsFile() throws {
        let (dir, _, _) = try savedModel()
        try FileManager.default.removeItem(at: weightsURL(dir))
        let error = try #require(ModelFixture.loadError(dir.url))
        #expect("\(error)" == weightsURL(dir).path + ": no such file")
    }

    // MARK: Description file errors

    @Test func missingModelFile() throws {
        let (dir, _, _) = try savedModel()
        try FileManager.default.removeItem(at: specURL(dir))
        expectModelError(dir, file: specURL(dir), location: nil, "cannot read model file")
    }

    /// Replaces model.json with `json` and expects an error at `location`.
    func expectJSONError(_ json: String, at location: String?, _ reason: String,
                         sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (dir, _, _) = try savedModel()
        try Data(json.utf8).write(to: specURL(dir))
        expectModelError(dir, file: specURL(dir), location: location, reason, sourceLocation: sourceLocation)
    }

    /// A model.json for `tiny` whose stage-0 trunk is `trunk` (raw JSON).
    func tinyJSON(trunk: String, input: String = "[1, 6, 6]") -> String {
        """
        {"name": "tiny", "input": \(input), "classes": 3, "stages": [
          {"name": "a", "trunk": \(trunk),
           "exit": {"name": "exit-a", "layers": [{"op": "flatten"}, {"op": "linear", "name": "fc", "out": 3}]}}
        ]}
        """
    }

    @Test func malformedJSONNamesTheKeyPath() throws {
        try expectJSONError(tinyJSON(trunk: #"[{"op": "relu"}, {"op": "conv", "name": "c1", "out": "three", "kernel": 3}]"#),
                            at: "stages[0].trunk[1].out", "expected an integer, got \"three\"")
        try expectJSONError(tinyJSON(trunk: #"[{"op": "relu"}, {"name": "c1", "out": 3, "kernel": 3}]"#),
                            at: "stages[0].trunk[1].op", "missing key 'op'")
        try expectJSONError(tinyJSON(trunk: #"[{"op": "relu"}, 7]"#),
                            at: "stages[0].trunk[1]", "expected")
        try expectJSONError(tinyJSON(trunk: "[]", input: #""28x28""#), at: "input", "expected an array, got \"28x28\"")
        try expectJSONError(#"{"name": "x", "input": [1, 6, 6], "stages": []}"#, at: "classes", "missing key 'classes'")
        try expectJSONError(#"{"name": "x", "input": [1, 6, 6], "classes": 3, "stages": ["#, at: nil, "not valid JSON")
        try expectJSONError("", at: nil, "not valid JSON")
    }

    @Test func hugeSizesFailBeforeAnythingIsAllocated() throws {
        try expectJSONError(tinyJSON(trunk: #"[{"op": "conv", "name": "c1", "out": 1099511627776, "kernel": 3}]"#),
                            at: "stages[0].trunk[0].out", "1099511627776 exceeds the limit of 16777216")
        try expectJSONError(tinyJSON(trunk: "[]", input: "[2147483648, 2147483648, 2147483648]"),
                            at: "input[0]", "2147483648 exceeds the limit of 16777216")
    }

    @Test func unusablePreprocessingIsNamed() throws {
        func withPreprocessing(_ p: String) -> String {
            tinyJSON(trunk: "[]").replacingOccurrences(of: #""classes": 3,"#, with: #""classes": 3, "preprocessing": \#(p),"#)
        }
        try expectJSONError(withPreprocessing(#"{"mean": [0.5, 0.5]}"#), at: nil, "preprocessing: mean has 2 values")
        try expectJSONError(withPreprocessing(#"{"std": [0]}"#), at: nil, "preprocessing: std must be positive")
        try expectJSONError(withPreprocessing(#"{"resize": [0]}"#), at: nil, "preprocessing: resize must be")
        try expectJSONError(withPreprocessing(#"{"channel_order": "grb"}"#), at: "preprocessing.channel_order", "grb")
    }

    @Test func invalidDescriptionNamesTheModelFile() throws {
        // Valid JSON describing an invalid network: the Network error names model.json's path.
        try expectJSONError(tinyJSON(trunk: #"[{"op": "relu"}, {"op": "softmax"}]"#),
                            at: "stages[0].trunk[1].op", "unknown op 'softmax'")
    }

    @Test func descriptionOfAnotherModel() throws {
        // The weights of tiny-bn do not fit the description of tiny.
        let (dir, _, _) = try savedModel()
        let encoder = JSONEncoder()
        try encoder.encode(ModelFixture.tiny).write(to: specURL(dir))
        expectModelError(dir, file: weightsURL(dir), location: "b.trunk.c2.bias", "tensor missing")
    }
}
