import Foundation
import Yams

/// One entry of `nodes:` as read from the file: the node plus where each key was
/// found, so later checks can point at the right line.
struct ParsedNode {
    var config: NodeConfig
    /// `nodes[i]`.
    var path: String
    /// Line of the entry.
    var line: Int?
    /// Keys present in the file, with the line of their value.
    var keyLines: [String: Int?]

    func keyPath(_ key: String) -> String { path + "." + key }
    func line(of key: String) -> Int? { keyLines[key].flatMap { $0 } ?? line }
    func has(_ key: String) -> Bool { keyLines[key] != nil }
}

/// The file's contents after syntax, key and type checks, before any cross-node check.
struct TopologyDocument {
    static let topKeys = ["model", "dataset", "certs", "nodes"]
    static let nodeKeys = ["name", "role", "stages", "thresholds", "listen", "address", "metrics", "replicas", "upstream", "codec",
                           "onUpstreamFailure", "deadlineMs", "maxInFlight", "tls", "limits",
                           "maxBatch", "maxBatchDelayMicros", "protocol", "precision"]
    /// Keys of the dynamic batcher, for nodes that serve children (edges and clouds).
    static let batchKeys = ["maxBatch", "maxBatchDelayMicros"]
    /// Keys that describe the link to the upstream node.
    static let linkKeys = ["codec", "onUpstreamFailure", "deadlineMs", "maxInFlight", "protocol"]
    static let tlsKeys = ["ca", "cert", "key"]

    var modelDirectory: URL
    var dataset: URL?
    var certsDirectory: URL?
    var nodes: [ParsedNode]

