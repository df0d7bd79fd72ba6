import Foundation
import Testing
@testable import BranchyModel

/// Sizes in a model description are checked against the limits before any tensor is allocated:
/// each of these descriptions used to abort the process with "failed to allocate" or an
/// arithmetic overflow instead of failing with an error.
@Suite struct ModelLimitsTests {
    let file = "models/huge/model.json"

    /// Building `spec` fails at `location` with a reason containing every string of `reasons`.
    func expectError(_ spec: ModelSpec, at location: String, _ reasons: String...,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        guard let error = ModelFixture.buildError(spec, file: file) else {
            Issue.record("expected a ModelError at \(location)", sourceLocation: sourceLocation)
            return
        }
        #expect(error.file == file, sourceLocation: sourceLocation)
        #expect(error.location == location, sourceLocation: sourceLocation)
        for reason in reasons {
            #expect(error.reason.contains(reason), "reason: \(error.reason)", sourceLocation: sourceLocation)
        }
    }

    /// A one-stage model on `input` with `trunk`, whose exit flattens and classifies into 3 classes.
    func oneStage(input: [Int], trunk: [LayerSpec], exit: [LayerSpec]? = nil) -> ModelSpec {
        ModelSpec(name: "huge", input: input, classes: 3, stages: [
            StageSpec(name: "a", trunk: trunk, exit: ExitSpec(name: "exit", layers: exit ?? [.flatten, .linear("fc", out: 3)])),
        ])
    }

    @Test func limitsAreTheDocumentedValues() {
        #expect(ModelLimits.maxSize == 1 << 24)
        #expect(ModelLimits.maxTensorElements == 1 << 25)
        #expect(ModelLimits.maxNesting == 8)
        #expect(ModelLimits.maxFeatureElements == 1 << 22)
        #expect(ModelLimits.maxParameters == 1 << 28)
    }

    @Test func hugeLayerWidth() {
        let spec = oneStage(input: [1, 6, 6], trunk: [], exit: [.flatten, .linear("fc", out: 1 << 40), .linear("out", out: 3)])
        expectError(spec, at: "stages[0].exit.layers[1].out", "1099511627776 exceeds the limit of 16777216")
    }

    @Test func hugeInputDimensions() {
        let spec = oneStage(input: [2_147_483_648, 2_147_483_648, 2_147_483_648], trunk: [])
        expectError(spec, at: "input[0]", "2147483648 exceeds the limit of 16777216")
    }

    @Test func inputWithTooManyValues() {
        let spec = oneStage(input: [4096, 4096, 4096], trunk: [])
        expectError(spec, at: "input", "[4096, 4096, 4096]", "more than the limit of 4194304")
    }

    @Test func tooManyClasses() {
        var spec = oneStage(input: [1, 6, 6], trunk: [])
        spec.classes = 1 << 40
        expectError(spec, at: "classes", "1099511627776 exceeds the limit of 16777216")
    }

    @Test(arguments: ["kernel", "stride", "pad"])
    func hugeWindowSizes(field: String) {
        var conv = LayerSpec.conv("c", out: 2, kernel: 3, pad: 1)
        var pool = LayerSpec.maxPool(2)
        switch field {
        case "kernel": conv.kernel = 1 << 62; pool.kernel = 1 << 62
        case "stride": conv.stride = 1 << 62; pool.stride = 1 << 62
        default: conv.pad = 1 << 62; pool.pad = 1 << 62
        }
        expectError(oneStage(input: [1, 6, 6], trunk: [conv]), at: "stages[0].trunk[0].\(field)",
                    "4611686018427387904 exceeds the limit of 16777216")
        expectError(oneStage(input: [1, 6, 6], trunk: [pool]), at: "stages[0].trunk[0].\(field)",
                    "4611686018427387904 exceeds the limit of 16777216")
    }

    @Test func convWeightTooLarge() {
        let spec = oneStage(input: [1024, 8, 8], trunk: [.conv("c", out: 1024, kernel: 6, pad: 2)])
        expectError(spec, at: "stages[0].trunk[0]", "weight [1024, 1024, 6, 6]", "more than the limit of 33554432")
    }

    @Test func convWeightCountOverflows() {
        // Every size is within the limit, but out × in × kernel × kernel overflows Int.
        let spec = oneStage(input: [1, 1, 1], trunk: [.conv("c", out: 1 << 24, kernel: 1 << 24, pad: 1 << 23)])
        expectError(spec, at: "stages[0].trunk[0]", "weight [16777216, 1, 16777216, 16777216]", "more than the limit of 33554432")
    }

    @Test func convOutputTooLarge() {
        let spec = oneStage(input: [1, 2048, 2048], trunk: [.conv("c", out: 2, kernel: 1)])
        expectError(spec, at: "stages[0].trunk[0]", "output [2, 2048, 2048]", "more than the limit of 4194304")
    }

    @Test func convWorkspaceTooLarge() {
        // The im2col buffer of one sample is (64·3·3) × (256·256) values: 37,748,736.
        let spec = oneStage(input: [64, 256, 256], trunk: [.conv("c", out: 1, kernel: 3, pad: 1)])
        expectError(spec, at: "stages[0].trunk[0]", "workspace", "more than the limit of 33554432")
    }

    @Test func linearWeightTooLarge() {
        let spec = oneStage(input: [1, 64, 64], trunk: [], exit: [.flatten, .linear("fc", out: 8193), .linear("out", out: 3)])
        expectError(spec, at: "stages[0].exit.layers[1]", "weight [8193, 4096]", "more than the limit of 33554432")
    }

    @Test func tooManyParametersInAll() {
        // Sixteen 4096 × 4096 layers: each weight is within the per-tensor limit, all of them are not.
        let hidden = (0..<16).map { LayerSpec.linear("fc\($0)", out: 4096) }
        let spec = oneStage(input: [1, 64, 64], trunk: [], exit: [.flatten] + hidden + [.linear("out", out: 3)])
        expectError(spec, at: "stages[0].exit.layers[16]", "more than the limit of 268435456 parameters")
    }
}

/// Syntax errors point at the byte that is wrong.
@Suite struct StrictJSONOffsetTests {
    static func offset(of text: [UInt8]) -> Int? {
        do {
            _ = try text.withUnsafeBytes { try StrictJSON.parse($0) }
            return nil
        } catch let e as StrictJSON.SyntaxError {
            return e.offset
        } catch {
            return nil
        }
    }

    @Test func aControlCharacterInAStringIsReportedWhereItIs() {
        // {"a":"x<TAB>"}: the tab is byte 7.
        #expect(Self.offset(of: Array("{\"a\":\"x".utf8) + [0x09] + Array("\"}".utf8)) == 7)
    }

    @Test func anInvalidEscapeIsReportedAtItsBackslash() {
        // {"a":"\q"}: the backslash is byte 6.
        #expect(Self.offset(of: Array("{\"a\":\"\\q\"}".utf8)) == 6)
    }
}
