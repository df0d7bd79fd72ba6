import BranchyData
import BranchyFrontDoor
import BranchyReport
import BranchyServing
import BranchyTensor
import Dispatch
import NIOCore
import Synchronization

/// The device's front door backend: an application's infer request becomes samples for the
/// device's batcher; each is answered by the first sure exit, here or upward, as in a batch run.
///
/// The model is named after its directory. Input `input`: FP32 tensors as the model takes them
/// (`[N, C, H, W]` or one `[C, H, W]`), or UINT8 pixels (`[N, C, H, W]` of any size, 1 or the
/// model's channels) prepared by the model card's preprocessing. Outputs: `class` (INT64, one per
/// sample) and `probabilities` (FP32, samples × classes) of the exit that answered. Request
/// parameters: `deadline_ms` (1 to the operator's limit) and `device_only` (true: the device's own
/// exits answer, nothing goes upward; when the operator allows it). Response parameters: `exit`,
/// `tier`, `node`, `status` (and `reason` when degraded), `upward_bytes`, `local_us`,
/// `upstream_us`, `latency_us`; with several samples, the names are comma-separated per sample
/// and the numbers summed (bytes) or the largest (times).
public final class DeviceInferenceBackend: InferenceBackend {
    /// What the operator allows a request.
    public struct Policy: Sendable {
        /// Most samples one request may carry (Triton's `max_batch_size`).
        public var maxSamplesPerRequest: Int
        /// Most samples taken at once; past it, requests are refused with 503.
        public var maxQueued: Int
        /// Largest `deadline_ms` a request may set.
        public var maxDeadlineMillis: Int
        /// Whether a request may ask for `device_only`.
        public var allowDeviceOnly: Bool

        public init(maxSamplesPerRequest: Int = 64, maxQueued: Int = 256, maxDeadlineMillis: Int = 60_000, allowDeviceOnly: Bool = true) {
            self.maxSamplesPerRequest = maxSamplesPerRequest; self.maxQueued = maxQueued
            self.maxDeadlineMillis = maxDeadlineMillis; self.allowDeviceOnly = allowDeviceOnly
        }
    }

    public static let inputName = "input"
    public static let classOutput = "class"
    public static let probabilitiesOutput = "probabilities"

    public let metadata: ModelMetadata
    let device: DeviceRunner
    let batcher: DeviceBatcher
    let policy: Policy
    /// Node name to its role, for the `tier` parameter.
    let tiers: [String: String]
    private let nextSample = Atomic<Int>(0)

    /// Serves `device` under `name` (by default, its model directory's name), computing batches on `loop`.
    public init(device: DeviceRunner, computeLoop loop: any EventLoop, name: String? = nil, policy: Policy = Policy()) {
        let context = device.context
        self.device = device
        self.policy = policy
        let config = context.config
        batcher = DeviceBatcher(device: device, loop: loop, capacity: policy.maxQueued, maxBatch: config.maxBatch,
                                maxDelayMicros: config.maxBatchDelayMicros)
        tiers = device.roles
        let classes = context.model.spec.classes
        metadata = ModelMetadata(
            name: name ?? context.topology.modelDirectory.lastPathComponent,
            inputs: [.init(name: Self.inputName, datatype: .fp32, shape: [-1] + context.model.spec.input)],
            outputs: [.init(name: Self.classOutput, datatype: .int64, shape: [-1]),
                      .init(name: Self.probabilitiesOutput, datatype: .fp32, shape: [-1, classes])],
            maxBatchSize: policy.maxSamplesPerRequest)
    }

    public func notReady() async -> String? { await device.notReadyBecause() }

    public func infer(_ request: InferenceRequest) async throws(ServingError) -> InferenceResponse {
        let samples = try inputs(of: request)
        let wanted = try outputs(of: request)
        var options = DeviceRunner.Options()
        options.probabilities = wanted.contains { $0.name == Self.probabilitiesOutput }
        if let value = request.parameter("deadline_ms") {
            guard case .number(let ms) = value, ms >= 1, ms <= Double(policy.maxDeadlineMillis), ms == ms.rounded() else {
                throw .badRequest("parameter 'deadline_ms' must be a whole number of milliseconds from 1 to \(policy.maxDeadlineMillis)")
            }
            options.deadlineMillis = UInt32(ms)
        }
        if let value = request.parameter("device_only") {
            guard case .bool(let on) = value else { throw .badRequest("parameter 'device_only' must be true or false, got \(value.typeName)") }
            if on && !policy.allowDeviceOnly { throw ServingError(status: 403, "this device does not allow 'device_only' requests") }
            options.deviceOnly = on
        }
        let first = nextSample.add(samples.count, ordering: .relaxed).oldValue
        guard let records = await batcher.classify(samples, options: options, firstSample: first) else {
            throw .unavailable("the device's queue is full (\(batcher.capacity) samples); try again later")
        }
        for r in records { device.metrics?.answered(exit: r.exit, status: r.status, nanos: UInt64(max(0, r.latencySeconds * 1e9))) }
        return try response(to: request, records: records, wanted: wanted)
    }

