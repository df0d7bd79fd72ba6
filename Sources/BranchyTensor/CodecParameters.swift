/// The quantisation parameters that travel with an encoded tensor, one case per codec kind that has any.
public enum CodecParameters: Sendable, Hashable {
    /// `float32`, `float16` and `uint8` carry none.
    case none
    /// `int8`: one scale and zero point for the tensor.
    case int8(Int8Quantization)
    /// `int8-channel`: one scale and zero point per channel (the first dimension).
    case int8PerChannel([Int8Quantization])
    /// `int4`: one scale and zero point for the tensor.
    case int4(Int4Quantization)
    /// `sign`: the magnitude every value is reconstructed with.
    case sign(scale: Float)

    /// Whether these parameters belong to `kind` (and, per channel, to `channels` channels).
    public func matches(_ kind: FeatureCodecKind, channels: Int) -> Bool {
        switch (self, kind) {
        case (.none, .float32), (.none, .float16), (.none, .uint8): return true
        case (.int8, .int8), (.int4, .int4), (.sign, .sign): return true
        case (.int8PerChannel(let qs), .int8PerChannel): return qs.count == channels
        default: return false
        }
    }
}
