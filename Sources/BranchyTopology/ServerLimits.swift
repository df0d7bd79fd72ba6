/// What a listening node (edge or cloud) allows its peers, from the node's `limits:` mapping.
///
/// Every limit has a default, so a topology names only the ones it changes. The defaults keep
/// an edge under about 256 MB of memory and out of reach of idle or slow peers whatever they do.
public struct ServerLimits: Sendable, Hashable {
    /// Default ``handshakeTimeoutMillis``: 10 s for TCP accept to a successful hello.
    public static let defaultHandshakeTimeoutMillis = 10_000
    /// Default ``idleTimeoutMillis``: 5 minutes without a byte received and with nothing in flight.
    public static let defaultIdleTimeoutMillis = 300_000
    /// Default ``maxConnections``.
    public static let defaultMaxConnections = 1_024
    /// Default ``maxConnectionsPerPeer``.
    public static let defaultMaxConnectionsPerPeer = 8
    /// Default ``inputBudgetBytes``: 64 MiB.
    public static let defaultInputBudgetBytes = 64 << 20
    /// Default ``peerInputBudgetBytes``: 16 MiB.
    public static let defaultPeerInputBudgetBytes = 16 << 20

    /// Time from accepting a TCP connection until its TLS handshake and `hello` must be done.
    public var handshakeTimeoutMillis: Int
    /// A connection that sends no byte for this long while none of its requests is in flight is closed.
    public var idleTimeoutMillis: Int
    /// Most open connections, in any state. When full, the oldest unauthenticated (then idle)
    /// connection makes room for a new one. Also capped below the process's file-descriptor limit.
    public var maxConnections: Int
    /// Most connections one peer identity (node name) may hold at once.
    public var maxConnectionsPerPeer: Int
    /// Node-wide bound on bytes of incomplete frames buffered for all connections together.
    public var inputBudgetBytes: Int
    /// Bound on bytes of incomplete frames buffered for the connections of one peer identity.
    public var peerInputBudgetBytes: Int

    /// Creates limits; omitted values take the defaults.
    public init(
        handshakeTimeoutMillis: Int = ServerLimits.defaultHandshakeTimeoutMillis,
        idleTimeoutMillis: Int = ServerLimits.defaultIdleTimeoutMillis,
        maxConnections: Int = ServerLimits.defaultMaxConnections,
        maxConnectionsPerPeer: Int = ServerLimits.defaultMaxConnectionsPerPeer,
        inputBudgetBytes: Int = ServerLimits.defaultInputBudgetBytes,
        peerInputBudgetBytes: Int = ServerLimits.defaultPeerInputBudgetBytes
    ) {
        self.handshakeTimeoutMillis = handshakeTimeoutMillis
        self.idleTimeoutMillis = idleTimeoutMillis
        self.maxConnections = maxConnections
        self.maxConnectionsPerPeer = maxConnectionsPerPeer
        self.inputBudgetBytes = inputBudgetBytes
        self.peerInputBudgetBytes = peerInputBudgetBytes
    }

    /// The keys of `limits:` with the range each value must lie in.
    static let keys: [(key: String, range: ClosedRange<Int>)] = [
        ("handshakeTimeoutMs", 100...600_000),
        ("idleTimeoutMs", 100...86_400_000),
        ("maxConnections", 1...1_000_000),
        ("maxConnectionsPerPeer", 1...65_536),
        ("inputBudgetBytes", 65_536...(16 << 30)),
        ("peerInputBudgetBytes", 65_536...(16 << 30)),
    ]
}
