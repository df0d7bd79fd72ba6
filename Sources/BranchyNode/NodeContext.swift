import BranchyModel
import BranchyTensor
import BranchyTopology
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
    /// Codec for features sent to the upstream node.
    public let codec: FeatureCodecKind
    public let fingerprint: ModelFingerprint
    public let upstream: NodeConfig?
    /// Nodes whose upstream is this node: the only peers allowed to connect.
    public let children: [NodeConfig]

    /// Loads the topology, finds `nodeName`, loads the model and checks that they agree.
    public static func load(topologyPath: String, nodeName: String) throws -> NodeContext {
        let url = URL(fileURLWithPath: topologyPath)
        let first = try Topology.load(contentsOf: url, stageOrder: nil, checkFiles: false)
        let model = try Model.load(directory: first.modelDirectory)
        let stageNames = model.network.stages.map(\.name)
        let topology = try Topology.load(contentsOf: url, stageOrder: stageNames, checkFiles: true)
        guard let config = topology.node(named: nodeName) else {
            let known = topology.nodes.map(\.name).joined(separator: ", ")
            throw NodeError("\(topologyPath): no node named '\(nodeName)' (nodes: \(known))")
        }
        return try NodeContext(topology: topology, config: config, model: model)
    }

    public init(topology: Topology, config: NodeConfig, model: Model) throws {
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
        guard let codec = FeatureCodecKind(config.codec) else { throw NodeError("node '\(config.name)': unknown codec '\(config.codec)'") }
        self.codec = codec
        fingerprint = ModelFingerprint(bytes: model.fingerprint)!
        upstream = config.upstream.flatMap { topology.node(named: $0) }
        children = topology.children(of: config.name)
    }

    /// The hello this node sends (as a client) or answers with (as a server).
    public var hello: Hello {
        Hello(role: config.role.wireRole, nodeName: config.name, fingerprint: fingerprint)
    }

    /// Index of the model's last exit.
    public var lastExit: Int { model.network.stages.count - 1 }

    /// Whether this node hosts the model's last stage (and so always answers).
    public var hostsLastStage: Bool { stageIndices.last == lastExit }
}

extension BranchyTopology.NodeRole {
    /// The role as carried in a hello frame.
    public var wireRole: BranchyWire.NodeRole {
        switch self {
        case .device: return .device
        case .edge: return .edge
        case .cloud: return .cloud
        }
    }
}