    /// The request's samples as the model's input tensors (1, C, H, W).
    func inputs(of request: InferenceRequest) throws(ServingError) -> [Tensor] {
        guard request.inputs.count == 1, let input = request.inputs.first else {
            throw .badRequest("the model takes one input, '\(Self.inputName)'; the request has \(request.inputs.count)")
        }
        guard input.name == Self.inputName else { throw .badRequest("unknown input '\(input.name)'; the model takes '\(Self.inputName)'") }
        let model = device.context.model.spec.input
        var shape = input.shape
        if shape.count == model.count { shape = [1] + shape }
        guard shape.count == model.count + 1 else {
            throw .badRequest("input '\(input.name)' has shape \(input.shape); the model takes [N, \(model.map(String.init).joined(separator: ", "))]")
        }
        let n = shape[0]
        guard n >= 1, n <= policy.maxSamplesPerRequest else {
            throw .badRequest("input '\(input.name)' has \(n) samples; a request carries 1 to \(policy.maxSamplesPerRequest)")
        }
        switch input.datatype {
        case .fp32:
            guard Array(shape.dropFirst()) == model else {
                throw .badRequest("input '\(input.name)' of FP32 has shape \(input.shape); prepared tensors must be [N, \(model.map(String.init).joined(separator: ", "))] "
                    + "(send UINT8 pixels to have them prepared)")
            }
            let width = model.reduce(1, *)
            return (0..<n).map { Tensor(shape: [1] + model, data: Array(input.values[($0 * width)..<(($0 + 1) * width)])) }
        case .uint8:
            guard shape.count == 4 else { throw .badRequest("input '\(input.name)' of UINT8 must be images [N, C, H, W], got \(input.shape)") }
            do {
                return try device.inputs(pixels: input.values, count: n, channels: shape[1], rows: shape[2], cols: shape[3],
                                         source: "input '\(input.name)'")
            } catch {
                throw .badRequest("\(error)")
            }
        default:
            throw .badRequest("input '\(input.name)' is \(input.datatype.rawValue); the model takes FP32 (prepared) or UINT8 (pixels)")
        }
    }

    /// The outputs asked for (both, as JSON, when none are named).
    func outputs(of request: InferenceRequest) throws(ServingError) -> [InferenceRequest.RequestedOutput] {
        if request.outputs.isEmpty {
            return [.init(name: Self.classOutput, binary: false), .init(name: Self.probabilitiesOutput, binary: false)]
        }
        for o in request.outputs where o.name != Self.classOutput && o.name != Self.probabilitiesOutput {
            throw .badRequest("unknown output '\(o.name)'; the model gives '\(Self.classOutput)' and '\(Self.probabilitiesOutput)'")
        }
        return request.outputs
    }

    func response(to request: InferenceRequest, records: [SampleRecord], wanted: [InferenceRequest.RequestedOutput]) throws(ServingError) -> InferenceResponse {
        if let failed = records.first(where: { $0.status == .failed }) {
            throw .unavailable("sample \(records.firstIndex { $0.sample == failed.sample } ?? 0) could not be answered: \(failed.reason)")
        }
        let classes = device.context.model.spec.classes
        var outputs: [InferenceResponse.Output] = []
        for o in wanted {
            if o.name == Self.classOutput {
                outputs.append(.init(name: o.name, shape: [records.count], values: .int64(records.map { Int64($0.predicted) }), binary: o.binary))
            } else {
                var values: [Float] = []
                values.reserveCapacity(records.count * classes)
                for r in records {
                    guard let p = r.probabilities, p.count == classes else {
                        throw ServingError(status: 500, "the answer from node '\(r.node)' carries no probabilities (its link speaks protocol version 1)")
                    }
                    values += p
                }
                outputs.append(.init(name: o.name, shape: [records.count, classes], values: .fp32(values), binary: o.binary))
            }
        }
        func joined(_ f: (SampleRecord) -> String) -> JSONValue { .string(records.map(f).joined(separator: ",")) }
        var parameters: [(key: String, value: JSONValue)] = [
            ("exit", joined(\.exitName)),
            ("tier", joined { self.tiers[$0.node] ?? $0.node }),
            ("node", joined(\.node)),
            ("status", joined(\.status.rawValue)),
            ("upward_bytes", .number(Double(records.reduce(0) { $0 + $1.hops.reduce(0) { $0 + $1.requestFrameBytes } }))),
            ("local_us", .number((Double(records.map(\.computeNanos).max() ?? 0) / 1000).rounded())),
            ("upstream_us", .number(records.map { $0.hops.isEmpty ? 0 : max(0, $0.latencySeconds * 1e6 - Double($0.computeNanos) / 1000) }.max()?.rounded() ?? 0)),
            ("latency_us", .number(((records.map(\.latencySeconds).max() ?? 0) * 1e6).rounded())),
        ]
        if let degraded = records.first(where: { $0.status == .degraded }) { parameters.append(("reason", .string(degraded.reason))) }
        return InferenceResponse(modelName: metadata.name, modelVersion: metadata.versions.first, id: request.id, parameters: parameters, outputs: outputs)
    }
}
