import ArgumentParser
import BranchyNode
import BranchyObservability
import BranchyTopology

/// The options of the server executables (`branchy-edge`, `branchy-cloud`), which differ only in the role they serve.
public struct ServerOptions: ParsableArguments {
    @Option(help: "Topology file.") public var topology: String
    @Option(help: "Name of this node in the topology.") public var node: String
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") public var logLevel = "info"
    @Option(help: "Log format: text (plain lines) or json (one JSON object per line, for log collectors).") public var logFormat: LogFormat = .text
    @Option(help: "Seconds to let in-flight requests finish on shutdown.") public var drainSeconds = 10.0
    @Option(help: "Which listed replica of the node to run (0, 1, …): it binds that replica's address when the node has no 'listen:'.")
    public var replica: Int?
    /// Applications' requests, served only with --http or --grpc, by a node hosting the first stage
    /// (a cloud-only or edge-first deployment).
    @OptionGroup(title: "Front door (with --http or --grpc; a node hosting the first stage only)") public var frontDoor: FrontDoorOptions

    public init() {}

    /// Serves the node as `role` until SIGINT or SIGTERM, then drains (`NodeMain.serve`).
    public func serve(role: BranchyTopology.NodeRole) async throws {
        let options = frontDoor
        try await NodeMain.serve(topology: topology, node: node, role: role, logLevel: logLevel, logFormat: logFormat,
                                 drainSeconds: drainSeconds, replica: replica) { input in
            try options.configuration(defaultHTTP: nil, defaultGRPC: nil, input: input)
        }
    }
}

extension LogFormat: ExpressibleByArgument {}
