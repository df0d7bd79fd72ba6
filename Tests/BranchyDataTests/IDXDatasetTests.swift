import Foundation
import Testing
@testable import BranchyData

@Suite struct IDXDatasetLoadingTests {
    let labels: [UInt8] = [3, 0, 9, 7, 1]

    @Test func loadsPlainFiles() throws {
        let dir = try TempDirectory()
        let images = imagesIDX(count: 5, rows: 2, cols: 3)
        let ds = try IDXDataset.load(images: dir.write("img", images), labels: dir.write("lbl", labelsIDX(labels)))
        #expect(ds.count == 5)
        #expect(ds.rows == 2)
        #expect(ds.cols == 3)
        #expect(ds.pixelsPerImage == 6)
        #expect(ds.labels == labels)
        #expect(ds.images.count == 30)
        #expect(ds.images == images[16...].map { Float($0) / 255 })
        #expect(Array(ds.image(2)) == images[(16 + 12)..<(16 + 18)].map { Float($0) / 255 })
        #expect(ds.images.allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    @Test func scalesFullByteRange() throws {
        let dir = try TempDirectory()
        let ds = try IDXDataset.load(images: dir.write("img", imagesIDX(count: 1, rows: 1, cols: 3, pixels: [0, 51, 255])),
                                     labels: dir.write("lbl", labelsIDX([0])))
        #expect(ds.images == [0, 0.2, 1])
    }

    @Test func gzippedFilesMatchPlain() throws {
        let dir = try TempDirectory()
        let images = imagesIDX(count: 5, rows: 4, cols: 4)
        let plain = try IDXDataset.load(images: dir.write("img", images), labels: dir.write("lbl", labelsIDX(labels)))
        let gz = try IDXDataset.load(images: dir.write("img.gz", gzip(images)),
                                     labels: dir.write("lbl.gz", gzip(labelsIDX(labels))))
        #expect(gz.images == plain.images)
        #expect(gz.labels == plain.labels)
        #expect(gz.rows == 4 && gz.cols == 4 && gz.count == 5)
    }

    @Test func gzipLargerThanOneChunk() throws {
        // 300 images of 28×28 inflate to ~235 kB, several 64 kB output chunks.
        let dir = try TempDirectory()
        let images = imagesIDX(count: 300, rows: 28, cols: 28)
        let ds = try IDXDataset.load(images: dir.write("img.gz", gzip(images)),
                                     labels: dir.write("lbl", labelsIDX([UInt8](repeating: 4, count: 300))))
        #expect(ds.count == 300)
        #expect(ds.images == images[16...].map { Float($0) / 255 })
    }

    @Test func concatenatedGzipMembers() throws {
        let dir = try TempDirectory()
        let images = imagesIDX(count: 5, rows: 3, cols: 3)
        let split = 20
        let joined = try gzip(Array(images[..<split])) + gzip(Array(images[split...]))
        let ds = try IDXDataset.load(images: dir.write("img.gz", joined), labels: dir.write("lbl", labelsIDX(labels)))
        #expect(ds.images == images[16...].map { Float($0) / 255 })
    }

    @Test func loadsSplitsFromDirectory() throws {
        let dir = try TempDirectory()
        try dir.write("train-images-idx3-ubyte", imagesIDX(count: 5, rows: 2, cols: 2))
        try dir.write("train-labels-idx1-ubyte", labelsIDX(labels))
        try dir.write("t10k-images-idx3-ubyte.gz", gzip(imagesIDX(count: 2, rows: 2, cols: 2)))
        try dir.write("t10k-labels-idx1-ubyte.gz", gzip(labelsIDX([5, 6])))
        let train = try IDXDataset.load(directory: dir.url, split: .train)
        let test = try IDXDataset.load(directory: dir.url, split: .test)
        #expect(train.count == 5 && train.labels == labels)
        #expect(test.count == 2 && test.labels == [5, 6])
    }

    @Test func plainFileWinsOverGzip() throws {
        let dir = try TempDirectory()
        try dir.write("t10k-images-idx3-ubyte", imagesIDX(count: 1, rows: 1, cols: 1))
        try dir.write("t10k-images-idx3-ubyte.gz", gzip(imagesIDX(count: 2, rows: 1, cols: 1)))
        try dir.write("t10k-labels-idx1-ubyte", labelsIDX([1]))
        try dir.write("t10k-labels-idx1-ubyte.gz", gzip(labelsIDX([1, 2])))
        #expect(try IDXDataset.load(directory: dir.url, split: .test).count == 1)
    }

    @Test func loadPathAcceptsDirectoryOrImagesFile() throws {
        let dir = try TempDirectory()
        try dir.write("t10k-images-idx3-ubyte.gz", gzip(imagesIDX(count: 2, rows: 2, cols: 2)))
        try dir.write("t10k-labels-idx1-ubyte.gz", gzip(labelsIDX([5, 6])))
        let imagesFile = try dir.write("fashion-images-idx3-ubyte", imagesIDX(count: 5, rows: 2, cols: 2))
        try dir.write("fashion-labels-idx1-ubyte", labelsIDX(labels))
        #expect(try IDXDataset.load(path: dir.url.path).labels == [5, 6])
        #expect(try IDXDataset.load(path: imagesFile.path).labels == labels)
        #expect(try IDXDataset.load(path: dir.url.appendingPathComponent("t10k-images-idx3-ubyte.gz").path).labels == [5, 6])
    }

    @Test func batchGathersInGivenOrder() throws {
        let dir = try TempDirectory()
        let ds = try IDXDataset.load(images: dir.write("img", imagesIDX(count: 5, rows: 2, cols: 3)),
                                     labels: dir.write("lbl", labelsIDX(labels)))
        let batch = ds.batch(indices: [4, 0, 4])
        #expect(batch.shape == [3, 1, 2, 3])
        #expect(batch.labels == [1, 3, 1])
        #expect(batch.images == Array(ds.image(4)) + Array(ds.image(0)) + Array(ds.image(4)))
        let range = ds.batch(indices: 1..<3)
        #expect(range.shape == [2, 1, 2, 3])
        #expect(range.images == Array(ds.images[6..<18]))
        let empty = ds.batch(indices: [Int]())
        #expect(empty.shape == [0, 1, 2, 3] && empty.images.isEmpty && empty.labels.isEmpty)
    }

    @Test func inMemoryInitialiser() {
        let ds = IDXDataset(images: [0, 0.5, 1, 0.25], labels: [2, 8], rows: 1, cols: 2)
        #expect(ds.count == 2)
        #expect(Array(ds.image(1)) == [1, 0.25])
    }
}
