import BranchyServing
import Testing

/// Responses: JSON outputs, binary outputs after the JSON with its length, and the error body.
@Suite struct InferenceResponseTests {
    @Test func jsonOutputs() throws {
        let r = InferenceResponse(modelName: "b-resnet3", modelVersion: "1", id: "r\"1",
                                  parameters: [("exit", .string("edge-exit")), ("upward_bytes", .number(1234))],
                                  outputs: [.init(name: "class", shape: [1], values: .int64([3])),
                                            .init(name: "probabilities", shape: [1, 3], values: .fp32([0.25, 0.5, 0.25]))])
        let (body, jsonLength) = r.encoded()
        #expect(jsonLength == nil)
        let v = try body.withUnsafeBytes { try JSONReader.parse($0) }
        #expect(v["model_name"] == .string("b-resnet3") && v["id"] == .string("r\"1"))
        #expect(v["parameters"]?["upward_bytes"] == .number(1234))
        #expect(String(decoding: body, as: UTF8.self).contains(#"{"name":"class","datatype":"INT64","shape":[1],"data":[3]}"#))
        #expect(String(decoding: body, as: UTF8.self).contains(#""data":[0.25,0.5,0.25]"#))
    }

    @Test func binaryOutputsFollowTheJSON() throws {
        let r = InferenceResponse(modelName: "m", outputs: [.init(name: "class", shape: [2], values: .int64([3, -1]), binary: true),
                                                           .init(name: "probabilities", shape: [2, 1], values: .fp32([1, 0.5]), binary: true)])
        let (body, jsonLength) = r.encoded()
        let n = try #require(jsonLength)
        let json = try body[0..<n].withUnsafeBytes { try JSONReader.parse($0) }
        guard case .array(let outs)? = json["outputs"] else { Issue.record("no outputs"); return }
        #expect(outs[0]["parameters"]?["binary_data_size"] == .number(16) && outs[1]["parameters"]?["binary_data_size"] == .number(8))
        #expect(outs[0]["data"] == nil)
        #expect(Array(body[n...]) == [3, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0x80, 0x3F, 0, 0, 0, 0x3F])
    }

    @Test func errorBody() throws {
        let e = ServingError.notFound("no model \"x\"")
        #expect(String(decoding: e.body, as: UTF8.self) == #"{"error":"no model \"x\""}"#)
        #expect(e.status == 404)
    }
}
