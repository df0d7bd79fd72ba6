import Foundation

/// The tier a node runs in. Requests flow upstream: device → edge → cloud.
public enum NodeRole: String, Sendable, Hashable, CaseIterable {
    /// Holds the input; runs the first stages; never listens.
    case device
    /// Listens for devices (or other downstream nodes) and forwards to a cloud.
    case edge
    /// The root of the tree: listens, has no upstream, hosts the model's last stage.
    case cloud

    /// Roles this role may name as its upstream.
    var allowedUpstreamRoles: [NodeRole] {
        switch self {
        case .device: return [.edge, .cloud]
        case .edge: return [.cloud]
        case .cloud: return []
        }
    }
}

/// What a node does when its upstream cannot answer in time.
public enum FailurePolicy: String, Sendable, Hashable, CaseIterable {
    /// Answer with the node's own last exit, marked as degraded.
    case degrade
    /// Report the request as failed.
    case fail
}

/// The arithmetic a node's convolutions run in (`precision:`).
public enum Precision: String, Sendable, Hashable, CaseIterable {
    /// Float32 throughout (the default).
    case float32
    /// Convolutions in int8 with the model's `int8.json` (made by `branchy quantize`); the rest float32.
    case int8
}

/// The three files a node needs for mutual TLS, as absolute file URLs.
public struct TLSFiles: Sendable, Hashable {
    /// The CA certificate that signs every node's certificate (PEM).
    public var ca: URL
    /// This node's certificate (PEM).
    public var cert: URL
    /// This node's private key (PEM, PKCS#8).
    public var key: URL

    /// Creates a set of TLS file locations.
    public init(ca: URL, cert: URL, key: URL) {
        self.ca = ca
        self.cert = cert
        self.key = key
    }
}

/// One process of the split network, as described by one entry of `nodes:`.
public struct NodeConfig: Sendable, Hashable {
    /// The codec kinds a link may use, by name (see docs/PROTOCOL.md).
    public static let codecKindNames = ["float32", "float16", "int8", "uint8", "int8-channel", "int4", "sign"]
    /// The codecs a link may use: a kind, optionally followed by `+lz4` or `+zstd`.
    public static let codecNames: [String] = codecKindNames.flatMap { [$0, $0 + "+lz4", $0 + "+zstd"] }
    /// The codecs protocol version 1 can carry.
    public static let version1CodecNames = ["float32", "float16", "int8"]
    /// Protocol versions a node may ask for (`protocol:`); the default is the newest.
    public static let protocolVersions = 1...2
    /// Default `deadlineMs`.
    public static let defaultDeadlineMillis = 10_000
    /// Default `maxInFlight`.
    public static let defaultMaxInFlight = 256
    /// Largest accepted `maxInFlight`.
    public static let maxInFlightLimit = 65_536
    /// Largest accepted `deadlineMs`: one hour.
    public static let deadlineMillisLimit = 3_600_000
    /// Default `maxBatch`: most samples an edge or cloud runs through its stage at once.
    public static let defaultMaxBatch = 64
    /// Accepted `maxBatch` values.
    public static let maxBatchRange = 1...4_096
    /// Default `maxBatchDelayMicros`: how long a sample that arrived while a batch was running
    /// may wait, from its arrival, for others to join its batch once the stage is free.
    public static let defaultMaxBatchDelayMicros = 200
    /// Accepted `maxBatchDelayMicros` values: up to one second.
    public static let maxBatchDelayMicrosRange = 0...1_000_000

