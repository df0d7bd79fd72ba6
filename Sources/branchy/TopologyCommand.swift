import ArgumentParser
import BranchyTopology
import Foundation

/// `branchy topology`: reads topology files with the real loader, for scripts and people.
struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Read topology files with the same loader the nodes use.",
        subcommands: [TopologyShow.self])
}

/// `branchy topology show`: the topology as the loader reads it (paths absolute, defaults filled
/// in), as JSON or as one tab-separated line per node. TLS files are not checked, so it works
/// before the certificates are made.
struct TopologyShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print a topology as the loader reads it: JSON, or one tab-separated line per node.",
        discussion: """
            --format json (the default) prints an object with keys file, model, dataset (null when \
            absent), certs (the certs: folder, else the topology's own folder) and nodes, every path \
            absolute. --format tsv prints one line per node with the columns name, role, listen, \
            upstream, stages, thresholds, codec, address: lists comma-separated, '-' for a missing \
            value (the codec of the root, which has no upstream link, is '-').
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case json, tsv
    }

    @Argument(help: "Topology file.") var topology: String
    @Option(help: "Output format: json or tsv.") var format: Format = .json

    func run() throws {
        print(try Self.show(path: topology, format: format), terminator: "")
    }

    /// Loads the topology at `path` (without checking TLS files) and renders it.
    static func show(path: String, format: Format) throws -> String {
        let topology = try Topology.load(contentsOf: URL(fileURLWithPath: path), checkFiles: false)
        switch format {
        case .json: return try json(topology)
        case .tsv: return tsv(topology)
        }
    }

    // MARK: - JSON

    /// The topology as one JSON object on one line, keys sorted, ending in a newline.
    static func json(_ topology: Topology) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object(topology),
                                              options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// The topology as JSON values (`NSNull` for a missing value).
    static func object(_ topology: Topology) -> [String: Any] {
        [
            "file": topology.fileURL.absoluteURL.standardizedFileURL.path,
            "model": topology.modelDirectory.path,
            "dataset": nullable(topology.dataset?.path),
            "certs": certsDirectory(topology).path,
            "nodes": topology.nodes.map(object),
        ]
    }

    static func object(_ node: NodeConfig) -> [String: Any] {
        [
            "name": node.name,
            "role": node.role.rawValue,
            "stages": node.stages,
            "thresholds": node.thresholds.map { Double(number($0)) ?? Double($0) },
            "listen": nullable(node.listen?.description),
            "address": nullable(node.address?.description),
            "dial": nullable(node.dialAddress?.description),
            "dialAddresses": node.dialAddresses.map(\.description),
            "metrics": nullable(node.metrics?.description),
            "replicas": replicas(node.replicas),
            "upstream": nullable(node.upstream),
            "codec": node.codec,
            "onUpstreamFailure": node.onUpstreamFailure.rawValue,
            "deadlineMillis": node.deadlineMillis,
            "maxInFlight": node.maxInFlight,
            "maxBatch": node.maxBatch,
            "maxBatchDelayMicros": node.maxBatchDelayMicros,
            "protocolVersion": node.protocolVersion,
            "precision": node.precision.rawValue,
            "tls": ["ca": node.tls.ca.path, "cert": node.tls.cert.path, "key": node.tls.key.path],
            "limits": [
                "handshakeTimeoutMillis": node.limits.handshakeTimeoutMillis,
                "idleTimeoutMillis": node.limits.idleTimeoutMillis,
                "maxConnections": node.limits.maxConnections,
                "maxConnectionsPerPeer": node.limits.maxConnectionsPerPeer,
                "inputBudgetBytes": node.limits.inputBudgetBytes,
                "peerInputBudgetBytes": node.limits.peerInputBudgetBytes,
            ],
        ]
    }

    /// `replicas:` in the file's own shapes: a list of `{address, metrics}` objects (metrics null
    /// when the replica has none of its own), one `host:port` string for a resolved set, or null.
    static func replicas(_ set: ReplicaSet?) -> Any {
        switch set {
        case .listed(let list):
            return list.map { ["address": $0.address.description, "metrics": nullable($0.metrics?.description)] as [String: Any] }
        case .resolved(let name):
            return name.description
        case nil:
            return NSNull()
        }
    }

    // MARK: - TSV

    /// One line per node: name, role, listen, upstream, stages, thresholds, codec, address.
    static func tsv(_ topology: Topology) -> String {
        topology.nodes.map { node in
            [
                node.name,
                node.role.rawValue,
                node.listen?.description,
                node.upstream,
                node.stages.joined(separator: ","),
                node.thresholds.map(number).joined(separator: ","),
                node.upstream == nil ? nil : node.codec,
                node.address?.description,
            ].map { $0.flatMap { $0.isEmpty ? nil : $0 } ?? "-" }.joined(separator: "\t") + "\n"
        }.joined()
    }

    // MARK: - Helpers

    /// Where the nodes' TLS files are by default: `certs:`, else the topology file's folder.
    static func certsDirectory(_ topology: Topology) -> URL {
        topology.certsDirectory ?? topology.fileURL.absoluteURL.deletingLastPathComponent().standardizedFileURL
    }

    /// A threshold as written: `1` for a whole number, else the shortest text that reads back as it (`0.65`).
    static func number(_ value: Float) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func nullable(_ value: String?) -> Any { value.map { $0 as Any } ?? NSNull() }
}
