import BranchyData
import BranchyFrontDoor
import BranchyReport
import BranchyServing
import BranchyTensor
import Dispatch
import Foundation
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
/// exits answer, nothing goes upward; when the operator allows it) and `thresholds` (entropy
/// thresholds replacing the topology's, here and upward, within the operator's range: one number for
/// every exit but the last, or comma-separated, by position or `exit=value`; an empty entry keeps
/// the topology's). Response parameters: `exit`, `tier`, `node`, `status` (and `reason` when
/// degraded), `upward_bytes`, `local_us`, `upstream_us`, `latency_us`, and per hop crossed
/// `round_trip_us.<link>` (as the sending node measured it), `node_us.<node>` (the time the
/// upstream node held the request) and `network_us.<link>` (the round trip less that); with
/// several samples, the names are comma-separated per sample and the numbers summed (bytes) or
/// the largest (times).
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
        /// The entropy thresholds a request may set with `thresholds`; nil: none.
        public var thresholdRange: ClosedRange<Float>?
        /// Any threshold the protocol carries (0 to 2²⁰).
        public static let anyThreshold: ClosedRange<Float> = 0...1_048_576

        public init(maxSamplesPerRequest: Int = 64, maxQueued: Int = 256, maxDeadlineMillis: Int = 60_000, allowDeviceOnly: Bool = true,
                    thresholdRange: ClosedRange<Float>? = Policy.anyThreshold) {
            self.maxSamplesPerRequest = maxSamplesPerRequest; self.maxQueued = maxQueued
            self.maxDeadlineMillis = maxDeadlineMillis; self.allowDeviceOnly = allowDeviceOnly
            self.thresholdRange = thresholdRange
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
        options.timings = true
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
        if let value = request.parameter("thresholds") { options.thresholds = try thresholds(value) }
        let first = nextSample.add(samples.count, ordering: .relaxed).oldValue
        guard let records = await batcher.classify(samples, options: options, firstSample: first) else {
            throw .unavailable("the device's queue is full (\(batcher.capacity) samples); try again later")
        }
        for r in records { device.metrics?.answered(exit: r.exit, status: r.status, nanos: UInt64(max(0, r.latencySeconds * 1e9))) }
        return try response(to: request, records: records, wanted: wanted)
    }

    /// The thresholds a request's `thresholds` parameter sets, by exit index: a number for every exit
    /// but the last, or a string of comma-separated entries, by position or `exit=value`, where an
    /// empty entry keeps the topology's threshold. Each must be within the operator's range.
    func thresholds(_ value: JSONValue) throws(ServingError) -> [Int: Float] {
        let stages = device.context.model.network.stages
        let early = stages.dropLast().map(\.exitName)
        let usage = "a number, or comma-separated thresholds for the exits \(early.joined(separator: ", ")) (by position or as exit=value)"
        var set: [Int: Float] = [:]
        switch value {
        case .number(let t):
            for i in early.indices { set[i] = Float(t) }
        case .string(let text):
            let entries = text.split(separator: ",", omittingEmptySubsequences: false)
            for (position, raw) in entries.enumerated() {
                let entry = raw.trimmingCharacters(in: .whitespaces)
                if entry.isEmpty { continue }
                let index: Int, number: Substring
                if let eq = entry.firstIndex(of: "=") {
                    let name = entry[..<eq].trimmingCharacters(in: .whitespaces)
                    guard let i = early.firstIndex(of: name) else {
                        throw .badRequest("parameter 'thresholds': '\(name)' is not an exit that can be set; the model's are \(early.joined(separator: ", ")) "
                            + "(the last exit, '\(stages.last?.exitName ?? "")', always answers)")
                    }
                    (index, number) = (i, Substring(entry[entry.index(after: eq)...].trimmingCharacters(in: .whitespaces)))
                } else {
                    guard position < early.count else {
                        throw .badRequest("parameter 'thresholds' has \(entries.count) entries; the model has \(early.count) exits that can be set: \(usage)")
                    }
                    (index, number) = (position, Substring(entry))
                }
                guard let t = Float(number), t.isFinite else {
                    throw .badRequest("parameter 'thresholds': '\(number)' for exit '\(early[index])' is not a number; expected \(usage)")
                }
                set[index] = t
            }
        default:
            throw .badRequest("parameter 'thresholds' must be \(usage), got \(value.typeName)")
        }
        guard let range = policy.thresholdRange else {
            throw ServingError(status: 403, "this device does not allow requests to set 'thresholds'")
        }
        for (i, t) in set.sorted(by: { $0.key < $1.key }) where !range.contains(t) {
            throw ServingError(status: 403, "threshold \(t) for exit '\(early[i])' is outside \(range.lowerBound)...\(range.upperBound), the range this device allows")
        }
        if let problem = device.thresholdsCannotTravel(set) { throw .badRequest("parameter 'thresholds': \(problem)") }
        return set
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
        parameters += Self.hopTimes(records)
        if let degraded = records.first(where: { $0.status == .degraded }) { parameters.append(("reason", .string(degraded.reason))) }
        return InferenceResponse(modelName: metadata.name, modelVersion: metadata.versions.first, id: request.id, parameters: parameters, outputs: outputs)
    }

    /// The time per hop the records' answers carry, nearest hop first: `round_trip_us.<link>`,
    /// `node_us.<node>` (the link's upstream end) and `network_us.<link>`, the largest over the samples.
    static func hopTimes(_ records: [SampleRecord]) -> [(key: String, value: JSONValue)] {
        var order: [String] = []
        var roundTrip: [String: UInt64] = [:], node: [String: UInt64] = [:], network: [String: UInt64] = [:]
        for r in records {
            for hop in r.hops where hop.roundTripMicros > 0 {
                if roundTrip[hop.link] == nil { order.append(hop.link) }
                roundTrip[hop.link] = max(roundTrip[hop.link] ?? 0, hop.roundTripMicros)
                if hop.upstreamMicros > 0 {
                    node[hop.link] = max(node[hop.link] ?? 0, hop.upstreamMicros)
                    network[hop.link] = max(network[hop.link] ?? 0, hop.roundTripMicros - min(hop.roundTripMicros, hop.upstreamMicros))
                }
            }
        }
        var parameters: [(key: String, value: JSONValue)] = []
        for link in order {
            parameters.append(("round_trip_us.\(link)", .number(Double(roundTrip[link] ?? 0))))
            if let n = node[link] {
                let upstream = link.range(of: "->").map { String(link[$0.upperBound...]) } ?? link
                parameters.append(("node_us.\(upstream)", .number(Double(n))))
                parameters.append(("network_us.\(link)", .number(Double(network[link] ?? 0))))
            }
        }
        return parameters
    }
}
