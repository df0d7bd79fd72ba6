import Foundation

/// CIFAR-10's binary format, as the official `cifar-10-binary.tar.gz` unpacks it into
/// `cifar-10-batches-bin/`.
///
/// Each file is a run of records of 3,073 bytes with no header: one label byte (a class in
/// `0...9`), then the 32×32 image as 1,024 red, 1,024 green and 1,024 blue bytes, each plane
/// row-major. The training split is `data_batch_1.bin` … `data_batch_5.bin` (10,000 records
/// each), the test split `test_batch.bin`; `batches.meta.txt` names the classes.
public enum CIFAR10 {
    /// Channels, rows and columns of one image.
    public static let shape = [3, 32, 32]
    /// Pixel bytes per record: 3 × 32 × 32.
    public static let pixelBytes = 3072
    /// Bytes per record: the label byte and the pixels.
    public static let recordSize = 1 + pixelBytes
    /// Training batches, in the order they are read (those present, at least one).
    public static let trainingFiles = (1...5).map { "data_batch_\($0).bin" }
    /// The test batch.
    public static let testFile = "test_batch.bin"
    /// Class names, one a line, in label order.
    public static let metaFile = "batches.meta.txt"
    /// The ten classes, in label order.
    public static let classNames = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    /// The files of a split.
    public static func fileNames(_ split: ImageDataset.Split) -> [String] {
        split == .train ? trainingFiles : [testFile]
    }

    /// Reads one batch file and checks it: present, not empty, not over `limit` bytes, a whole
    /// number of records, every label in `0...9`. Never reads more than `limit + 1` bytes.
    static func readBatch(_ url: URL, limit: Int) throws -> [UInt8] {
        let file = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) else {
            throw CIFAR10Error.fileMissing(file: file)
        }
        guard !isDirectory.boolValue else { throw CIFAR10Error.unreadable(file: file, reason: "it is a directory") }
        if let size = sizeOnDisk(file), size > limit {
            throw CIFAR10Error.tooLarge(file: file, bytes: size, limit: limit)
        }
        let bytes: [UInt8]
        do {
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            // One byte more than allowed tells a file that grew (or a device file) from one at the limit.
            bytes = [UInt8](try handle.read(upToCount: limit + 1) ?? Data())
        } catch {
            throw CIFAR10Error.unreadable(file: file, reason: "\(error)")
        }
        guard bytes.count <= limit else { throw CIFAR10Error.tooLarge(file: file, bytes: bytes.count, limit: limit) }
        guard !bytes.isEmpty else { throw CIFAR10Error.empty(file: file) }
        let remainder = bytes.count % recordSize
        guard remainder == 0 else {
            throw CIFAR10Error.partialRecord(file: file, size: bytes.count, remainder: remainder)
        }
        for record in 0..<(bytes.count / recordSize) where bytes[record * recordSize] > 9 {
            throw CIFAR10Error.labelOutOfRange(file: file, record: record, value: bytes[record * recordSize])
        }
        return bytes
    }

    /// The size the file system gives for `path`, or nil when it gives none.
    static func sizeOnDisk(_ path: String) -> Int? {
        guard let value = try? FileManager.default.attributesOfItem(atPath: path)[.size] else { return nil }
        if let number = value as? NSNumber { return number.intValue }
        if let number = value as? UInt64 { return Int(clamping: number) }
        return value as? Int
    }
}

extension ImageDataset {
    /// Loads CIFAR-10 binary batches, their records in file order, as 3×32×32 images.
    ///
    /// Checks each file (see ``CIFAR10``) and that all of them together hold at most
    /// ``maxPayloadBytes`` before reading any.
    public static func loadCIFAR10(files: [URL]) throws -> ImageDataset {
        precondition(!files.isEmpty, "no CIFAR-10 batch to load")
        let sizes = files.map { CIFAR10.sizeOnDisk($0.path) ?? 0 }
        let total = sizes.reduce(0, +)
        if files.count > 1, total > maxPayloadBytes {
            throw CIFAR10Error.splitTooLarge(files: files.map(\.path), bytes: total, limit: maxPayloadBytes)
        }
        var batches: [[UInt8]] = []
        var budget = maxPayloadBytes
        for url in files {
            let bytes = try CIFAR10.readBatch(url, limit: budget)
            budget -= bytes.count
            batches.append(bytes)
        }
        let count = batches.reduce(0) { $0 + $1.count / CIFAR10.recordSize }
        var labels = [UInt8]()
        labels.reserveCapacity(count)
        let n = CIFAR10.pixelBytes
        let pixels = [Float](unsafeUninitializedCapacity: count * n) { out, initialized in
            var o = 0
            for bytes in batches {
                bytes.withUnsafeBufferPointer { source in
                    for record in stride(from: 0, to: source.count, by: CIFAR10.recordSize) {
                        labels.append(source[record])
                        // Red, green and blue planes in file order: already channel-major (CHW).
                        for i in 0..<n { out[o + i] = Float(source[record + 1 + i]) / 255 }
                        o += n
                    }
                }
            }
            initialized = count * n
        }
        return ImageDataset(images: pixels, labels: labels, channels: 3, rows: 32, cols: 32)
    }

    /// Loads one split from a `cifar-10-batches-bin` directory: the training batches present
    /// among `data_batch_1.bin` … `data_batch_5.bin` (at least one), or `test_batch.bin`.
    public static func loadCIFAR10(directory: URL, split: Split) throws -> ImageDataset {
        let names = CIFAR10.fileNames(split)
        let present = names.map { directory.appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0.path) }
        guard !present.isEmpty else {
            throw CIFAR10Error.notFoundInDirectory(directory: directory.path, split: split, expected: names)
        }
        return try loadCIFAR10(files: present)
    }
}
