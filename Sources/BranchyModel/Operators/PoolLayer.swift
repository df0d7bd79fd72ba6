import BranchyTensor

/// The base of the pooling layers (`maxpool`, `avgpool`): a window over each channel of a
/// (C, H, W) input. A subclass that is an ``Operator`` gets its ``Operator/plan(_:)`` from
/// here, as ``LayerContext/poolGeometry()`` checks the description.
class PoolLayer: Layer {
    let geometry: Pool2DGeometry
    /// The input shape of the last training forward pass.
    var cachedShape: [Int] = []

    required init(geometry g: Pool2DGeometry) {
        geometry = g
        super.init(inputShape: [g.channels, g.inH, g.inW], outputShape: [g.channels, g.outH, g.outW])
    }
}

extension Operator where Self: PoolLayer {
    static func plan(_ c: LayerContext) throws -> LayerPlan {
        let g = try c.poolGeometry()
        return LayerPlan([g.channels, g.outH, g.outW]) { Self(geometry: g) }
    }
}

extension LayerContext {
    /// The window of a pooling layer: `kernel` (square), `stride` (= kernel), `pad` (0, at most
    /// half the kernel), `ceil` (false: the output size rounds down; true: up, without a window
    /// that would start in the right or bottom padding). Checks the (C, H, W) input, the window
    /// and the output size.
    func poolGeometry() throws -> Pool2DGeometry {
        let (channels, height, width) = try image()
        let k = try need(spec.kernel, "kernel"), s = try need(spec.stride ?? k, "stride"), p = try need(spec.pad ?? 0, "pad", min: 0)
        guard p * 2 <= k else { throw fail(at: "pad", "pad \(p) must be at most half the kernel \(k)") }
        let g = Pool2DGeometry(channels: channels, inH: height, inW: width, kernel: k, stride: s, pad: p, ceilMode: spec.ceil ?? false)
        guard g.outH >= 1, g.outW >= 1 else { throw fail("window \(k) does not fit input \(input)") }
        try feature("output", [g.channels, g.outH, g.outW])
        return g
    }
}
