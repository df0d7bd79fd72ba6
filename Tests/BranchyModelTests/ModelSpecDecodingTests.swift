import Foundation
import Testing
@testable import BranchyModel

/// A model.json of the wrong types or with unknown names fails with an error that names the
/// file, the field and the value found there.
@Suite struct ModelSpecDecodingTests {
    /// A valid one-stage model.json with `input`, a trunk of `trunk` and `defaults` (raw JSON).
    func json(input: String = "[1, 6, 6]", trunk: String = "[]", defaults: String? = nil) -> String {
        """
        {"name": "tiny", "input": \(input), "classes": 3, \(defaults.map { "\"defaults\": \($0), " } ?? "")"stages": [
          {"name": "a", "trunk": \(trunk),
           "exit": {"name": "exit-a", "layers": [{"op": "flatten"}, {"op": "linear", "name": "fc", "out": 3}]}}
        ]}
        """
    }

    /// Reading `text` as model.json fails with exactly `description` (after the file's path).
    func expectError(_ text: String, _ description: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let dir = try ScratchDirectory()
        let url = dir.path("model.json")
        try Data(text.utf8).write(to: url)
        do {
            let spec = try Model.readSpec(url)
            _ = try Network(spec: spec, file: url.path)
            Issue.record("reading succeeded", sourceLocation: sourceLocation)
        } catch {
            #expect("\(error)" == "\(url.path): \(description)", sourceLocation: sourceLocation)
        }
    }

    @Test func theValidDescriptionReads() throws {
        let dir = try ScratchDirectory()
        let url = dir.path("model.json")
        try Data(json(defaults: #"{"thresholds": [], "codec": "int8"}"#).utf8).write(to: url)
        let spec = try Model.readSpec(url)
        #expect(spec.input == [1, 6, 6])
        _ = try Network(spec: spec, file: url.path)
    }

    @Test func unknownCodec() throws {
        try expectError(json(defaults: #"{"thresholds": [], "codec": "bf12"}"#),
                        "defaults.codec: unknown codec 'bf12' (expected float32, float16, int8, uint8, int8-channel, int4 or sign)")
    }

    @Test func unknownCodecInASpecBuiltInCode() {
        var spec = ModelFixture.tiny
        spec.defaults = .init(thresholds: [0.5], codec: "float8")
        let error = ModelFixture.buildError(spec)
        #expect(error?.location == "defaults.codec")
        #expect(error?.reason == "unknown codec 'float8' (expected float32, float16, int8, uint8, int8-channel, int4 or sign)")
    }

    @Test func fractionWhereAnIntegerBelongs() throws {
        try expectError(json(input: "[1, 28.5, 28]"), "input[1]: expected an integer, got 28.5")
    }

    @Test func integerTooLargeForInt() throws {
        try expectError(json(input: "[1, 99999999999999999999, 28]"), "input[1]: expected an integer, got 99999999999999999999")
        try expectError(json(input: "[1, 1e30, 28]"), "input[1]: expected an integer, got 1e30")
    }

    @Test func stringWhereAnIntegerBelongs() throws {
        try expectError(json(trunk: #"[{"op": "relu"}, {"op": "conv", "name": "c1", "out": "three", "kernel": 3}]"#),
                        #"stages[0].trunk[1].out: expected an integer, got "three""#)
    }

    @Test func wrongContainerTypes() throws {
        try expectError(json(input: #""28x28""#), #"input: expected an array, got "28x28""#)
        try expectError(json(trunk: #"[{"op": "relu"}, 7]"#), "stages[0].trunk[1]: expected an object, got 7")
        try expectError(json(trunk: #"{"op": "relu"}"#), "stages[0].trunk: expected an array, got an object")
    }

    @Test func otherScalarTypes() throws {
        try expectError(json(trunk: #"[{"op": 3}]"#), "stages[0].trunk[0].op: expected a string, got 3")
        try expectError(json(trunk: #"[{"op": "maxpool", "kernel": 2, "ceil": 1}]"#), "stages[0].trunk[0].ceil: expected a boolean, got 1")
        try expectError(json(defaults: #"{"thresholds": ["low"]}"#), #"defaults.thresholds[0]: expected a number, got "low""#)
        try expectError(json(defaults: #"{"thresholds": [1e300]}"#), "defaults.thresholds[0]: expected a number that fits Float, got 1e300")
    }

    @Test func nullAndMissingValues() throws {
        try expectError(json(input: "null"), "input: expected an array, got null")
        try expectError(json(input: "[1, null, 28]"), "input[1]: expected an integer, got null")
        try expectError(#"{"name": "x", "input": [1, 6, 6], "stages": []}"#, "classes: missing key 'classes'")
    }

    @Test func syntaxErrorsHaveNoField() throws {
        let dir = try ScratchDirectory()
        let url = dir.path("model.json")
        try Data(#"{"name": "x", "input": [1, 6, 6], "#.utf8).write(to: url)
        #expect(throws: ModelError.self) { try Model.readSpec(url) }
        do { _ = try Model.readSpec(url) } catch let error as ModelError {
            #expect(error.location == nil)
            #expect(error.reason.hasPrefix("not valid JSON"))
        }
    }
}
