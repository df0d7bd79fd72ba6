/// A labelled image data set: images of one shape `[channels, rows, cols]`, one class label each.
///
/// Both readers produce it: IDX files (MNIST, Fashion-MNIST: greyscale, 1×28×28) and CIFAR-10's
/// binary batches (colour, 3×32×32), so that training, evaluation and the device take one code
/// path whatever the source. Pixels are stored as `Float` in `[0, 1]` (the byte value divided by
/// 255), image after image, each image channel plane after channel plane and each plane
/// row-major (NCHW), so image `i` occupies `images[i * n ..< (i + 1) * n]` with
/// `n = channels * rows * cols`.
public struct ImageDataset: Sendable {
    /// Which half of a data set to load from a directory.
    public enum Split: String, Sendable, CaseIterable {
        /// The training split: IDX files `train-images-idx3-ubyte` and `train-labels-idx1-ubyte`,
        /// or CIFAR-10's `data_batch_1.bin` … `data_batch_5.bin`.
        case train
        /// The test split: IDX files `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`,
        /// or CIFAR-10's `test_batch.bin`.
        case test

        /// File-name prefix used by the MNIST distribution.
        public var filePrefix: String { self == .train ? "train" : "t10k" }
    }

    /// Most payload bytes (pixels or labels) one data set file may hold, and a CIFAR-10 split
    /// all its batches together: 2^30, a thousand times Fashion-MNIST's training set and seven
    /// times CIFAR-10's. The pixels take four times as much memory once loaded as `Float`.
    public static let maxPayloadBytes = 1 << 30

    /// All pixels, `count * channels * rows * cols` values in `[0, 1]`.
    public let images: [Float]
    /// One class label per image.
    public let labels: [UInt8]
    /// Number of images (and labels).
    public let count: Int
    /// Colour channels per image: 1 for greyscale, 3 for RGB.
    public let channels: Int
    /// Image height in pixels.
    public let rows: Int
    /// Image width in pixels.
    public let cols: Int
    /// Whether the values are a model's input tensors as given (float arrays), not pixels:
    /// ``Preprocessing`` checks their shape and changes nothing.
    public var isTensor = false

    /// The shape of one image, `[channels, rows, cols]`: what a model's `input` must be.
    public var shape: [Int] { [channels, rows, cols] }

    /// The shape of one image for messages, e.g. `3×32×32`.
    public var shapeDescription: String { "\(channels)×\(rows)×\(cols)" }

    /// Values per image, `channels * rows * cols` (for greyscale images, the pixel count).
    public var pixelsPerImage: Int { channels * rows * cols }

    /// Creates a greyscale data set from pixels and labels already in memory.
    ///
    /// - Precondition: `images.count == labels.count * rows * cols`, and `rows`, `cols` are positive.
    public init(images: [Float], labels: [UInt8], rows: Int, cols: Int) {
        self.init(images: images, labels: labels, channels: 1, rows: rows, cols: cols)
    }

    /// Creates a data set from pixels (NCHW) and labels already in memory.
    ///
    /// - Precondition: `images.count == labels.count * channels * rows * cols`, and every size is positive.
    public init(images: [Float], labels: [UInt8], channels: Int, rows: Int, cols: Int) {
        precondition(channels > 0 && rows > 0 && cols > 0, "image size \(channels)×\(rows)×\(cols) must be positive")
        let n = channels * rows * cols
        precondition(images.count == labels.count * n,
                     "\(labels.count) labels of \(channels)×\(rows)×\(cols) need \(labels.count * n) pixels, got \(images.count)")
        self.images = images
        self.labels = labels
        self.count = labels.count
        self.channels = channels
        self.rows = rows
        self.cols = cols
    }

    /// The pixels of image `i`, channel planes in order, each row-major.
    public func image(_ i: Int) -> ArraySlice<Float> {
        precondition(i >= 0 && i < count, "image index \(i) out of range 0..<\(count)")
        let n = pixelsPerImage
        return images[(i * n)..<((i + 1) * n)]
    }

    /// Gathers the images and labels at `indices` into one contiguous batch.
    ///
    /// The batch shape is `[indices.count, channels, rows, cols]` (NCHW).
    public func batch<Indices: Collection>(indices: Indices) -> ImageBatch where Indices.Element == Int {
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
        return ImageBatch(images: pixels, shape: [batchCount, channels, rows, cols], labels: batchLabels)
    }

    /// The images and labels at `indices`, in that order, as a data set of their own.
    public func subset<Indices: Collection>(_ indices: Indices) -> ImageDataset where Indices.Element == Int {
        let b = batch(indices: indices)
        var d = ImageDataset(images: b.images, labels: b.labels, channels: channels, rows: rows, cols: cols)
        d.isTensor = isTensor
        return d
    }
}

/// A batch gathered from an ``ImageDataset``: pixels in NCHW layout plus their labels.
public struct ImageBatch: Sendable, Equatable {
    /// Pixels, `shape.reduce(1, *)` values.
    public var images: [Float]
    /// `[N, channels, rows, cols]`.
    public var shape: [Int]
    /// One label per image.
    public var labels: [UInt8]
}

/// The name the data set type had when IDX files were its only source.
public typealias IDXDataset = ImageDataset

/// The name the batch type had when IDX files were its only source.
public typealias IDXBatch = ImageBatch