    /// Unique node name; also the certificate's common name and DNS name.
    public var name: String
    /// The tier.
    public var role: NodeRole
    /// The model stages this node runs, in model order.
    public var stages: [String]
    /// One entropy threshold per hosted exit that is not the model's last exit.
    public var thresholds: [Float]
    /// Where the node accepts connections from downstream nodes (edge and cloud only):
    /// the address it binds, which may be a wildcard such as `0.0.0.0:7401`.
    public var listen: Endpoint?
    /// The address its children dial (`address:`), such as `edge.example:7401`, when
    /// that is not `listen`; nil when children dial `listen`.
    public var address: Endpoint?
    /// Where the node serves plain-HTTP `/metrics`, `/healthz` and `/readyz` (`metrics:`); nil for none.
    public var metrics: Endpoint?
    /// The node's replicas (`replicas:`), when it runs as several processes; nil for one process
    /// dialled at `dialAddress`.
    public var replicas: ReplicaSet?
    /// The name of the node this one forwards to; nil for the root.
    public var upstream: String?
    /// Feature codec on the link to upstream: one of `codecNames`.
    public var codec: String
    /// What to do when the upstream fails or misses the deadline.
    public var onUpstreamFailure: FailurePolicy
    /// Per-request deadline for the upstream's answer, in milliseconds.
    public var deadlineMillis: Int
    /// Bounded number of requests in flight on the upstream link.
    public var maxInFlight: Int
    /// Mutual-TLS files.
    public var tls: TLSFiles
    /// Timeouts, connection caps and memory budgets of a listening node.
    public var limits: ServerLimits
    /// Edge and cloud: most samples run through the stage as one batch.
    public var maxBatch: Int
    /// Edge and cloud: longest wait, in microseconds, for a batch to fill (see `defaultMaxBatchDelayMicros`).
    public var maxBatchDelayMicros: Int
    /// Protocol version this node proposes to its upstream (`protocol:`, default 2).
    public var protocolVersion: Int
    /// The arithmetic of the node's convolutions (`precision:`, default float32).
    public var precision: Precision

    /// Creates a node description without validating it; `Topology.load` validates.
    public init(
        name: String,
        role: NodeRole,
        stages: [String],
        thresholds: [Float] = [],
        listen: Endpoint? = nil,
        address: Endpoint? = nil,
        metrics: Endpoint? = nil,
        replicas: ReplicaSet? = nil,
        upstream: String? = nil,
        codec: String = "float32",
        onUpstreamFailure: FailurePolicy = .degrade,
        deadlineMillis: Int = NodeConfig.defaultDeadlineMillis,
        maxInFlight: Int = NodeConfig.defaultMaxInFlight,
        tls: TLSFiles,
        limits: ServerLimits = ServerLimits(),
        maxBatch: Int = NodeConfig.defaultMaxBatch,
        maxBatchDelayMicros: Int = NodeConfig.defaultMaxBatchDelayMicros,
        protocolVersion: Int = NodeConfig.protocolVersions.upperBound,
        precision: Precision = .float32
    ) {
        self.protocolVersion = protocolVersion
        self.precision = precision
        self.name = name
        self.role = role
        self.stages = stages
        self.thresholds = thresholds
        self.listen = listen
        self.address = address
        self.metrics = metrics
        self.replicas = replicas
        self.upstream = upstream
        self.codec = codec
        self.onUpstreamFailure = onUpstreamFailure
        self.deadlineMillis = deadlineMillis
        self.maxInFlight = maxInFlight
        self.tls = tls
        self.limits = limits
        self.maxBatch = maxBatch
        self.maxBatchDelayMicros = maxBatchDelayMicros
    }

    /// Where children connect to this node: `address` when given, else `listen`. For a replicated
    /// node, see `replicas`.
    public var dialAddress: Endpoint? { address ?? listen }

    /// Every address children dial: each listed replica's, or the one `dialAddress` (for a
    /// resolved replica set, the name to resolve).
    public var dialAddresses: [Endpoint] {
        switch replicas {
        case .listed(let list): return list.map(\.address)
        case .resolved(let name): return [name]
        case nil: return dialAddress.map { [$0] } ?? []
        }
    }

    /// True for the root of the tree, the node with no upstream.
    public var isRoot: Bool { upstream == nil }
}
