import ArgumentParser

@main
struct Branchy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "branchy",
        abstract: "Train, evaluate and inspect early-exit networks.",
        subcommands: [Train.self, Tune.self, Calibrate.self, Eval.self, Sweep.self, Info.self, Import.self, ExportONNX.self, Infer.self, Quantize.self, Bench.self, ScrapeConfig.self, TopologyCommand.self, MakeSyntheticCIFAR.self],
        defaultSubcommand: Eval.self)
}
