import Foundation

extension ImageDataset {
    /// Loads an images file and a labels file, each plain or gzip-compressed.
    ///
    /// Checks the IDX magic numbers (0x00000803 for images, 0x00000801 for labels), that no
    /// dimension is zero, that each file holds exactly the bytes its header promises, that the
    /// two counts agree and that every label is in `0...9`. The images are greyscale (one channel).
    public static func load(images: URL, labels: URL) throws -> ImageDataset {
        let imageFile = try IDXFile.read(images, kind: .images)
        let labelFile = try IDXFile.read(labels, kind: .labels)
        let (count, rows, cols) = (imageFile.dimensions[0], imageFile.dimensions[1], imageFile.dimensions[2])
        guard labelFile.dimensions[0] == count else {
            throw IDXError.countMismatch(images: images.path, imageCount: count,
                                         labels: labels.path, labelCount: labelFile.dimensions[0])
        }
        let labelBytes = [UInt8](labelFile.payload)
        if let bad = labelBytes.firstIndex(where: { $0 > 9 }) {
            throw IDXError.labelOutOfRange(file: labels.path, index: bad, value: labelBytes[bad])
        }
        let pixels = imageFile.payload.withUnsafeBufferPointer { scaledPixels($0) }
        return ImageDataset(images: pixels, labels: labelBytes, rows: rows, cols: cols)
    }

    /// Loads one split from a directory holding the standard MNIST file names,
    /// `train-images-idx3-ubyte` / `t10k-images-idx3-ubyte` and the matching
    /// `-labels-idx1-ubyte`, each optionally with a `.gz` suffix (the plain file wins if both exist).
    public static func loadIDX(directory: URL, split: Split) throws -> ImageDataset {
        let images = try find(in: directory, name: "\(split.filePrefix)-images-idx3-ubyte")
        let labels = try find(in: directory, name: "\(split.filePrefix)-labels-idx1-ubyte")
        return try load(images: images, labels: labels)
    }

    /// Loads an IDX images file and the labels file found by replacing `images-idx3` with
    /// `labels-idx1` in its name.
    static func loadIDX(imagesFile url: URL) throws -> ImageDataset {
        let name = url.lastPathComponent
        guard name.contains("images-idx3") else { throw IDXError.notAnImagesFile(file: url.path) }
        let labels = url.deletingLastPathComponent()
            .appendingPathComponent(name.replacingOccurrences(of: "images-idx3", with: "labels-idx1"))
        return try load(images: url, labels: labels)
    }

    /// The IDX file names of a split, plain and compressed, images first.
    static func idxFileNames(_ split: Split) -> [String] {
        ["images-idx3-ubyte", "labels-idx1-ubyte"].flatMap { ["\(split.filePrefix)-\($0)", "\(split.filePrefix)-\($0).gz"] }
    }

    /// Bytes scaled to `[0, 1]`.
    static func scaledPixels(_ bytes: UnsafeBufferPointer<UInt8>) -> [Float] {
        [Float](unsafeUninitializedCapacity: bytes.count) { out, initialized in
            for i in 0..<bytes.count { out[i] = Float(bytes[i]) / 255 }
            initialized = bytes.count
        }
    }

    private static func find(in directory: URL, name: String) throws -> URL {
        let candidates = [name, name + ".gz"]
        for candidate in candidates {
            let url = directory.appendingPathComponent(candidate)
            if FileManager.default.fileExists(atPath: url.path) { return url }
        }
        throw IDXError.notFoundInDirectory(directory: directory.path, candidates: candidates)
    }
}
