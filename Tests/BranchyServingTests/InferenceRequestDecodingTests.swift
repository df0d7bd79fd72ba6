import BranchyServing
import Foundation
import Testing

/// Infer requests as tritonclient and curl send them, JSON and binary; every refusal with its status.
@Suite struct InferenceRequestDecodingTests {
    func decode(_ json: String, binary: [UInt8] = [], header: Bool? = nil, limits: InferenceRequest.Limits = .init()) throws(ServingError) -> InferenceRequest {
        let body = Array(json.utf8) + binary
        let jsonLength = (header ?? !binary.isEmpty) ? json.utf8.count : nil
        let result: Result<InferenceRequest, ServingError> = body.withUnsafeBytes { b in
            do throws(ServingError) { return .success(try InferenceRequest.decode(b, jsonLength: jsonLength, limits: limits)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    func refusal(_ json: String, binary: [UInt8] = [], header: Bool? = nil, limits: InferenceRequest.Limits = .init()) -> ServingError? {
        do { _ = try decode(json, binary: binary, header: header, limits: limits); return nil } catch { return error }
    }

    @Test func jsonDataFlatOrNested() throws {
        let flat = try decode(#"{"id":"r1","inputs":[{"name":"image","shape":[1,2,2],"datatype":"FP32","data":[0.5,1,2,3]}]}"#)
        #expect(flat.id == "r1" && flat.inputs.count == 1 && flat.outputs.isEmpty)
        #expect(flat.inputs[0].shape == [1, 2, 2] && flat.inputs[0].values == [0.5, 1, 2, 3] && !flat.inputs[0].binary)
        let nested = try decode(#"{"inputs":[{"name":"image","shape":[1,2,2],"datatype":"UINT8","data":[[[0,255],[7,8]]]}],"outputs":[{"name":"class"}]}"#)
        #expect(nested.inputs[0].values == [0, 255, 7, 8] && nested.inputs[0].datatype == .uint8)
        #expect(nested.outputs == [.init(name: "class", binary: false)])
    }

    @Test func binaryDataAsTritonClientSendsIt() throws {
        let values: [Float] = [0.25, -1, 3.5, 1e-3, 7, 8]
        var binary: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { binary += $0 } }
        binary += [1, 2, 3]   // a second input, UINT8
        let r = try decode(#"{"inputs":[{"name":"a","shape":[2,3],"datatype":"FP32","parameters":{"binary_data_size":24}},"#
            + #"{"name":"b","shape":[3],"datatype":"UINT8","parameters":{"binary_data_size":3}}],"#
            + #""outputs":[{"name":"class","parameters":{"binary_data":true}},{"name":"probabilities"}],"parameters":{"deadline_ms":50}}"#,
            binary: binary)
        #expect(r.inputs[0].values == values && r.inputs[0].binary && r.inputs[1].values == [1, 2, 3])
        #expect(r.outputs == [.init(name: "class", binary: true), .init(name: "probabilities", binary: false)])
        #expect(r.parameter("deadline_ms") == .number(50))
    }

    @Test func everyNumericTypeInBinary() throws {
        var binary: [UInt8] = []
        withUnsafeBytes(of: Int64(-5).littleEndian) { binary += $0 }
        withUnsafeBytes(of: Float16(1.5).bitPattern.littleEndian) { binary += $0 }
        withUnsafeBytes(of: Double(2.25).bitPattern.littleEndian) { binary += $0 }
        binary += [0xFF]
        let r = try decode(#"{"inputs":[{"name":"i","shape":[1],"datatype":"INT64","parameters":{"binary_data_size":8}},"#
            + #"{"name":"h","shape":[1],"datatype":"FP16","parameters":{"binary_data_size":2}},"#
            + #"{"name":"d","shape":[1],"datatype":"FP64","parameters":{"binary_data_size":8}},"#
            + #"{"name":"s","shape":[1],"datatype":"INT8","parameters":{"binary_data_size":1}}]}"#, binary: binary)
        #expect(r.inputs.map { $0.values[0] } == [-5, 1.5, 2.25, -1])
    }

    @Test(arguments: [
        (#"[1]"#, 400, "must be a JSON object"),
        (#"{"inputs":[]}"#, 400, "'inputs' must be a non-empty array"),
        (#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP33","data":[1,2]}]}"#, 400, "datatype 'FP33' is not one of"),
        (#"{"inputs":[{"name":"a","shape":[3],"datatype":"FP32","data":[1,2]}]}"#, 400, "has 2 elements, but shape [3] needs 3"),
        (#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1,2]}]}"#, 400, "more elements than its shape"),
        (#"{"inputs":[{"name":"a","shape":[-1],"datatype":"FP32","data":[]}]}"#, 400, "shape[0] must be a whole number"),
        (#"{"inputs":[{"name":"a","shape":[1],"datatype":"UINT8","data":[256]}]}"#, 400, "256.0 is not a UINT8 value"),
        (#"{"inputs":[{"name":"a","shape":[1],"datatype":"INT32","data":[1.5]}]}"#, 400, "1.5 is not a INT32 value"),
        (#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":["x"]}]}"#, 400, "a string where FP32 elements are expected"),
        (#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1e39]}]}"#, 400, "out of range for FP32"),
        (#"{"inputs":[{"name":"a","shape":[1],"datatype":"BOOL","data":[1]}]}"#, 400, "BOOL elements must be true or false"),
        (#"{"inputs":[{"name":"a","shape":[1],"datatype":"BYTES","data":["x"]}]}"#, 400, "BYTES tensors are not taken"),
        (#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32"}]}"#, 400, "neither 'data' nor parameters.binary_data_size"),
        (#"{"inputs":[{"name":"a","shape":[65536,65536,65536],"datatype":"FP32","data":[]}]}"#, 413, "has more than 4194304 elements"),
        (#"{"inputs":[{"name":"a","shape":[2147483647,2147483647,2147483647,2147483647],"datatype":"FP32","data":[]}]}"#, 413, "elements"),
        (#"{"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]}"#, 400, "inputs[0].name must be a string"),
        (#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"c","parameters":{"binary_data":1}}]}"#, 400, "binary_data must be a boolean"),
        (#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]}],"id":7}"#, 400, "'id' must be a string"),
        (#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]"#, 400, "not valid JSON"),
    ])
    func malformedRequestsAreNamed(json: String, status: Int, message: String) {
        let e = refusal(json)
        #expect(e?.status == status, "\(json)")
        #expect(e?.message.contains(message) == true, "\(e?.message ?? "accepted")")
    }

    @Test func binaryLengthsThatLie() {
        let json = #"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#
        #expect(refusal(json, binary: [0, 0, 0, 0])?.message.contains("only 4 bytes of binary data are left") == true)
        #expect(refusal(json, binary: [UInt8](repeating: 0, count: 12))?.message.contains("12 bytes of binary tensor data follow the JSON, but") == true)
        let wrongSize = #"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":6}}]}"#
        #expect(refusal(wrongSize, binary: [UInt8](repeating: 0, count: 6))?.message.contains("2 FP32 elements take 8") == true)
        let nan = [UInt8](repeating: 0xFF, count: 8)
        #expect(refusal(json, binary: nan)?.message.contains("not a finite FP32 value") == true)
        // A header length past the body.
        let r: ServingError? = Array(json.utf8).withUnsafeBytes { b -> ServingError? in
            do throws(ServingError) { _ = try InferenceRequest.decode(b, jsonLength: json.utf8.count + 1); return nil } catch { return error }
        }
        #expect(r?.status == 400 && r?.message.contains("Inference-Header-Content-Length is") == true)
    }

    @Test func oversizedBodiesAreRefusedFirst() {
        let json = #"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]}]}"#
        let e = refusal(json, limits: .init(maxBodyBytes: 16))
        #expect(e?.status == 413 && e?.message.contains("more than the limit of 16") == true)
    }
}
