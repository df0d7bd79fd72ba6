/// An MNIST-style data set: greyscale images with one class label each.
///
/// Pixels are stored as `Float` in `[0, 1]` (the byte value divided by 255), image after
/// image, row-major, so image `i` occupies `images[i * rows * cols ..< (i + 1) * rows * cols]`.
public struct IDXDataset: Sendable {
    /// Which half of a data set to load from a directory.
    public enum Split: String, Sendable, CaseIterable {
        /// The training split, files `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`.
        case train
        /// The test split, files `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`.
        case test

        /// File-name prefix used by the MNIST distribution.
        public var filePrefix: String { self == .train ? "train" : "t10k" }
    }

    /// Most payload bytes (pixels or labels) an IDX file may announce in its header: 2^30, a
    /// thousand times Fashion-MNIST's training set. The pixels take four times as much memory
    /// once loaded as `Float`.
    public static let maxPayloadBytes = 1 << 30

    /// All pixels, `count * rows * cols` values in `[0, 1]`.
    public let images: [Float]
    /// One class label per image.
    public let labels: [UInt8]
    /// Number of images (and labels).
    public let count: Int
    /// Image height in pixels.
    public let rows: Int
    /// Image width in pixels.
    public let cols: Int

    /// Pixels per image, `rows * cols`.
    public var pixelsPerImage: Int { rows * cols }

    /// Creates a data set from pixels and labels already in memory.
    ///
    /// - Precondition: `images.count == labels.count * rows * cols`, and `rows`, `cols` are positive.
    public init(images: [Float], labels: [UInt8], rows: Int, cols: Int) {
        precondition(rows > 0 && cols > 0, "image size \(rows)×\(cols) must be positive")
        precondition(images.count == labels.count * rows * cols,
                     "\(labels.count) labels of \(rows)×\(cols) need \(labels.count * rows * cols) pixels, got \(images.count)")
        self.images = images
        self.labels = labels
        self.count = labels.count
        self.rows = rows
        self.cols = cols
    }

    /// The pixels of image `i`, row-major.
    public func image(_ i: Int) -> ArraySlice<Float> {
        precondition(i >= 0 && i < count, "image index \(i) out of range 0..<\(count)")
        let n = pixelsPerImage
        return images[(i * n)..<((i + 1) * n)]
    }

    /// Gathers the images and labels at `indices` into one contiguous batch.
    ///
    /// The batch shape is `[indices.count, 1, rows, cols]` (NCHW with one channel).
    public func batch<Indices: Collection>(indices: Indices) -> IDXBatch where Indices.Element == Int {
        let n = pixelsPerImage
        let batchCount = indices.count
        var batchLabels = [UInt8]()
        batchLabels.reserveCapacity(batchCount)
        let pixels = [Float](unsafeUninitializedCapacity: batchCount * n) { out, initialized in
            images.withUnsafeBufferPointer { source in
                var offset = 0
                for i in indices {
                    precondition(i >= 0 && i < count, "image index \(i) out of range 0..<\(count)")
                    let from = source.baseAddress! + i * n
                    (out.baseAddress! + offset).initialize(from: from, count: n)
                    offset += n
                    batchLabels.append(labels[i])
                }
            }
            initialized = batchCount * n
        }
        return IDXBatch(images: pixels, shape: [batchCount, 1, rows, cols], labels: batchLabels)
    }
}

/// A batch gathered from an ``IDXDataset``: pixels in NCHW layout plus their labels.
public struct IDXBatch: Sendable, Equatable {
    /// Pixels, `shape.reduce(1, *)` values.
    public var images: [Float]
    /// `[N, 1, rows, cols]`.
    public var shape: [Int]
    /// One label per image.
    public var labels: [UInt8]
}
