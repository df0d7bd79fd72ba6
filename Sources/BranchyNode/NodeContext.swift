import BranchyLink
import BranchyModel
import BranchyTensor
import BranchyTopology
import BranchyTransport
import BranchyWire
import Foundation

/// Everything a node needs, built once at start-up from the topology file and the model:
/// the runtime never reads raw strings from configuration again.
public final class NodeContext: Sendable {
    public let topology: Topology
    public let config: NodeConfig
    public let model: Model
    /// Model stage indices this node hosts, in order.
    public let stageIndices: [Int]
    /// Entropy threshold for every exit of the model (this node's from the topology, others the model's defaults).
    public let policy: ExitPolicy
    /// Codec for features (or, on a device that hosts no stage, the raw input) sent to the upstream node.
    public let codec: FeatureCodec
    public let fingerprint: ModelFingerprint
    public let upstream: NodeConfig?
    /// Nodes whose upstream is this node: the only peers allowed to connect.
    public let children: [NodeConfig]

    /// Loads the topology, finds `nodeName` (replica `replica` of it, for a node with listed
    /// replicas), loads the model and checks that they agree. Only this node's TLS files must exist.
    /// With `reusing`, a context whose model directory is unchanged keeps its loaded model.
    public static func load(topologyPath: String, nodeName: String, replica: Int? = nil, reusing old: NodeContext? = nil) throws -> NodeContext {
        let url = URL(fileURLWithPath: topologyPath)
        let first = try Topology.load(contentsOf: url, stageOrder: nil, checkFiles: false)
        let model = try old.flatMap { $0.topology.modelDirectory == first.modelDirectory ? $0.model : nil }
            ?? Model.load(directory: first.modelDirectory)
        let stageNames = model.network.stages.map(\.name)
        let topology = try Topology.load(contentsOf: url, stageOrder: stageNames, checkFiles: true, filesOf: nodeName)
        guard var config = topology.node(named: nodeName) else {
            let known = topology.nodes.map(\.name).joined(separator: ", ")
            throw NodeError("\(topologyPath): no node named '\(nodeName)' (nodes: \(known))")
        }
        let listed = config.replicas?.listed ?? []
        if let replica {
            guard let own = config.replica(replica) else {
                throw NodeError("\(topologyPath): node '\(nodeName)' has \(listed.isEmpty ? "no listed replicas" : "replicas 0 to \(listed.count - 1)"), "
                                + "not replica \(replica)")
            }
            config = own
        } else if !listed.isEmpty, config.listen == nil {
            throw NodeError("\(topologyPath): node '\(nodeName)' has \(listed.count) replicas and no 'listen:'; "
                            + "start each with --replica 0 to \(listed.count - 1) to bind its own address")
        }
        return try NodeContext(topology: topology, config: config, model: model, replica: replica)
    }

    /// Which listed replica of the node this process is, if it was started as one.
    public let replica: Int?
    /// With `precision: int8`: the model's int8 calibration, checked against the hosted stages.
    public let int8: Int8Calibration?

    public init(topology: Topology, config: NodeConfig, model: Model, replica: Int? = nil) throws {
        self.replica = replica
        self.topology = topology
        self.config = config
        self.model = model
        let names = model.network.stages.map(\.name)
        stageIndices = try config.stages.map { s in
            guard let i = names.firstIndex(of: s) else { throw NodeError("node '\(config.name)': stage '\(s)' is not in model \(model.spec.name)") }
            return i
        }
        let exitCount = names.count
        var thresholds = model.spec.defaults?.thresholds ?? [Float](repeating: 0.5, count: exitCount - 1)
        if !config.thresholds.isEmpty {
            let own = stageIndices.filter { $0 < exitCount - 1 }
            for (k, i) in own.enumerated() { thresholds[i] = config.thresholds[k] }
        }
        policy = ExitPolicy(thresholds: thresholds)
        guard let codec = FeatureCodec(config.codec) else { throw NodeError("node '\(config.name)': unknown codec '\(config.codec)'") }
        if upstreamNeeded(config), !codec.compression.isAvailable {
            throw NodeError("node '\(config.name)': codec '\(config.codec)' needs \(codec.compression.libraryName), which could not be loaded "
                            + "(Debian: apt-get install \(codec.compression == .zstd ? "libzstd1" : "liblz4-1"))")
        }
        self.codec = codec
        if config.precision == .int8 {
            do { int8 = try Int8Calibration.load(for: model, stages: Set(stageIndices)) } catch let e as Int8CalibrationError {
                throw NodeError("node '\(config.name)': 'precision: int8' needs \(e)")
            }
        } else {
            int8 = nil
        }
        fingerprint = ModelFingerprint(bytes: model.fingerprint)!
        upstream = config.upstream.flatMap { topology.node(named: $0) }
        children = topology.children(of: config.name)
    }

    /// The hello this node sends (as a client, in its topology's protocol version) or answers with
    /// (as a server, in the client's version): version 2 acknowledgements carry ``names``.
    public var hello: Hello {
        Hello(protocolVersion: UInt16(config.protocolVersion), role: config.role.wireRole, nodeName: config.name,
              fingerprint: fingerprint, names: names)
    }

    /// The hello a server answers with: the newest version, which the handshake lowers to the client's.
    public var serverHello: Hello {
        var h = hello
        h.protocolVersion = Hello.latestProtocolVersion
        return h
    }

    /// The names version-2 results refer to by index: every node of the topology, every exit of
    /// the model and every link (`child->parent`).
    public var names: NameTable {
        NameTable(topology.nodes.map(\.name) + model.network.stages.map(\.exitName)
                  + topology.nodes.compactMap { n in n.upstream.map { "\(n.name)->\($0)" } })
    }

    /// Encodes one item (features, or the raw input) for the upstream link with this node's codec.
    /// Compression is applied where it makes the data smaller; should the compressor fail, the
    /// data goes uncompressed (the receiver accepts both).
    public func encodeForUpstream(_ item: Tensor) -> EncodedTensor {
        let encoded = codec.kind.encode(item)
        return (try? encoded.compressed(with: codec.compression)) ?? encoded
    }

    /// Index of the model's last exit.
    public var lastExit: Int { model.network.stages.count - 1 }
}

private func upstreamNeeded(_ config: NodeConfig) -> Bool { config.upstream != nil }
