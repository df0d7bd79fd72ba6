/// A dense float32 tensor stored row-major (NCHW for images).
///
/// `Tensor` is a plain value: a shape and a flat array of elements. Kernels in this
/// module read and write its storage through unsafe buffer pointers and never
/// allocate per element.
public struct Tensor: Sendable, Equatable {
    /// Extent of each dimension, outermost first, e.g. `[N, C, H, W]`.
    public var shape: [Int]
    /// Elements in row-major order; `data.count == shape.reduce(1, *)`.
    public var data: [Float]

    /// Creates a tensor from a shape and matching data.
    public init(shape: [Int], data: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) needs \(shape.reduce(1, *)) elements, got \(data.count)")
        self.shape = shape
        self.data = data
    }

    /// Creates a tensor of the given shape filled with `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        self.init(shape: shape, data: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    /// Number of elements.
    @inlinable public var count: Int { data.count }

    /// Number of dimensions.
    @inlinable public var rank: Int { shape.count }

    /// Size of the leading (batch) dimension.
    @inlinable public var batch: Int { shape.first ?? 1 }

    /// Elements per item of the leading dimension.
    @inlinable public var itemCount: Int { shape.count <= 1 ? 1 : shape.dropFirst().reduce(1, *) }

    /// Returns the same data viewed with another shape of equal element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, data: data)
    }

    /// Returns items `range` of the leading dimension as a new tensor.
    public func items(_ range: Range<Int>) -> Tensor {
        let per = itemCount
        var s = shape
        s[0] = range.count
        return Tensor(shape: s, data: Array(data[(range.lowerBound * per)..<(range.upperBound * per)]))
    }
}
