import ArgumentParser
import BranchyNodeOptions

/// The edge tier: serves its children and forwards what it is unsure of to the cloud.
@main
struct EdgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "branchy-edge",
        abstract: "Run an edge node of a Branchy cluster until SIGINT/SIGTERM, then drain.")

    @OptionGroup var options: ServerOptions

    func run() async throws {
        try await options.serve(role: .edge)
    }
}
