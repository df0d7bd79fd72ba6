/// Rectified linear unit.
public enum ReLU {
    /// y = max(x, 0), elementwise.
    public static func forward(_ x: Tensor) -> Tensor {
        var y = x
        y.data.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = p[i] > 0 ? p[i] : 0 }
        }
        return y
    }

    /// dx = dy where the forward output was positive, else 0.
    public static func backward(output y: Tensor, dy: Tensor) -> Tensor {
        var dx = dy
        dx.data.withUnsafeMutableBufferPointer { d in
            y.data.withUnsafeBufferPointer { yp in
                for i in 0..<d.count where yp[i] <= 0 { d[i] = 0 }
            }
        }
        return dx
    }
}
