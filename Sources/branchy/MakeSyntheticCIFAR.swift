import ArgumentParser
import BranchyData
import Foundation

/// `branchy make-synthetic-cifar`: a small learnable set in CIFAR-10's binary format, for tests
/// and for trying the CIFAR-10 path without the real data set.
struct MakeSyntheticCIFAR: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-synthetic-cifar",
        abstract: "Write a small learnable data set in CIFAR-10's binary format (data_batch_N.bin, test_batch.bin, batches.meta.txt).",
        discussion: """
            Each class has its own colour and pattern over a random dark background, with noise on every \
            byte, so that a small network learns it in a few steps. It is no substitute for CIFAR-10: \
            use it to check that a 3×32×32 model trains, evaluates and runs on a cluster. The same seed \
            always writes the same bytes.
            """)

    @Option(help: "Directory to write (created if missing).") var out: String
    @Option(help: "Training records, spread over data_batch_1.bin … data_batch_5.bin.") var train: Int = 2000
    @Option(help: "Test records, in test_batch.bin.") var test: Int = 500
    @Option var seed: UInt64 = 1

    func validate() throws {
        let limit = ImageDataset.maxPayloadBytes / CIFAR10.recordSize
        guard (1...limit).contains(train), (1...limit).contains(test) else {
            throw ValidationError("--train and --test must be from 1 to \(limit) records")
        }
    }

    func run() throws {
        let url = URL(fileURLWithPath: out)
        let files = try SyntheticCIFAR10.write(to: url, train: train, test: test, seed: seed)
        print("wrote \(train) training and \(test) test records (3×32×32, 10 classes) to \(url.path): \(files.joined(separator: ", "))")
    }
}
