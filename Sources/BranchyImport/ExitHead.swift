import BranchyModel

/// The exit head `branchy import --add-exit` attaches to a classifier's tensor: on a (C, H, W)
/// map, a 3×3 convolution to 32 channels (padding 1) with its ReLU, 2×2 max pooling (rounding
/// up; none on a 1×1 map), then a linear layer to the classes; on a flat (F) tensor, the linear
/// layer alone. Small (a few thousand parameters on the maps early exits see), so that an exit
/// costs the device little, and trained alone on the frozen trunk's tensor.
public enum ExitHead {
    /// Channels of the head's convolution.
    public static let channels = 32

    /// The head's layers for an input of `shape` (one item).
    public static func layers(input shape: [Int], classes: Int) -> [LayerSpec] {
        guard shape.count == 3 else { return [.flatten, .linear("head_fc", out: classes)] }
        var layers: [LayerSpec] = [.conv("head_conv", out: channels, kernel: 3, pad: 1), .relu]
        if shape[1] > 1 || shape[2] > 1 { layers.append(.maxPool(2, ceil: true)) }
        return layers + [.flatten, .linear("head_fc", out: classes)]
    }

    /// Multiply-adds and parameters of the head on `shape`.
    public static func cost(input shape: [Int], classes: Int) -> (multiplyAdds: Int, parameters: Int) {
        guard shape.count == 3 else {
            let f = shape.reduce(1, *)
            return (f * classes, f * classes + classes)
        }
        let (c, h, w) = (shape[0], shape[1], shape[2])
        let conv = channels * c * 9
        let pooled = shape[1] > 1 || shape[2] > 1 ? channels * ((h + 1) / 2) * ((w + 1) / 2) : channels * h * w
        return (conv * h * w + pooled * classes, conv + channels + pooled * classes + classes)
    }
}
