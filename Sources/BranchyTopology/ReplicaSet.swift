import Foundation

/// One replica of a node, as listed under `replicas:`.
public struct Replica: Sendable, Hashable {
    /// Where children dial this replica (and, when the node has no `listen:`, what it binds).
    public var address: Endpoint
    /// Where this replica serves metrics and health, when not the node's `metrics:`.
    public var metrics: Endpoint?

    /// Creates a replica entry.
    public init(address: Endpoint, metrics: Endpoint? = nil) {
        self.address = address
        self.metrics = metrics
    }
}

/// The processes that run one node (`replicas:`): every replica hosts the same stages, presents
/// the node's certificate and answers as the node; children spread requests over those that are up.
public enum ReplicaSet: Sendable, Hashable {
    /// A fixed list, each replica with its own dial address.
    case listed([Replica])
    /// A host name that resolves to one address per replica (a DNS name with several A/AAAA
    /// records, such as a Kubernetes headless Service), re-resolved while the node runs.
    case resolved(Endpoint)

    /// The listed replicas; empty for a resolved set.
    public var listed: [Replica] {
        if case .listed(let replicas) = self { return replicas }
        return []
    }
}

extension NodeConfig {
    /// The configuration of replica `index` of this node: it binds the node's `listen:` or, when
    /// there is none, the replica's own address, and serves metrics at the replica's `metrics:`
    /// or the node's. Nil when the node has no listed replica `index`.
    public func replica(_ index: Int) -> NodeConfig? {
        let replicas = replicas?.listed ?? []
        guard replicas.indices.contains(index) else { return nil }
        var config = self
        config.listen = listen ?? replicas[index].address
        config.metrics = replicas[index].metrics ?? metrics
        return config
    }

    /// True when the node runs as several replicas (listed or resolved).
    public var isReplicated: Bool { replicas != nil }
}
