import Foundation
import Testing
@testable import BranchyData

@Suite struct DatasetFormatTests {
    @Test func idxDirectory() throws {
        let dir = try TempDirectory()
        try dir.write("t10k-images-idx3-ubyte.gz", gzip(imagesIDX(count: 2, rows: 28, cols: 28)))
        try dir.write("t10k-labels-idx1-ubyte.gz", gzip(labelsIDX([4, 2])))
        #expect(try DatasetFormat.detect(directory: dir.url) == .idx)
        let ds = try ImageDataset.load(directory: dir.url, split: .test)
        #expect(ds.shape == [1, 28, 28] && ds.shapeDescription == "1×28×28" && ds.labels == [4, 2])
    }

    @Test(arguments: ["data_batch_1.bin", "data_batch_5.bin", "test_batch.bin"])
    func cifarDirectory(name: String) throws {
        let dir = try TempDirectory()
        try dir.write(name, cifarRecords([3]))
        #expect(try DatasetFormat.detect(directory: dir.url) == .cifar10)
    }

    @Test func theCommittedFashionMNISTIsIDX() throws {
        #expect(try DatasetFormat.detect(directory: packageRoot.appendingPathComponent("data/fashion-mnist")) == .idx)
    }

    @Test func neitherFormat() throws {
        let dir = try TempDirectory()
        try dir.write("readme.txt", Array("hello".utf8))
        try dir.write("data_batch_6.bin", cifarRecords([1]))  // not a name CIFAR-10 uses
        let error = #expect(throws: DatasetError.self) { try ImageDataset.load(directory: dir.url, split: .train) }
        #expect(error == .unknownFormat(directory: dir.url.path, nested: nil))
        #expect(error?.description == "\(dir.url.path): no data set found: neither IDX files (train- or t10k-images-idx3-ubyte and "
                + "-labels-idx1-ubyte, optionally .gz), CIFAR-10 binary batches (data_batch_1.bin … data_batch_5.bin, test_batch.bin) "
                + "nor an image folder (one subfolder per class of PNG or JPEG files)")
    }

    @Test func theDirectoryTheTarballUnpacksIn() throws {
        let dir = try TempDirectory()
        let nested = dir.url.appendingPathComponent("cifar-10-batches-bin")
        try FileManager.default.createDirectory(at: nested, withIntermediateDirectories: false)
        let error = #expect(throws: DatasetError.self) { try ImageDataset.load(path: dir.url.path) }
        #expect(error == .unknownFormat(directory: dir.url.path, nested: nested.path))
        #expect(error?.description.hasSuffix("; give the directory \(nested.path) instead") == true)
    }

    @Test func bothFormats() throws {
        let dir = try TempDirectory()
        try dir.write("train-images-idx3-ubyte", imagesIDX(count: 1, rows: 2, cols: 2))
        try dir.write("test_batch.bin", cifarRecords([1]))
        let error = #expect(throws: DatasetError.self) { try DatasetFormat.detect(directory: dir.url) }
        #expect(error == .mixedFormats(directory: dir.url.path))
        #expect(error?.description == "\(dir.url.path): holds both IDX files and CIFAR-10 binary batches; give each data set a directory of its own")
    }

    @Test func anIDXDirectoryMissingASplitKeepsItsError() throws {
        let dir = try TempDirectory()
        try dir.write("t10k-images-idx3-ubyte", imagesIDX(count: 1, rows: 2, cols: 2))
        #expect(throws: IDXError.notFoundInDirectory(directory: dir.url.path,
                                                     candidates: ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"])) {
            try ImageDataset.load(directory: dir.url, split: .train)
        }
    }
}