    /// Parses `yaml`; relative paths resolve against `baseDirectory`.
    init(yaml: String, baseDirectory: URL, context: ErrorContext) throws {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw Self.syntaxError(error, context: context)
        }
        guard let root else {
            throw context.error("", "the file is empty; expected a mapping with keys \(Self.topKeys.joined(separator: ", "))")
        }
        let top = try MappingReader(root, path: "", allowed: Self.topKeys, context: context)
        guard let model = try top.string("model") else { throw top.missing("model") }
        modelDirectory = Self.resolve(model, against: baseDirectory)
        dataset = try top.string("dataset").map { Self.resolve($0, against: baseDirectory) }
        certsDirectory = try top.string("certs").map { Self.resolve($0, against: baseDirectory) }
        guard let entries = try top.list("nodes") else { throw top.missing("nodes") }
        guard !entries.isEmpty else {
            throw context.error("nodes", "the list is empty; at least one node is needed", line: top.line(of: "nodes"))
        }
        let tlsBase = certsDirectory ?? baseDirectory
        nodes = try entries.enumerated().map { index, entry in
            try Self.parseNode(entry, path: "nodes[\(index)]", tlsBase: tlsBase, context: context)
        }
    }

    private static func parseNode(_ entry: Node, path: String, tlsBase: URL, context: ErrorContext) throws -> ParsedNode {
        let reader = try MappingReader(entry, path: path, allowed: nodeKeys, context: context)
        guard let name = try reader.string("name") else { throw reader.missing("name") }
        let allowedName = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard name.allSatisfy({ allowedName.contains($0) }) else {
            throw context.error(reader.keyPath("name"), "node name '\(name)' may contain only letters, digits, '-', '_' and '.'",
                                line: reader.line(of: "name"))
        }
        guard let roleName = try reader.string("role") else { throw reader.missing("role") }
        guard let role = NodeRole(rawValue: roleName) else {
            throw context.error(reader.keyPath("role"), "unknown role '\(roleName)' (expected device, edge or cloud)",
                                line: reader.line(of: "role"))
        }
        guard let stageNodes = try reader.list("stages") else { throw reader.missing("stages") }
        guard !stageNodes.isEmpty || role == .device else {
            throw context.error(reader.keyPath("stages"),
                                "an \(role.rawValue) must host at least one stage (only a device may host none and send its raw input upstream)",
                                line: reader.line(of: "stages"))
        }
        let stages = try stageNodes.enumerated().map { i, node in
            try MappingReader.string(node, keyPath: reader.keyPath("stages[\(i)]"), context: context)
        }
        let thresholds = try (reader.list("thresholds") ?? []).enumerated().map { i, node in
            try parseThreshold(node, keyPath: reader.keyPath("thresholds[\(i)]"), context: context)
        }
        let listen = try parseEndpoint(reader, "listen")
        let address = try parseEndpoint(reader, "address")
        let metrics = try parseEndpoint(reader, "metrics")
        let replicas = try parseReplicas(reader)
        let codec = try reader.string("codec") ?? "float32"
        guard NodeConfig.codecNames.contains(codec) else {
            throw context.error(reader.keyPath("codec"),
                                "unknown codec '\(codec)' (expected one of \(NodeConfig.codecKindNames.joined(separator: ", ")), "
                                + "each optionally followed by +lz4 or +zstd)",
                                line: reader.line(of: "codec"))
        }
        let protocolVersion = try bounded(reader, "protocol", NodeConfig.protocolVersions) ?? NodeConfig.protocolVersions.upperBound
        if protocolVersion < 2 && !NodeConfig.version1CodecNames.contains(codec) {
            throw context.error(reader.keyPath("codec"),
                                "codec '\(codec)' needs protocol version 2, but the node sets 'protocol: \(protocolVersion)' "
                                + "(version 1 carries \(NodeConfig.version1CodecNames.joined(separator: ", ")) only)",
                                line: reader.line(of: "codec"))
        }
        let policyName = try reader.string("onUpstreamFailure") ?? FailurePolicy.degrade.rawValue
        guard let policy = FailurePolicy(rawValue: policyName) else {
            throw context.error(reader.keyPath("onUpstreamFailure"), "unknown policy '\(policyName)' (expected degrade or fail)",
                                line: reader.line(of: "onUpstreamFailure"))
        }
        let deadline = try bounded(reader, "deadlineMs", 1...NodeConfig.deadlineMillisLimit) ?? NodeConfig.defaultDeadlineMillis
        let maxInFlight = try bounded(reader, "maxInFlight", 1...NodeConfig.maxInFlightLimit) ?? NodeConfig.defaultMaxInFlight
        let maxBatch = try bounded(reader, "maxBatch", NodeConfig.maxBatchRange) ?? NodeConfig.defaultMaxBatch
        let maxBatchDelay = try bounded(reader, "maxBatchDelayMicros", NodeConfig.maxBatchDelayMicrosRange)
            ?? NodeConfig.defaultMaxBatchDelayMicros
        let tls = try parseTLS(reader, nodeName: name, base: tlsBase)
        let limits = try parseLimits(reader)
        let precisionName = try reader.string("precision") ?? Precision.float32.rawValue
        guard let precision = Precision(rawValue: precisionName) else {
            throw context.error(reader.keyPath("precision"), "unknown precision '\(precisionName)' (expected float32 or int8)",
                                line: reader.line(of: "precision"))
        }
        if precision == .int8 && stages.isEmpty {
            throw context.error(reader.keyPath("precision"), "'precision: int8' needs stages to run in int8, and this node hosts none",
                                line: reader.line(of: "precision"))
        }

        let config = NodeConfig(
            name: name, role: role, stages: stages, thresholds: thresholds, listen: listen,
            address: address, metrics: metrics, replicas: replicas, upstream: try reader.string("upstream"), codec: codec, onUpstreamFailure: policy,
            deadlineMillis: deadline, maxInFlight: maxInFlight, tls: tls, limits: limits,
            maxBatch: maxBatch, maxBatchDelayMicros: maxBatchDelay, protocolVersion: protocolVersion, precision: precision)
        var keyLines: [String: Int?] = [:]
        for key in nodeKeys where reader.value(key) != nil { keyLines[key] = reader.line(of: key) }
        return ParsedNode(config: config, path: path, line: reader.line, keyLines: keyLines)
    }

    /// `key` (`listen` or `address`) as an `Endpoint`, or nil when absent.
    private static func parseEndpoint(_ reader: MappingReader, _ key: String) throws -> Endpoint? {
        try reader.string(key).map { text in
            do { return try Endpoint(parsing: text) } catch let error as EndpointError {
                throw reader.context.error(reader.keyPath(key), error.description, line: reader.line(of: key))
            }
        }
    }

    /// `replicas:` as a list of `HOST:PORT` (or `{address: HOST:PORT, metrics: HOST:PORT}`) entries,
    /// or one `HOST:PORT` whose host resolves to every replica; nil when absent.
    private static func parseReplicas(_ reader: MappingReader) throws -> ReplicaSet? {
        guard let node = reader.value("replicas") else { return nil }
        let context = reader.context
        func endpoint(_ text: String, _ keyPath: String, _ line: Int?) throws -> Endpoint {
            do { return try Endpoint(parsing: text) } catch let error as EndpointError {
                throw context.error(keyPath, error.description, line: line)
            }
        }
        switch node {
        case .scalar:
            let text = try MappingReader.string(node, keyPath: reader.keyPath("replicas"), context: context)
            return .resolved(try endpoint(text, reader.keyPath("replicas"), reader.line(of: "replicas")))
        case .sequence(let sequence):
            guard !sequence.isEmpty else {
                throw context.error(reader.keyPath("replicas"), "the list is empty; give one address per replica, or omit 'replicas'",
                                    line: reader.line(of: "replicas"))
            }
            return .listed(try sequence.enumerated().map { i, item in
                let keyPath = reader.keyPath("replicas[\(i)]")
                if case .mapping = item {
                    let entry = try MappingReader(item, path: keyPath, allowed: ["address", "metrics"], context: context)
                    guard let address = try entry.string("address") else { throw entry.missing("address") }
                    return Replica(address: try endpoint(address, entry.keyPath("address"), entry.line(of: "address")),
                                   metrics: try entry.string("metrics").map { try endpoint($0, entry.keyPath("metrics"), entry.line(of: "metrics")) })
                }
                let text = try MappingReader.string(item, keyPath: keyPath, context: context)
                return Replica(address: try endpoint(text, keyPath, item.mark?.line))
            })
        default:
            throw context.error(reader.keyPath("replicas"),
                                "expected a list of HOST:PORT addresses (one per replica) or one HOST:PORT whose host resolves to every replica, "
                                + "got \(MappingReader.describe(node))", line: reader.line(of: "replicas"))
        }
    }

    private static func parseThreshold(_ node: Node, keyPath: String, context: ErrorContext) throws -> Float {
        guard case .scalar = node, let value = node.float else {
            throw context.error(keyPath, "expected a number, got \(MappingReader.describe(node))", line: node.mark?.line)
        }
        guard value.isFinite, value >= 0 else {
            throw context.error(keyPath, "threshold must be finite and >= 0, got \(value)", line: node.mark?.line)
        }
        return Float(value)
    }

    private static func bounded(_ reader: MappingReader, _ key: String, _ range: ClosedRange<Int>) throws -> Int? {
        guard let value = try reader.int(key) else { return nil }
        guard range.contains(value) else {
            let what = range.lowerBound == 1 ? "a positive integer" : "an integer"
            throw reader.context.error(reader.keyPath(key),
                                       "must be \(what) from \(range.lowerBound) to \(range.upperBound), got \(value)",
                                       line: reader.line(of: key))
        }
        return value
    }

    private static func parseLimits(_ reader: MappingReader) throws -> ServerLimits {
        var limits = ServerLimits()
        guard let node = reader.value("limits") else { return limits }
        let mapping = try MappingReader(node, path: reader.keyPath("limits"), allowed: ServerLimits.keys.map(\.key),
                                        context: reader.context)
        for (key, range) in ServerLimits.keys {
            guard let value = try bounded(mapping, key, range) else { continue }
            switch key {
            case "handshakeTimeoutMs": limits.handshakeTimeoutMillis = value
            case "idleTimeoutMs": limits.idleTimeoutMillis = value
            case "maxConnections": limits.maxConnections = value
            case "maxConnectionsPerPeer": limits.maxConnectionsPerPeer = value
            case "inputBudgetBytes": limits.inputBudgetBytes = value
            default: limits.peerInputBudgetBytes = value
            }
        }
        guard limits.peerInputBudgetBytes <= limits.inputBudgetBytes else {
            throw reader.context.error(mapping.keyPath("peerInputBudgetBytes"),
                                       "must not exceed inputBudgetBytes (\(limits.inputBudgetBytes)), got \(limits.peerInputBudgetBytes)",
                                       line: mapping.line(of: "peerInputBudgetBytes"))
        }
        return limits
    }

    private static func parseTLS(_ reader: MappingReader, nodeName: String, base: URL) throws -> TLSFiles {
        var paths = ["ca": "ca.pem", "cert": "\(nodeName).pem", "key": "\(nodeName)-key.pem"]
        if let node = reader.value("tls") {
            let tls = try MappingReader(node, path: reader.keyPath("tls"), allowed: tlsKeys, context: reader.context)
            for key in tlsKeys {
                if let path = try tls.string(key) { paths[key] = path }
            }
        }
        return TLSFiles(ca: resolve(paths["ca"]!, against: base),
                        cert: resolve(paths["cert"]!, against: base),
                        key: resolve(paths["key"]!, against: base))
    }

    /// An absolute, standardized file URL for `path`; relative paths resolve against `base`.
    static func resolve(_ path: String, against base: URL) -> URL {
        let expanded = (path as NSString).expandingTildeInPath
        if expanded.hasPrefix("/") { return URL(fileURLWithPath: expanded).standardizedFileURL }
        return URL(fileURLWithPath: base.path).appendingPathComponent(expanded).standardizedFileURL
    }

    private static func syntaxError(_ error: YamlError, context: ErrorContext) -> TopologyError {
        switch error {
        case let .scanner(yamlContext, problem, mark, _),
             let .parser(yamlContext, problem, mark, _),
             let .composer(yamlContext, problem, mark, _):
            var reason = "YAML syntax error at column \(mark.column): \(problem)"
            if let yamlContext { reason += " (\(yamlContext.text) at line \(yamlContext.mark.line))" }
            return context.error("", reason, line: mark.line)
        case let .duplicatedKeysInMapping(duplicates, yamlContext):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return context.error("", "YAML error: key \(keys) appears more than once in one mapping",
                                 line: yamlContext.mark.line > 0 ? yamlContext.mark.line : nil)
        default:
            return context.error("", "YAML error: \(error)")
        }
    }
}
