import BranchyFrontDoor
@testable import BranchyFrontDoorGRPC
import BranchyInferenceGRPC
import BranchyServing
import Foundation
import GRPCCore
import Testing

/// The gRPC service's translation, in memory: requests with raw or typed contents become the
/// protocol's checked value, the backend's answer becomes raw little-endian outputs and typed
/// parameters, and refusals keep their meaning as gRPC status codes.
@Suite struct FrontDoorGRPCServiceTests {
    /// Class = the index of the largest input value; parameters echo what the request asked.
    struct ArgmaxBackend: InferenceBackend {
        var metadata = ModelMetadata(name: "argmax", inputs: [.init(name: "x", datatype: .fp32, shape: [-1, 4])],
                                     outputs: [.init(name: "class", datatype: .int64, shape: [-1])], maxBatchSize: 8)
        func notReady() async -> String? { nil }
        func infer(_ request: InferenceRequest) async throws(ServingError) -> InferenceResponse {
            guard let x = request.inputs.first, x.shape.last == 4 else { throw .badRequest("x must be (N, 4)") }
            if request.parameter("busy") == .bool(true) { throw .unavailable("the queue is full") }
            let n = x.values.count / 4
            let classes = (0..<n).map { s -> Int64 in
                let row = Array(x.values[(s * 4)..<((s + 1) * 4)])
                return Int64(row.indices.max { row[$0] < row[$1] }!)
            }
            return InferenceResponse(modelName: metadata.name, modelVersion: "1", id: request.id,
                                     parameters: [("exit", .string("device-exit")), ("upward_bytes", .number(0)), ("deadline", request.parameter("deadline_ms") ?? .null)],
                                     outputs: [.init(name: "class", shape: [n], values: .int64(classes))])
        }
    }

    let service = FrontDoorGRPCService(backend: ArgmaxBackend(), limits: .init(maxBodyBytes: 1 << 20, maxElements: 64))

    static func request(_ rows: [[Float]], datatype: String = "FP32", raw: Bool) -> Inference_ModelInferRequest {
        var r = Inference_ModelInferRequest()
        r.modelName = "argmax"
        r.id = "req-1"
        var t = Inference_ModelInferRequest.InferInputTensor()
        t.name = "x"
        t.datatype = datatype
        t.shape = [Int64(rows.count), 4]
        let values = rows.flatMap { $0 }
        if raw {
            var data = Data()
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            r.rawInputContents = [data]
        } else {
            var c = Inference_InferTensorContents()
            c.fp32Contents = values
            t.contents = c
        }
        r.inputs = [t]
        return r
    }

    @Test(arguments: [true, false]) func rawOrTypedContentsGiveTheSameAnswer(raw: Bool) async throws {
        var request = Self.request([[0, 3, 1, 2], [9, 1, 1, 1]], raw: raw)
        var deadline = Inference_InferParameter()
        deadline.int64Param = 250
        request.parameters["deadline_ms"] = deadline
        let response = try await service.infer(request)
        #expect(response.modelName == "argmax" && response.modelVersion == "1" && response.id == "req-1")
        #expect(response.outputs.map(\.name) == ["class"])
        #expect(response.outputs[0].datatype == "INT64" && response.outputs[0].shape == [2])
        let classes = response.rawOutputContents[0].withUnsafeBytes { b in (0..<2).map { Int64(littleEndian: b.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) } }
        #expect(classes == [1, 0])
        #expect(response.parameters["exit"]?.stringParam == "device-exit")
        #expect(response.parameters["upward_bytes"]?.int64Param == 0)
        #expect(response.parameters["deadline"]?.int64Param == 250)
    }

    @Test func refusalsKeepTheirMeaning() async throws {
        func code(_ request: Inference_ModelInferRequest) async -> RPCError.Code? {
            do { _ = try await service.modelInfer(request: request, context: .init(descriptor: .init(fullyQualifiedService: "s", method: "m"),
                                                                                   remotePeer: "", localPeer: "", cancellation: .init()))
                return nil
            } catch { return (error as? RPCError)?.code }
        }
        var unknown = Self.request([[1, 2, 3, 4]], raw: true)
        unknown.modelName = "other"
        #expect(await code(unknown) == .notFound)
        var short = Self.request([[1, 2, 3, 4]], raw: true)
        short.rawInputContents[0].removeLast()
        #expect(await code(short) == .invalidArgument)
        var twoSources = Self.request([[1, 2, 3, 4]], raw: true)
        twoSources.inputs[0].contents = Inference_InferTensorContents()
        #expect(await code(twoSources) == .invalidArgument)
        var tooMany = Self.request(Array(repeating: [1, 2, 3, 4], count: 17), raw: true)
        tooMany.id = ""
        #expect(await code(tooMany) == .resourceExhausted)
        var nan = Self.request([[1, .nan, 3, 4]], raw: true)
        nan.id = ""
        #expect(await code(nan) == .invalidArgument)
        #expect(await code(Self.request([[1, 2, 3, 4]], datatype: "BYTES", raw: true)) == .invalidArgument)
        var busy = Self.request([[1, 2, 3, 4]], raw: false)
        var on = Inference_InferParameter()
        on.boolParam = true
        busy.parameters["busy"] = on
        #expect(await code(busy) == .unavailable)
        // Typed contents of the wrong count, and integers out of range for their type.
        var count = Self.request([[1, 2, 3, 4]], raw: false)
        count.inputs[0].contents.fp32Contents.removeLast()
        #expect(await code(count) == .invalidArgument)
        var uint8 = Self.request([[1, 2, 3, 4]], datatype: "UINT8", raw: false)
        uint8.inputs[0].contents = Inference_InferTensorContents()
        uint8.inputs[0].contents.uintContents = [1, 2, 3, 300]
        #expect(await code(uint8) == .invalidArgument)
    }

    @Test func configDropsTheBatchDimension() async throws {
        var r = Inference_ModelConfigRequest()
        r.name = "argmax"
        let config = try await service.modelConfig(request: r, context: .init(descriptor: .init(fullyQualifiedService: "s", method: "m"),
                                                                              remotePeer: "", localPeer: "", cancellation: .init())).config
        #expect(config.maxBatchSize == 8)
        #expect(config.input.map(\.dims) == [[4]])
        #expect(config.input.map(\.dataType) == [.typeFp32])
        #expect(config.output.map(\.dataType) == [.typeInt64])
    }
}
