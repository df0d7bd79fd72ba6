import BranchyFrontDoor
import BranchyInferenceGRPC
import BranchyServing
import Dispatch
import Foundation
import GRPCCore

/// The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, Triton's service) for
/// one ``InferenceBackend``: ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata,
/// ModelConfig (which perf_analyzer asks for first), ModelInfer and ModelStreamInfer. Requests are
/// checked as the HTTP front door checks them (`InferenceRequest.Input.make`) and answered by the
/// same backend; its refusals become the gRPC status of the same meaning (400 `invalidArgument`,
/// 404 `notFound`, 413 `resourceExhausted`, 503 `unavailable`, …). Outputs go back as
/// `raw_output_contents`, as Triton sends them. The other RPCs answer `unimplemented`.
public struct FrontDoorGRPCService: Inference_GRPCInferenceService.SimpleServiceProtocol {
    let backend: any InferenceBackend
    let limits: InferenceRequest.Limits
    let observer: FrontDoorObserver?

    public init(backend: any InferenceBackend, limits: InferenceRequest.Limits = .init(), observer: FrontDoorObserver? = nil) {
        self.backend = backend
        self.limits = limits
        self.observer = observer
    }

    public func serverLive(request: Inference_ServerLiveRequest, context: ServerContext) async throws -> Inference_ServerLiveResponse {
        var r = Inference_ServerLiveResponse()
        r.live = true
        return r
    }

    public func serverReady(request: Inference_ServerReadyRequest, context: ServerContext) async throws -> Inference_ServerReadyResponse {
        var r = Inference_ServerReadyResponse()
        r.ready = await backend.notReady() == nil
        return r
    }

    public func modelReady(request: Inference_ModelReadyRequest, context: ServerContext) async throws -> Inference_ModelReadyResponse {
        try known(request.name, request.version)
        var r = Inference_ModelReadyResponse()
        r.ready = await backend.notReady() == nil
        return r
    }

    public func serverMetadata(request: Inference_ServerMetadataRequest, context: ServerContext) async throws -> Inference_ServerMetadataResponse {
        var r = Inference_ServerMetadataResponse()
        r.name = "branchy"
        r.version = "2"
        r.extensions = ["model_configuration"]
        return r
    }

    public func modelMetadata(request: Inference_ModelMetadataRequest, context: ServerContext) async throws -> Inference_ModelMetadataResponse {
        try known(request.name, request.version)
        let m = backend.metadata
        func tensor(_ t: ModelMetadata.TensorInfo) -> Inference_ModelMetadataResponse.TensorMetadata {
            var x = Inference_ModelMetadataResponse.TensorMetadata()
            x.name = t.name
            x.datatype = t.datatype.rawValue
            x.shape = t.shape.map(Int64.init)
            return x
        }
        var r = Inference_ModelMetadataResponse()
        r.name = m.name
        r.versions = m.versions
        r.platform = m.platform
        r.inputs = m.inputs.map(tensor)
        r.outputs = m.outputs.map(tensor)
        return r
    }

    public func modelConfig(request: Inference_ModelConfigRequest, context: ServerContext) async throws -> Inference_ModelConfigResponse {
        try known(request.name, request.version)
        let m = backend.metadata
        func dims(_ t: ModelMetadata.TensorInfo) -> [Int64] { (m.maxBatchSize > 0 ? Array(t.shape.dropFirst()) : t.shape).map(Int64.init) }
        var c = Inference_ModelConfig()
        c.name = m.name
        c.platform = m.platform
        c.maxBatchSize = Int32(clamping: m.maxBatchSize)
        c.input = m.inputs.map { t in
            var i = Inference_ModelInput()
            i.name = t.name
            i.dataType = Self.configType(t.datatype)
            i.dims = dims(t)
            return i
        }
        c.output = m.outputs.map { t in
            var o = Inference_ModelOutput()
            o.name = t.name
            o.dataType = Self.configType(t.datatype)
            o.dims = dims(t)
            return o
        }
        var r = Inference_ModelConfigResponse()
        r.config = c
        return r
    }

    public func modelInfer(request: Inference_ModelInferRequest, context: ServerContext) async throws -> Inference_ModelInferResponse {
        let start = DispatchTime.now().uptimeNanoseconds
        do throws(ServingError) {
            let response = try await infer(request)
            observer?(200, true, DispatchTime.now().uptimeNanoseconds &- start)
            return response
        } catch {
            observer?(error.status, true, DispatchTime.now().uptimeNanoseconds &- start)
            throw RPCError(code: Self.code(error.status), message: error.message)
        }
    }

    public func modelStreamInfer(request: RPCAsyncSequence<Inference_ModelInferRequest, any Error>,
                                 response: RPCWriter<Inference_ModelStreamInferResponse>, context: ServerContext) async throws {
        for try await one in request {
            var r = Inference_ModelStreamInferResponse()
            do { r.inferResponse = try await modelInfer(request: one, context: context) } catch let e as RPCError { r.errorMessage = e.message }
            try await response.write(r)
        }
    }

