import Foundation
import Testing
@testable import BranchyData

@Suite struct SyntheticCIFAR10Tests {
    @Test func writesTheBinaryLayout() throws {
        let dir = try TempDirectory()
        let files = try SyntheticCIFAR10.write(to: dir.url, train: 53, test: 20, seed: 3)
        #expect(files == (1...5).map { "data_batch_\($0).bin" } + ["test_batch.bin", "batches.meta.txt"])
        let sizes = try (1...5).map { try Data(contentsOf: dir.url.appendingPathComponent("data_batch_\($0).bin")).count }
        #expect(sizes == [11, 11, 11, 10, 10].map { $0 * 3073 })
        let meta = try String(contentsOf: dir.url.appendingPathComponent("batches.meta.txt"), encoding: .utf8)
        #expect(meta.split(separator: "\n") == CIFAR10.classNames.map { Substring($0) })
        let train = try ImageDataset.load(directory: dir.url, split: .train)
        let test = try ImageDataset.load(directory: dir.url, split: .test)
        #expect(train.count == 53 && test.count == 20 && train.shape == [3, 32, 32])
        // Balanced labels: every class 5 or 6 times among 53, twice among 20.
        for c in 0..<10 {
            #expect((5...6).contains(train.labels.filter { $0 == c }.count))
            #expect(test.labels.filter { $0 == c }.count == 2)
        }
    }

    @Test func sameSeedSameBytes() {
        #expect(SyntheticCIFAR10.records(count: 12, seed: 9) == SyntheticCIFAR10.records(count: 12, seed: 9))
        #expect(SyntheticCIFAR10.records(count: 12, seed: 9) != SyntheticCIFAR10.records(count: 12, seed: 10))
        #expect(SyntheticCIFAR10.records(count: 12, seed: 9).count == 12 * 3073)
    }

    /// Each class's mean colour is closest to its own palette entry's direction: the colour alone tells the classes apart.
    @Test func classesDifferInColour() {
        let bytes = SyntheticCIFAR10.records(count: 200, seed: 4)
        var means = [[Double]](repeating: [0, 0, 0], count: 10)
        var counts = [Int](repeating: 0, count: 10)
        for r in 0..<200 {
            let label = Int(bytes[r * 3073])
            counts[label] += 1
            for c in 0..<3 {
                means[label][c] += bytes[(r * 3073 + 1 + c * 1024)..<(r * 3073 + 1 + (c + 1) * 1024)].reduce(0.0) { $0 + Double($1) } / 1024
            }
        }
        for a in 0..<10 { for b in (a + 1)..<10 {
            let ma = means[a].map { $0 / Double(counts[a]) }, mb = means[b].map { $0 / Double(counts[b]) }
            let distance = zip(ma, mb).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            #expect(distance > 8, "classes \(a) and \(b): mean colours \(ma) and \(mb)")
        } }
    }

    @Test func fewRecordsFewBatchesAndStaleOnesRemoved() throws {
        let dir = try TempDirectory()
        try SyntheticCIFAR10.write(to: dir.url, train: 10, test: 2, seed: 1)
        let files = try SyntheticCIFAR10.write(to: dir.url, train: 2, test: 1, seed: 1)
        #expect(files == ["data_batch_1.bin", "data_batch_2.bin", "test_batch.bin", "batches.meta.txt"])
        #expect(!FileManager.default.fileExists(atPath: dir.url.appendingPathComponent("data_batch_3.bin").path))
        #expect(try ImageDataset.load(directory: dir.url, split: .train).count == 2)
    }
}
