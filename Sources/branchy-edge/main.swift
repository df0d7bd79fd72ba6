import ArgumentParser
import BranchyNode
import BranchyObservability

/// The edge tier: serves its children and forwards what it is unsure of to the cloud.
@main
struct EdgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "branchy-edge",
        abstract: "Run an edge node of a Branchy cluster until SIGINT/SIGTERM, then drain.")

    @Option(help: "Topology file.") var topology: String
    @Option(help: "Name of this node in the topology.") var node: String
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel = "info"
    @Option(help: "Log format: text (plain lines) or json (one JSON object per line, for log collectors).") var logFormat: LogFormat = .text
    @Option(help: "Seconds to let in-flight requests finish on shutdown.") var drainSeconds = 10.0
    @Option(help: "Which listed replica of the node to run (0, 1, …): it binds that replica's address when the node has no 'listen:'.")
    var replica: Int?

    func run() async throws {
        try await NodeMain.serve(topology: topology, node: node, role: .edge, logLevel: logLevel, logFormat: logFormat, drainSeconds: drainSeconds, replica: replica)
    }
}

extension LogFormat: ExpressibleByArgument {}
