import ArgumentParser
import BranchyNodeOptions

/// The cloud tier: hosts the last stage and always answers.
@main
struct CloudCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "branchy-cloud",
        abstract: "Run a cloud node of a Branchy cluster until SIGINT/SIGTERM, then drain.")

    @OptionGroup var options: ServerOptions

    func run() async throws {
        try await options.serve(role: .cloud)
    }
}
