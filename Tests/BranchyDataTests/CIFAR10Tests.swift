import Foundation
import Testing
@testable import BranchyData

@Suite struct CIFAR10LoadingTests {
    @Test func readsLabelsAndChannelPlanes() throws {
        let dir = try TempDirectory()
        let labels: [UInt8] = [6, 9, 0]
        let file = try dir.write("test_batch.bin", cifarRecords(labels))
        let ds = try ImageDataset.loadCIFAR10(files: [file])
        #expect(ds.count == 3)
        #expect(ds.shape == [3, 32, 32] && ds.channels == 3 && ds.rows == 32 && ds.cols == 32)
        #expect(ds.shapeDescription == "3×32×32")
        #expect(ds.pixelsPerImage == 3072)
        #expect(ds.labels == labels)
        #expect(ds.images.count == 3 * 3072)
        // Red plane, then green, then blue, each row-major: value (c, y, x) of record r at c·1024 + y·32 + x.
        for r in 0..<3 {
            let image = Array(ds.image(r))
            for (c, y, x) in [(0, 0, 0), (0, 0, 31), (0, 1, 0), (1, 0, 0), (1, 17, 5), (2, 31, 31)] {
                #expect(image[c * 1024 + y * 32 + x] == Float(cifarPixel(r, c, y, x)) / 255, "record \(r) channel \(c) (\(y), \(x))")
            }
        }
        // The bytes of a record after its label are the image as it is stored.
        let bytes = cifarRecords(labels)
        #expect(Array(ds.image(1)) == bytes[(3073 + 1)..<(2 * 3073)].map { Float($0) / 255 })
    }

    @Test func scalesTheFullByteRange() throws {
        let dir = try TempDirectory()
        let file = try dir.write("b.bin", cifarRecords([1]) { _, c, _, _ in c == 0 ? 0 : c == 1 ? 51 : 255 })
        let ds = try ImageDataset.loadCIFAR10(files: [file])
        #expect(Set(ds.images[0..<1024]) == [0] && Set(ds.images[1024..<2048]) == [0.2] && Set(ds.images[2048...]) == [1])
    }

    @Test func batchesAreNCHWWithThreeChannels() throws {
        let dir = try TempDirectory()
        let ds = try ImageDataset.loadCIFAR10(files: [dir.write("b.bin", cifarRecords([3, 4, 5]))])
        let batch = ds.batch(indices: [2, 0])
        #expect(batch.shape == [2, 3, 32, 32])
        #expect(batch.labels == [5, 3])
        #expect(batch.images == Array(ds.image(2)) + Array(ds.image(0)))
        let subset = ds.subset([1])
        #expect(subset.shape == [3, 32, 32] && subset.labels == [4] && subset.images == Array(ds.image(1)))
    }

    @Test func trainingSplitIsTheBatchesPresentInOrder() throws {
        let dir = try TempDirectory()
        try dir.write("data_batch_5.bin", cifarRecords([5, 5]))
        try dir.write("data_batch_1.bin", cifarRecords([1]))
        try dir.write("data_batch_2.bin", cifarRecords([2, 2, 2]))
        try dir.write("test_batch.bin", cifarRecords([7, 8]))
        let train = try ImageDataset.loadCIFAR10(directory: dir.url, split: .train)
        #expect(train.labels == [1, 2, 2, 2, 5, 5])
        let test = try ImageDataset.loadCIFAR10(directory: dir.url, split: .test)
        #expect(test.labels == [7, 8])
        // The general loaders tell the format from the names.
        #expect(try ImageDataset.load(directory: dir.url, split: .train).labels == train.labels)
        #expect(try ImageDataset.load(path: dir.url.path).labels == [7, 8])
        #expect(try ImageDataset.load(path: dir.url.appendingPathComponent("data_batch_2.bin").path).labels == [2, 2, 2])
    }
}

