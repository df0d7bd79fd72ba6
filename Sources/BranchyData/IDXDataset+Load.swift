import Foundation

extension IDXDataset {
    /// Loads an images file and a labels file, each plain or gzip-compressed.
    ///
    /// Checks the IDX magic numbers (0x00000803 for images, 0x00000801 for labels), that no
    /// dimension is zero, that each file holds exactly the bytes its header promises, that the
    /// two counts agree and that every label is in `0...9`.
    public static func load(images: URL, labels: URL) throws -> IDXDataset {
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
        let payload = imageFile.payload
        let pixels = [Float](unsafeUninitializedCapacity: payload.count) { out, initialized in
            payload.withUnsafeBufferPointer { source in
                for i in 0..<source.count { out[i] = Float(source[i]) / 255 }
            }
            initialized = payload.count
        }
        return IDXDataset(images: pixels, labels: labelBytes, rows: rows, cols: cols)
    }

    /// Loads one split from a directory holding the standard MNIST file names,
    /// `train-images-idx3-ubyte` / `t10k-images-idx3-ubyte` and the matching
    /// `-labels-idx1-ubyte`, each optionally with a `.gz` suffix (the plain file wins if both exist).
    public static func load(directory: URL, split: Split) throws -> IDXDataset {
        let images = try find(in: directory, name: "\(split.filePrefix)-images-idx3-ubyte")
        let labels = try find(in: directory, name: "\(split.filePrefix)-labels-idx1-ubyte")
        return try load(images: images, labels: labels)
    }

    /// Loads from a path that is either a directory (its test split is read) or an images
    /// file, whose labels file is found by replacing `images-idx3` with `labels-idx1` in its name.
    public static func load(path: String) throws -> IDXDataset {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw IDXError.fileMissing(file: path)
        }
        let url = URL(fileURLWithPath: path)
        if isDirectory.boolValue {
            return try load(directory: url, split: .test)
        }
        let name = url.lastPathComponent
        guard name.contains("images-idx3") else { throw IDXError.notAnImagesFile(file: path) }
        let labels = url.deletingLastPathComponent()
            .appendingPathComponent(name.replacingOccurrences(of: "images-idx3", with: "labels-idx1"))
        return try load(images: url, labels: labels)
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
