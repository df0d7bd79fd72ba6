/// Limits on the sizes a model description may ask for.
///
/// Building a ``Network`` checks every size in the description, and every product of sizes
/// that later becomes an allocation, against these limits before it allocates anything, with
/// overflow-checked arithmetic. A description over a limit fails with a ``ModelError`` naming
/// the field and the value, instead of aborting the process when the allocation fails.
///
/// The limits are above the built-in architectures (their largest weight, the 3,600 × 7,200
/// linear layer of b-resnet110's first exit, has 25,920,000 elements; their largest feature
/// map 32,768 values; their deepest nesting one residual block) and keep one model within a
/// few GiB.
public enum ModelLimits {
    /// Largest single size in a description: an input dimension, `classes`, or a layer's
    /// `out`, `kernel`, `stride` or `pad` (2^24).
    public static let maxSize = 1 << 24

    /// Most elements in one weight tensor, and in the per-sample im2col workspace of a
    /// convolution (2^25, 128 MiB as float32). The safetensors reader applies the same limit
    /// to every tensor of a weights file.
    public static let maxTensorElements = 1 << 25

    /// Most values in one sample's input or in any layer's output for one sample (2^22,
    /// 16 MiB as float32), so that a batch of 256 samples stays within 2^30 values.
    public static let maxFeatureElements = 1 << 22

    /// Most elements in all of a model's tensors together: weights, biases and batch-norm
    /// statistics (2^28, 1 GiB as float32; each parameter also gets a gradient and Adam's two
    /// moments of the same size).
    public static let maxParameters = 1 << 28

    /// Deepest nesting of `residual` blocks (a block inside a block is depth 2). Planning,
    /// training and compiled inference recurse once per level.
    public static let maxNesting = 8

    /// The number of elements of `shape`, or nil when the product overflows `Int`.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            if overflow { return nil }
            count = product
        }
        return count
    }
}