/// Runs `body` and returns the `CIFAR10Error` it throws, recording a failure if it throws nothing else.
func cifarError(_ body: () throws -> ImageDataset, sourceLocation: SourceLocation = #_sourceLocation) -> CIFAR10Error? {
    do {
        _ = try body()
        Issue.record("expected a CIFAR10Error, loading succeeded", sourceLocation: sourceLocation)
    } catch let error as CIFAR10Error {
        return error
    } catch {
        Issue.record("expected a CIFAR10Error, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

@Suite struct CIFAR10ErrorTests {
    @Test func sizeNotAWholeNumberOfRecords() throws {
        let dir = try TempDirectory()
        let file = try dir.write("data_batch_1.bin", cifarRecords([1, 2]) + [0, 1, 2, 3, 4])
        let error = cifarError { try ImageDataset.loadCIFAR10(files: [file]) }
        #expect(error == .partialRecord(file: file.path, size: 6151, remainder: 5))
        #expect(error?.description == "\(file.path): 6151 bytes is not a whole number of 3073-byte CIFAR-10 records "
                + "(2 records and 5 bytes left over): truncated, or not a CIFAR-10 binary batch")
    }

    @Test func shortFile() throws {
        let dir = try TempDirectory()
        let file = try dir.write("test_batch.bin", Array(cifarRecords([1]).prefix(3072)))
        let error = cifarError { try ImageDataset.load(path: file.path) }
        #expect(error == .partialRecord(file: file.path, size: 3072, remainder: 3072))
        #expect(error?.description.contains("(0 records and 3072 bytes left over)") == true)
    }

    @Test func emptyFile() throws {
        let dir = try TempDirectory()
        let file = try dir.write("test_batch.bin", [])
        let error = cifarError { try ImageDataset.load(directory: dir.url, split: .test) }
        #expect(error == .empty(file: file.path))
        #expect(error?.description == "\(file.path): empty; a CIFAR-10 batch holds records of 3073 bytes (a label byte and 3×32×32 pixel bytes)")
    }

    @Test func labelOutOfRange() throws {
        let dir = try TempDirectory()
        let file = try dir.write("data_batch_3.bin", cifarRecords([0, 9, 10, 200]))
        let error = cifarError { try ImageDataset.loadCIFAR10(directory: dir.url, split: .train) }
        #expect(error == .labelOutOfRange(file: file.path, record: 2, value: 10))
        #expect(error?.description == "\(file.path): label 10 of record 2 is out of range 0...9")
    }

    @Test func labelOutOfRangeInALaterBatch() throws {
        let dir = try TempDirectory()
        try dir.write("data_batch_1.bin", cifarRecords([0, 1]))
        let second = try dir.write("data_batch_2.bin", cifarRecords([2, 255]))
        let error = cifarError { try ImageDataset.load(directory: dir.url, split: .train) }
        #expect(error == .labelOutOfRange(file: second.path, record: 1, value: 255))
    }

    @Test func noTrainingBatches() throws {
        let dir = try TempDirectory()
        try dir.write("test_batch.bin", cifarRecords([1]))
        let error = cifarError { try ImageDataset.load(directory: dir.url, split: .train) }
        let expected = (1...5).map { "data_batch_\($0).bin" }
        #expect(error == .notFoundInDirectory(directory: dir.url.path, split: .train, expected: expected))
        #expect(error?.description == "\(dir.url.path): no CIFAR-10 training batch found (expected "
                + "data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin; at least one)")
    }

    @Test func noTestBatch() throws {
        let dir = try TempDirectory()
        try dir.write("data_batch_4.bin", cifarRecords([1]))
        let error = cifarError { try ImageDataset.load(path: dir.url.path) }
        #expect(error == .notFoundInDirectory(directory: dir.url.path, split: .test, expected: ["test_batch.bin"]))
        #expect(error?.description == "\(dir.url.path): no CIFAR-10 test batch found (expected test_batch.bin)")
    }

    @Test func missingFile() throws {
        let dir = try TempDirectory()
        let path = dir.url.appendingPathComponent("test_batch.bin").path
        let error = cifarError { try ImageDataset.load(path: path) }
        #expect(error == .fileMissing(file: path))
        #expect(error?.description == "\(path): no such file")
    }

    @Test func directoryNamedLikeABatch() throws {
        let dir = try TempDirectory()
        let inner = dir.url.appendingPathComponent("data_batch_1.bin")
        try FileManager.default.createDirectory(at: inner, withIntermediateDirectories: false)
        let error = cifarError { try ImageDataset.loadCIFAR10(files: [inner]) }
        #expect(error == .unreadable(file: inner.path, reason: "it is a directory"))
    }

    /// Sizes are checked before anything is read: sparse files announce more than the limit
    /// without taking the space or being read.
    @Test func fileOverTheLimitIsNotRead() throws {
        let dir = try TempDirectory()
        let file = try sparseFile(dir, "test_batch.bin", size: ImageDataset.maxPayloadBytes + 3073)
        let error = cifarError { try ImageDataset.load(path: file.path) }
        #expect(error == .tooLarge(file: file.path, bytes: ImageDataset.maxPayloadBytes + 3073, limit: ImageDataset.maxPayloadBytes))
        #expect(error?.description == "\(file.path): 1073744897 bytes, more than the limit of 1073741824 for a data set")
    }

    @Test func splitOverTheLimitIsNotRead() throws {
        let dir = try TempDirectory()
        let size = 3073 * 200_000  // 614.6 MB each, 1.23 GB together
        let files = try (1...2).map { try sparseFile(dir, "data_batch_\($0).bin", size: size) }
        let error = cifarError { try ImageDataset.load(directory: dir.url, split: .train) }
        #expect(error == .splitTooLarge(files: files.map(\.path), bytes: 2 * size, limit: ImageDataset.maxPayloadBytes))
        #expect(error?.description.hasSuffix(": 1229200000 bytes together, more than the limit of 1073741824 for a data set") == true)
    }

    @Test func readingStopsAtTheLimit() throws {
        let dir = try TempDirectory()
        let file = try dir.write("b.bin", cifarRecords([1, 2]))
        #expect(throws: CIFAR10Error.tooLarge(file: file.path, bytes: 6146, limit: 3073)) { try CIFAR10.readBatch(file, limit: 3073) }
        #expect(try CIFAR10.readBatch(file, limit: 6146).count == 6146)
    }

    private func sparseFile(_ dir: TempDirectory, _ name: String, size: Int) throws -> URL {
        let url = try dir.write(name, [])
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: UInt64(size))
        try handle.close()
        return url
    }
}
