import BranchyTensor

/// ONNX pooling padding as Branchy's pooling window. Besides the same padding on every side,
/// the importer reads the form `branchy export-onnx` and scripts/export-onnx.py write for a
/// ceil-mode pool (or a floor-mode one whose last window ends inside the padding): floor mode,
/// p at the top and left, and at the bottom and right whatever makes ONNX's output extent
/// Branchy's. Both clip windows to the input, so equal extents mean equal windows.
enum PoolPadding {
    /// Branchy's `pad` and `ceil` for ONNX's `pads` [top, left, bottom, right] and `ceil_mode`
    /// on a `height` × `width` input, or nil when no Branchy pooling has the same windows.
    static func window(pads: [Int], ceilMode: Bool, kernel: Int, stride: Int, height: Int, width: Int) -> (pad: Int, ceil: Bool)? {
        if Set(pads).count == 1 { return (pads[0], ceilMode) }
        let p = pads[0]
        guard !ceilMode, pads[1] == p, pads[2] >= p, pads[3] >= p else { return nil }
        // ONNX's floor-mode extent along an axis; no window fits when the span is negative.
        func extent(_ size: Int, _ end: Int) -> Int {
            let span = size + p + end - kernel
            return span < 0 ? 0 : span / stride + 1
        }
        let wanted = [extent(height, pads[2]), extent(width, pads[3])]
        for ceil in [false, true] {
            let g = Pool2DGeometry(channels: 1, inH: height, inW: width, kernel: kernel, stride: stride, pad: p, ceilMode: ceil)
            if [g.outH, g.outW] == wanted { return (p, ceil) }
        }
        return nil
    }
}