    /// The request as the protocol's value, answered by the backend, as the gRPC response.
    func infer(_ request: Inference_ModelInferRequest) async throws(ServingError) -> Inference_ModelInferResponse {
        let m = backend.metadata
        guard request.modelName == m.name else { throw .notFound("no model '\(request.modelName)' here; this server has '\(m.name)'") }
        if !request.modelVersion.isEmpty, !m.versions.contains(request.modelVersion) {
            throw .notFound("model '\(m.name)' has no version '\(request.modelVersion)' (versions: \(m.versions.joined(separator: ", ")))")
        }
        guard !request.inputs.isEmpty else { throw .badRequest("'inputs' must not be empty") }
        guard request.inputs.count <= limits.maxInputs else { throw .tooLarge("\(request.inputs.count) inputs, more than the limit of \(limits.maxInputs)") }
        guard request.rawInputContents.isEmpty || request.rawInputContents.count == request.inputs.count else {
            throw .badRequest("\(request.rawInputContents.count) raw_input_contents for \(request.inputs.count) inputs; give one per input or none")
        }
        guard request.id.utf8.count <= limits.maxNameBytes else { throw .badRequest("'id' is longer than \(limits.maxNameBytes) bytes") }
        var inputs: [InferenceRequest.Input] = []
        for (i, t) in request.inputs.enumerated() {
            let at = "inputs[\(i)]"
            if request.rawInputContents.isEmpty {
                inputs.append(try .make(name: t.name, datatype: t.datatype, shape: t.shape, raw: nil, typed: Self.typed(t.contents, t.datatype),
                                        at: at, limits: limits))
            } else {
                if t.hasContents { throw .badRequest("\(at) has both contents and raw_input_contents") }
                let raw = request.rawInputContents[i]
                let input: Result<InferenceRequest.Input, ServingError> = raw.withUnsafeBytes { bytes in
                    do throws(ServingError) {
                        return .success(try .make(name: t.name, datatype: t.datatype, shape: t.shape, raw: bytes, typed: [], at: at, limits: limits))
                    } catch { return .failure(error) }
                }
                inputs.append(try input.get())
            }
        }
        let parameters = request.parameters.sorted { $0.key < $1.key }.map { (key: $0.key, value: Self.json($0.value)) }
        let outputs = request.outputs.map { InferenceRequest.RequestedOutput(name: $0.name, binary: true) }
        let answer = try await backend.infer(.assembled(id: request.id.isEmpty ? nil : request.id, parameters: parameters, inputs: inputs, outputs: outputs))
        var r = Inference_ModelInferResponse()
        r.modelName = answer.modelName
        r.modelVersion = answer.modelVersion ?? ""
        r.id = request.id
        for (key, value) in answer.parameters { r.parameters[key] = Self.parameter(value) }
        for o in answer.outputs {
            var t = Inference_ModelInferResponse.InferOutputTensor()
            t.name = o.name
            t.datatype = o.values.datatype.rawValue
            t.shape = o.shape.map(Int64.init)
            r.outputs.append(t)
            r.rawOutputContents.append(Self.littleEndian(o.values))
        }
        return r
    }

    private func known(_ name: String, _ version: String) throws {
        let m = backend.metadata
        guard name == m.name else { throw RPCError(code: .notFound, message: "no model '\(name)' here; this server has '\(m.name)'") }
        guard version.isEmpty || m.versions.contains(version) else {
            throw RPCError(code: .notFound, message: "model '\(name)' has no version '\(version)'")
        }
    }

    /// The gRPC status code of the same meaning as an HTTP status.
    static func code(_ status: Int) -> RPCError.Code {
        switch status {
        case 400: return .invalidArgument
        case 403: return .permissionDenied
        case 404: return .notFound
        case 408: return .deadlineExceeded
        case 413: return .resourceExhausted
        case 503: return .unavailable
        default: return .internalError
        }
    }

    static func configType(_ t: TensorDataType) -> Inference_DataType {
        switch t {
        case .bool: return .typeBool
        case .uint8: return .typeUint8
        case .uint16: return .typeUint16
        case .uint32: return .typeUint32
        case .uint64: return .typeUint64
        case .int8: return .typeInt8
        case .int16: return .typeInt16
        case .int32: return .typeInt32
        case .int64: return .typeInt64
        case .fp16: return .typeFp16
        case .fp32: return .typeFp32
        case .fp64: return .typeFp64
        case .bytes: return .typeString
        }
    }

