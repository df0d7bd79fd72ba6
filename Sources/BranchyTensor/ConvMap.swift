import CBranchyKernels

/// The output map of a convolution kernel: outC planes with room past the valid outputs.
enum ConvMap {
    /// The valid outH × outW part of each plane of `src` (planes `channelStride` apart, rows
    /// `rowStride` apart) into a compact output: max-pooled to `pool`'s shape when `pool` is
    /// given, else (outC, outH, outW).
    static func unpack(_ src: UnsafePointer<Float>, geometry g: Conv2DGeometry, isa: KernelISA, channelStride: Int, rowStride: Int,
                       pool: Pool2DGeometry?, into y: UnsafeMutablePointer<Float>) {
        if let p = pool {
            bk_maxpool(isa.rawValue, Int32(g.outC), Int32(g.outH), Int32(g.outW), src, channelStride, rowStride,
                       Int32(p.kernel), Int32(p.stride), Int32(p.pad), Int32(p.outH), Int32(p.outW),
                       y, p.outH * p.outW, p.outW, 0)
        } else {
            bk_copy_planes(Int32(g.outC), Int32(g.outH), Int32(g.outW), src, channelStride, rowStride, y, g.outH * g.outW, g.outW, 0)
        }
    }
}
