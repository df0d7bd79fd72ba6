import CBranchyKernels

/// HardSwish (MobileNetV3; ONNX `HardSwish`, PyTorch `hardswish`): y = x · (relu6(x + 3) / 6)
/// with relu6(t) = min(max(t, 0), 6), elementwise.
///
/// ``value(_:)`` is the scalar reference; ``forward(_:isa:)`` runs the C kernel `bk_hardswish`,
/// which gives the same bits on every path. Edge values: the factor is exactly 0 for x ≤ −3 and
/// exactly 1 for x ≥ 3, so y = x for any large x (no overflow), y = −0 for finite x ≤ −3
/// (x · 0), NaN for −∞ (−∞ · 0, as PyTorch and ONNX Runtime compute it) and NaN for NaN.
public enum HardSwish {
    /// One value, rounded as the kernel rounds it: x + 3, the clamp, the division by 6, the product.
    @inlinable public static func value(_ x: Float) -> Float {
        var t = x + 3
        t = t > 0 ? t : 0  // NaN → 0, as the max instruction takes it
        t = t < 6 ? t : 6
        return x * (t / 6)
    }

    /// The Swift reference, value by value.
    public static func reference(_ x: Tensor) -> Tensor {
        Tensor(shape: x.shape, data: x.data.map(value))
    }

    /// y by the C kernel on the path of `isa`.
    public static func forward(_ x: Tensor, isa: KernelISA = .active) -> Tensor {
        var y = Tensor(shape: x.shape)
        x.data.withUnsafeBufferPointer { xp in
            y.data.withUnsafeMutableBufferPointer { yp in
                guard let source = xp.baseAddress, let target = yp.baseAddress else { return }
                bk_hardswish(isa.rawValue, xp.count, source, target)
            }
        }
        return y
    }

    /// dx from dy, x the forward input, as PyTorch's `hardswish_backward` takes it: 0 where
    /// x < −3, dy · (x / 3 + 0.5) on [−3, 3], dy where x > 3.
    public static func backward(input x: Tensor, dy: Tensor) -> Tensor {
        var dx = dy
        dx.data.withUnsafeMutableBufferPointer { d in
            x.data.withUnsafeBufferPointer { xp in
                for i in 0..<d.count {
                    let v = xp[i]
                    if v < -3 { d[i] = 0 } else if v <= 3 { d[i] *= v / 3 + 0.5 }
                }
            }
        }
        return dx
    }
}
