import Foundation
import Testing
@testable import BranchyData

/// Runs `body` and returns the `IDXError` it throws, recording a failure if it throws nothing else.
func idxError(_ body: () throws -> IDXDataset, sourceLocation: SourceLocation = #_sourceLocation) -> IDXError? {
    do {
        _ = try body()
        Issue.record("expected an IDXError, loading succeeded", sourceLocation: sourceLocation)
    } catch let error as IDXError {
        return error
    } catch {
        Issue.record("expected an IDXError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

@Suite struct IDXErrorTests {
    let goodLabels = labelsIDX([1, 2, 3])
    let goodImages = imagesIDX(count: 3, rows: 2, cols: 2)

    @Test func missingImagesFile() throws {
        let dir = try TempDirectory()
        let missing = dir.url.appendingPathComponent("nope-images-idx3-ubyte")
        let error = idxError { try IDXDataset.load(images: missing, labels: dir.write("lbl", goodLabels)) }
        #expect(error == .fileMissing(file: missing.path))
        #expect(error?.description == "\(missing.path): no such file")
    }

    @Test func missingLabelsFileFromImagesPath() throws {
        let dir = try TempDirectory()
        let images = try dir.write("x-images-idx3-ubyte", goodImages)
        let error = idxError { try IDXDataset.load(path: images.path) }
        #expect(error == .fileMissing(file: dir.url.appendingPathComponent("x-labels-idx1-ubyte").path))
    }

    @Test func missingPath() throws {
        let dir = try TempDirectory()
        let path = dir.url.appendingPathComponent("absent").path
        #expect(idxError { try IDXDataset.load(path: path) } == .fileMissing(file: path))
    }

    @Test func pathNotAnImagesFile() throws {
        let dir = try TempDirectory()
        let file = try dir.write("weights.safetensors", goodImages)
        let error = idxError { try IDXDataset.load(path: file.path) }
        #expect(error == .notAnImagesFile(file: file.path))
        #expect(error?.description.contains("weights.safetensors") == true)
    }

    @Test func directoryWithoutSplit() throws {
        let dir = try TempDirectory()
        try dir.write("t10k-images-idx3-ubyte", goodImages)
        let error = idxError { try IDXDataset.load(directory: dir.url, split: .train) }
        #expect(error == .notFoundInDirectory(directory: dir.url.path,
                                              candidates: ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"]))
        #expect(error?.description.contains("train-images-idx3-ubyte.gz") == true)
        let labelsError = idxError { try IDXDataset.load(directory: dir.url, split: .test) }
        #expect(labelsError == .notFoundInDirectory(directory: dir.url.path,
                                                    candidates: ["t10k-labels-idx1-ubyte", "t10k-labels-idx1-ubyte.gz"]))
    }

    @Test func gzipMagicWithGarbage() throws {
        let dir = try TempDirectory()
        let file = try dir.write("img.gz", [0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x11, 0x22, 0x33])
        let error = idxError { try IDXDataset.load(images: file, labels: dir.write("lbl", goodLabels)) }
        guard case .badGzip(let name, _) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(name == file.path)
        #expect(error!.description.hasPrefix("\(file.path): bad gzip data"))
    }

    @Test func truncatedGzip() throws {
        let dir = try TempDirectory()
        let gz = try gzip(imagesIDX(count: 50, rows: 10, cols: 10))
        for cut in [2, 10, gz.count / 2, gz.count - 4] {
            let file = try dir.write("img\(cut).gz", Array(gz[..<cut]))
            let error = idxError { try IDXDataset.load(images: file, labels: dir.write("lbl", goodLabels)) }
            guard case .badGzip(let name, _) = error else { Issue.record("cut \(cut): got \(String(describing: error))"); continue }
            #expect(name == file.path)
        }
    }

    @Test func gzipWithTrailingGarbage() throws {
        let dir = try TempDirectory()
        let file = try dir.write("img.gz", gzip(goodImages) + [0x41, 0x42, 0x43])
        let error = idxError { try IDXDataset.load(images: file, labels: dir.write("lbl", goodLabels)) }
        #expect(error == .badGzip(file: file.path, reason: "3 bytes of trailing garbage after the compressed stream"))
    }

    @Test func labelsGivenAsImages() throws {
        let dir = try TempDirectory()
        let labels = try dir.write("lbl", goodLabels)
        let error = idxError { try IDXDataset.load(images: labels, labels: labels) }
        #expect(error == .badMagic(file: labels.path, expected: 0x803, found: 0x801))
        #expect(error?.description == "\(labels.path): bad magic number 0x00000801, expected 0x00000803 (this looks like an IDX labels file)")
    }

    @Test func imagesGivenAsLabels() throws {
        let dir = try TempDirectory()
        let images = try dir.write("img", goodImages)
        let error = idxError { try IDXDataset.load(images: images, labels: images) }
        #expect(error == .badMagic(file: images.path, expected: 0x801, found: 0x803))
    }

    @Test func arbitraryMagic() throws {
        let dir = try TempDirectory()
        let file = try dir.write("img.gz", gzip(Array("PK\u{3}\u{4}not an idx file".utf8)))
        let error = idxError { try IDXDataset.load(images: file, labels: dir.write("lbl", goodLabels)) }
        #expect(error == .badMagic(file: file.path, expected: 0x803, found: 0x504b_0304))
    }

    @Test(arguments: [("count", [0, 2, 2]), ("rows", [3, 0, 2]), ("cols", [3, 2, 0])])
    func zeroImageDimension(field: String, dims: [Int]) throws {
        let dir = try TempDirectory()
        let file = try dir.write("img", imagesIDX(count: dims[0], rows: dims[1], cols: dims[2]))
        let error = idxError { try IDXDataset.load(images: file, labels: dir.write("lbl", goodLabels)) }
        #expect(error == .zeroDimension(file: file.path, field: field))
        #expect(error?.description == "\(file.path): header field '\(field)' is zero")
    }

    @Test func zeroLabelCount() throws {
        let dir = try TempDirectory()
        let file = try dir.write("lbl", labelsIDX([]))
        let error = idxError { try IDXDataset.load(images: dir.write("img", goodImages), labels: file) }
        #expect(error == .zeroDimension(file: file.path, field: "count"))
    }

    @Test func hugeDimensions() throws {
        let dir = try TempDirectory()
        let file = try dir.write("img", be32(0x803) + be32(0xffff_ffff) + be32(0xffff_ffff) + be32(0xffff_ffff))
        let error = idxError { try IDXDataset.load(images: file, labels: dir.write("lbl", goodLabels)) }
        #expect(error == .dimensionsTooLarge(file: file.path, dimensions: [0xffff_ffff, 0xffff_ffff, 0xffff_ffff]))
    }

    @Test func truncatedPayload() throws {
        let dir = try TempDirectory()
        let file = try dir.write("img", Array(goodImages.dropLast(5)))
        let error = idxError { try IDXDataset.load(images: file, labels: dir.write("lbl", goodLabels)) }
        #expect(error == .truncated(file: file.path, expected: 28, got: 23))
        #expect(error?.description == "\(file.path): truncated: expected 28 bytes, got 23")
    }

    @Test func truncatedGzippedPayload() throws {
        let dir = try TempDirectory()
        let file = try dir.write("img.gz", gzip(Array(goodImages.dropLast(1))))
        let error = idxError { try IDXDataset.load(images: file, labels: dir.write("lbl", goodLabels)) }
        #expect(error == .truncated(file: file.path, expected: 28, got: 27))
    }

    @Test(arguments: [0, 3, 4, 9, 15])
    func truncatedHeader(length: Int) throws {
        let dir = try TempDirectory()
        let file = try dir.write("img", Array(goodImages.prefix(length)))
        let error = idxError { try IDXDataset.load(images: file, labels: dir.write("lbl", goodLabels)) }
        #expect(error == .truncated(file: file.path, expected: 16, got: length))
    }

    @Test func truncatedLabels() throws {
        let dir = try TempDirectory()
        let file = try dir.write("lbl", Array(goodLabels.dropLast()))
        let error = idxError { try IDXDataset.load(images: dir.write("img", goodImages), labels: file) }
        #expect(error == .truncated(file: file.path, expected: 11, got: 10))
    }

    @Test func trailingBytes() throws {
        let dir = try TempDirectory()
        let file = try dir.write("lbl", goodLabels + [0, 0])
        let error = idxError { try IDXDataset.load(images: dir.write("img", goodImages), labels: file) }
        #expect(error == .trailingData(file: file.path, expected: 11, got: 13))
    }

    @Test func countsDiffer() throws {
        let dir = try TempDirectory()
        let images = try dir.write("img", goodImages)
        let labels = try dir.write("lbl", labelsIDX([1, 2]))
        let error = idxError { try IDXDataset.load(images: images, labels: labels) }
        #expect(error == .countMismatch(images: images.path, imageCount: 3, labels: labels.path, labelCount: 2))
        #expect(error?.description == "\(images.path) holds 3 images but \(labels.path) holds 2 labels")
    }

    @Test func labelOutOfRange() throws {
        let dir = try TempDirectory()
        let labels = try dir.write("lbl", labelsIDX([1, 10, 200]))
        let error = idxError { try IDXDataset.load(images: dir.write("img", goodImages), labels: labels) }
        #expect(error == .labelOutOfRange(file: labels.path, index: 1, value: 10))
        #expect(error?.description == "\(labels.path): label 10 at index 1 is out of range 0...9")
    }
}