    /// The typed contents of `datatype` as numbers (the field the protocol assigns to it).
    static func typed(_ c: Inference_InferTensorContents, _ datatype: String) -> [Double] {
        switch datatype {
        case "BOOL": return c.boolContents.map { $0 ? 1 : 0 }
        case "INT8", "INT16", "INT32": return c.intContents.map(Double.init)
        case "INT64": return c.int64Contents.map(Double.init)
        case "UINT8", "UINT16", "UINT32": return c.uintContents.map(Double.init)
        case "UINT64": return c.uint64Contents.map(Double.init)
        case "FP32": return c.fp32Contents.map(Double.init)
        case "FP64": return c.fp64Contents
        default: return []
        }
    }

    static func json(_ p: Inference_InferParameter) -> JSONValue {
        switch p.parameterChoice {
        case .boolParam(let v)?: return .bool(v)
        case .int64Param(let v)?: return .number(Double(v))
        case .uint64Param(let v)?: return .number(Double(v))
        case .doubleParam(let v)?: return .number(v)
        case .stringParam(let v)?: return .string(v)
        case nil: return .null
        }
    }

    static func parameter(_ v: JSONValue) -> Inference_InferParameter {
        var p = Inference_InferParameter()
        switch v {
        case .bool(let b): p.boolParam = b
        case .number(let n) where n == n.rounded() && abs(n) < 9e15: p.int64Param = Int64(n)
        case .number(let n): p.doubleParam = n
        case .string(let s): p.stringParam = s
        default: p.stringParam = "\(v)"
        }
        return p
    }

    static func littleEndian(_ values: InferenceResponse.Values) -> Data {
        var data = Data()
        switch values {
        case .int64(let v):
            data.reserveCapacity(8 * v.count)
            for x in v { withUnsafeBytes(of: x.littleEndian) { data.append(contentsOf: $0) } }
        case .fp32(let v):
            data.reserveCapacity(4 * v.count)
            for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        }
        return data
    }

    // Not served: repositories, statistics, shared memory, tracing and logging settings.
    public func modelStatistics(request: Inference_ModelStatisticsRequest, context: ServerContext) async throws -> Inference_ModelStatisticsResponse { throw Self.unimplemented("ModelStatistics") }
    public func repositoryIndex(request: Inference_RepositoryIndexRequest, context: ServerContext) async throws -> Inference_RepositoryIndexResponse { throw Self.unimplemented("RepositoryIndex") }
    public func repositoryModelLoad(request: Inference_RepositoryModelLoadRequest, context: ServerContext) async throws -> Inference_RepositoryModelLoadResponse { throw Self.unimplemented("RepositoryModelLoad") }
    public func repositoryModelUnload(request: Inference_RepositoryModelUnloadRequest, context: ServerContext) async throws -> Inference_RepositoryModelUnloadResponse { throw Self.unimplemented("RepositoryModelUnload") }
    public func systemSharedMemoryStatus(request: Inference_SystemSharedMemoryStatusRequest, context: ServerContext) async throws -> Inference_SystemSharedMemoryStatusResponse { throw Self.unimplemented("SystemSharedMemoryStatus") }
    public func systemSharedMemoryRegister(request: Inference_SystemSharedMemoryRegisterRequest, context: ServerContext) async throws -> Inference_SystemSharedMemoryRegisterResponse { throw Self.unimplemented("SystemSharedMemoryRegister") }
    public func systemSharedMemoryUnregister(request: Inference_SystemSharedMemoryUnregisterRequest, context: ServerContext) async throws -> Inference_SystemSharedMemoryUnregisterResponse { throw Self.unimplemented("SystemSharedMemoryUnregister") }
    public func cudaSharedMemoryStatus(request: Inference_CudaSharedMemoryStatusRequest, context: ServerContext) async throws -> Inference_CudaSharedMemoryStatusResponse { throw Self.unimplemented("CudaSharedMemoryStatus") }
    public func cudaSharedMemoryRegister(request: Inference_CudaSharedMemoryRegisterRequest, context: ServerContext) async throws -> Inference_CudaSharedMemoryRegisterResponse { throw Self.unimplemented("CudaSharedMemoryRegister") }
    public func cudaSharedMemoryUnregister(request: Inference_CudaSharedMemoryUnregisterRequest, context: ServerContext) async throws -> Inference_CudaSharedMemoryUnregisterResponse { throw Self.unimplemented("CudaSharedMemoryUnregister") }
    public func traceSetting(request: Inference_TraceSettingRequest, context: ServerContext) async throws -> Inference_TraceSettingResponse { throw Self.unimplemented("TraceSetting") }
    public func logSettings(request: Inference_LogSettingsRequest, context: ServerContext) async throws -> Inference_LogSettingsResponse { throw Self.unimplemented("LogSettings") }

    static func unimplemented(_ rpc: String) -> RPCError { RPCError(code: .unimplemented, message: "\(rpc) is not served by this front door") }
}
