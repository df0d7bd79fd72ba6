/// How pixels become a model's input tensor: what a model's description records under
/// `preprocessing` and what every data set is put through before the model sees it.
///
/// In order: greyscale images are repeated to three channels when the model takes three (colour
/// images for a greyscale model are refused); `resize` scales each image bilinearly (one value:
/// the shorter side to that many pixels, the longer one in proportion, truncated, as
/// torchvision's `Resize(S)`; two values: to exactly `[H, W]`); `centerCrop` cuts the centre
/// `[H, W]` (offsets rounded as torchvision's `CenterCrop`); the channels are put in
/// `channelOrder` (images are decoded RGB); then each value becomes
/// `(byte × scale − mean[c]) / std[c]`. The defaults (`scale` 1/255, no mean or standard
/// deviation, RGB, NCHW) are what IDX, CIFAR-10 and the shipped models use: bytes divided by 255.
///
/// Bilinear resizing samples at pixel centres (`src = (dst + 0.5) · in / out − 0.5`, clamped to
/// the image) without antialiasing: ONNX's `Resize` with mode `linear` and
/// `coordinate_transformation_mode` `half_pixel`, and OpenCV's `INTER_LINEAR`.
///
/// Float arrays (`.npy`, `.npz` of float32 or float64) are tensors already prepared for the model:
/// they are only checked against its input shape. Every other source holds pixels and is prepared.
public struct Preprocessing: Codable, Sendable, Equatable {
    /// The order of a colour model's input channels.
    public enum ChannelOrder: String, Codable, Sendable, CaseIterable {
        case rgb, bgr
    }

    /// The memory layout of the model's input tensor.
    public enum Layout: String, Codable, Sendable, CaseIterable {
        case nchw = "NCHW", nhwc = "NHWC"
    }

    /// `[S]` (shorter side to S) or `[H, W]`; `nil` keeps the images' size.
    public var resize: [Int]?
    /// `[H, W]` cut from the centre after resizing; `nil` cuts nothing.
    public var centerCrop: [Int]?
    /// What a byte is multiplied by: 1/255 maps bytes to [0, 1], 1 keeps them 0 to 255.
    public var scale: Float
    /// Subtracted per channel after scaling: one value for every channel or one per channel; empty: 0.
    public var mean: [Float]
    /// Divided by per channel after the mean: one value or one per channel; empty: 1.
    public var std: [Float]
    /// The order of the input's colour channels.
    public var channelOrder: ChannelOrder
    /// The layout of the model's input tensor (Branchy computes in NCHW; an ONNX file's input is NCHW).
    public var layout: Layout

    /// Bytes divided by 255, nothing else: what IDX, CIFAR-10 and every shipped model use.
    public static let standard = Preprocessing()

    /// Largest side `resize` and `centerCrop` accept.
    public static let maxSide = 8192

    public init(resize: [Int]? = nil, centerCrop: [Int]? = nil, scale: Float = 1 / 255, mean: [Float] = [], std: [Float] = [],
                channelOrder: ChannelOrder = .rgb, layout: Layout = .nchw) {
        self.resize = resize; self.centerCrop = centerCrop; self.scale = scale; self.mean = mean; self.std = std
        self.channelOrder = channelOrder; self.layout = layout
    }

    enum CodingKeys: String, CodingKey { case resize, centerCrop = "center_crop", scale, mean, std, channelOrder = "channel_order", layout }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(resize: try c.decodeIfPresent([Int].self, forKey: .resize),
                  centerCrop: try c.decodeIfPresent([Int].self, forKey: .centerCrop),
                  scale: try c.decodeIfPresent(Float.self, forKey: .scale) ?? 1 / 255,
                  mean: try c.decodeIfPresent([Float].self, forKey: .mean) ?? [],
                  std: try c.decodeIfPresent([Float].self, forKey: .std) ?? [],
                  channelOrder: try c.decodeIfPresent(ChannelOrder.self, forKey: .channelOrder) ?? .rgb,
                  layout: try c.decodeIfPresent(Layout.self, forKey: .layout) ?? .nchw)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(resize, forKey: .resize)
        try c.encodeIfPresent(centerCrop, forKey: .centerCrop)
        try c.encode(scale, forKey: .scale)
        if !mean.isEmpty { try c.encode(mean, forKey: .mean) }
        if !std.isEmpty { try c.encode(std, forKey: .std) }
        try c.encode(channelOrder, forKey: .channelOrder)
        try c.encode(layout, forKey: .layout)
    }

    /// Why a preprocessing record is unusable for a model taking `channels` channels, or `nil`.
    public func problem(channels: Int) -> String? {
        if let r = resize, !(r.count == 1 || r.count == 2) || r.contains(where: { !(1...Self.maxSide).contains($0) }) {
            return "resize must be one side or H and W, each 1 to \(Self.maxSide), got \(r)"
        }
        if let c = centerCrop, c.count != 2 || c.contains(where: { !(1...Self.maxSide).contains($0) }) {
            return "center_crop must be H and W, each 1 to \(Self.maxSide), got \(c)"
        }
        guard scale.isFinite, scale > 0 else { return "scale must be a positive number, got \(scale)" }
        for (name, v) in [("mean", mean), ("std", std)] {
            guard v.isEmpty || v.count == 1 || v.count == channels else {
                return "\(name) has \(v.count) values; give one, or one per channel (\(channels))"
            }
            guard v.allSatisfy(\.isFinite) else { return "\(name) must be finite numbers, got \(v)" }
        }
        if std.contains(where: { !($0 > 0) }) { return "std must be positive, got \(std)" }
        if channelOrder == .bgr && channels != 3 { return "channel_order bgr needs a three-channel input, the model takes \(channels)" }
        return nil
    }

    /// Whether the geometry changes: a resize or a crop.
    public var resamples: Bool { resize != nil || centerCrop != nil }

    /// Whether values are only divided by 255 (nothing to do beyond what the readers did).
    var keepsValues: Bool { scale == 1 / 255 && mean.allSatisfy { $0 == 0 } && std.allSatisfy { $0 == 1 } }

    /// The size an `rows`×`cols` image has after `resize` and `centerCrop`; throws when the crop is larger.
    public func outputSize(rows: Int, cols: Int) throws -> (rows: Int, cols: Int) {
        var (h, w) = resizedSize(rows: rows, cols: cols)
        if let c = centerCrop {
            guard c[0] <= h, c[1] <= w else {
                throw PreprocessingError(reason: "center crop \(c[0])×\(c[1]) is larger than the \(resize == nil ? "" : "resized ")image, \(h)×\(w)")
            }
            (h, w) = (c[0], c[1])
        }
        return (h, w)
    }

    func resizedSize(rows: Int, cols: Int) -> (rows: Int, cols: Int) {
        guard let r = resize else { return (rows, cols) }
        if r.count == 2 { return (r[0], r[1]) }
        let s = r[0]
        if rows <= cols { return (s, max(1, Int(Double(s) * Double(cols) / Double(rows)))) }
        return (max(1, Int(Double(s) * Double(rows) / Double(cols))), s)
    }

    /// One image (`channels` planes of `rows`×`cols`, NCHW) resized and cropped.
    public func resample(_ image: ArraySlice<Float>, channels: Int, rows: Int, cols: Int) throws -> (pixels: [Float], rows: Int, cols: Int) {
        let (h, w) = resizedSize(rows: rows, cols: cols)
        let (oh, ow) = try outputSize(rows: rows, cols: cols)
        // Rounded half to even, as Python's round in torchvision's CenterCrop.
        let top = Int((Double(h - oh) / 2).rounded(.toNearestOrEven)), left = Int((Double(w - ow) / 2).rounded(.toNearestOrEven))
        let ys = Self.taps(input: rows, output: h), xs = Self.taps(input: cols, output: w)
        var out = [Float](repeating: 0, count: channels * oh * ow)
        let base = image.startIndex
        for c in 0..<channels {
            let plane = base + c * rows * cols
            for y in 0..<oh {
                let ty = ys[top + y]
                let r0 = plane + ty.low * cols, r1 = plane + ty.high * cols
                for x in 0..<ow {
                    let tx = xs[left + x]
                    let a = image[r0 + tx.low] + (image[r0 + tx.high] - image[r0 + tx.low]) * tx.fraction
                    let b = image[r1 + tx.low] + (image[r1 + tx.high] - image[r1 + tx.low]) * tx.fraction
                    out[(c * oh + y) * ow + x] = a + (b - a) * ty.fraction
                }
            }
        }
        return (out, oh, ow)
    }

    /// Source pixels and weight of each output pixel along one axis (half-pixel centres, clamped).
    static func taps(input: Int, output: Int) -> [(low: Int, high: Int, fraction: Float)] {
        let ratio = Double(input) / Double(output)
        return (0..<output).map { o in
            let src = min(max((Double(o) + 0.5) * ratio - 0.5, 0), Double(input - 1))
            let low = Int(src.rounded(.down))
            return (low, min(low + 1, input - 1), Float(src - Double(low)))
        }
    }

    /// `data` as the input of a model taking `input` (`[C, H, W]`): every step above, then the size checked.
    /// `resampled` says the images were already resized and cropped (an image folder does it while decoding).
    public func prepare(_ data: ImageDataset, input: [Int], source: String, resampled: Bool = false) throws -> ImageDataset {
        func fail(_ reason: String) -> PreprocessingError { PreprocessingError(reason: "\(source): \(reason)") }
        guard input.count == 3 else { throw fail("the model's input \(input) is not [C, H, W]; only images can be prepared") }
        let channels = input[0]
        if let p = problem(channels: channels) { throw fail("the model's preprocessing is unusable: \(p)") }
        if data.isTensor {
            guard data.shape == input else {
                throw fail("float arrays are taken as prepared inputs and must be \(input.map(String.init).joined(separator: "×")) "
                    + "as the model's input, got \(data.shapeDescription) (give bytes, uint8, to have them prepared)")
            }
            return data
        }
        var d = data
        if d.channels != channels {
            guard d.channels == 1, channels == 3 else {
                throw fail("images have \(d.channels) channels but the model takes \(channels)")
            }
            d = d.repeatingChannels(3)
        }
        if resamples && !resampled {
            let (oh, ow) = try outputSize(rows: d.rows, cols: d.cols)
            var pixels = [Float]()
            pixels.reserveCapacity(d.count * channels * oh * ow)
            for i in 0..<d.count { pixels += try resample(d.image(i), channels: channels, rows: d.rows, cols: d.cols).pixels }
            d = ImageDataset(images: pixels, labels: d.labels, channels: channels, rows: oh, cols: ow)
        }
        guard d.rows == input[1], d.cols == input[2] else {
            let how = resamples ? "after resizing and cropping as the model's card records" : "and the model's card records no resize or crop"
            throw fail("images are \(d.shapeDescription) \(how), but the model expects \(input.map(String.init).joined(separator: "×"))")
        }
        if channelOrder == .bgr { d = d.swappingFirstAndThirdChannel() }
        if !keepsValues { d = d.mapChannels { c, v in (v * 255 * scale - value(mean, c, 0)) / value(std, c, 1) } }
        return d
    }

    private func value(_ v: [Float], _ c: Int, _ fallback: Float) -> Float { v.isEmpty ? fallback : v[v.count == 1 ? 0 : c] }

    /// A line for a model card: every step, in order.
    public var summary: String {
        var steps: [String] = []
        if let r = resize { steps.append(r.count == 1 ? "resize the shorter side to \(r[0]) (bilinear)" : "resize to \(r[0])×\(r[1]) (bilinear)") }
        if let c = centerCrop { steps.append("centre crop \(c[0])×\(c[1])") }
        steps.append(scale == 1 / 255 ? "bytes ÷ 255" : "bytes × \(scale)")
        if !mean.isEmpty { steps.append("− mean \(mean.map { "\($0)" }.joined(separator: ", "))") }
        if !std.isEmpty { steps.append("÷ std \(std.map { "\($0)" }.joined(separator: ", "))") }
        if channelOrder == .bgr { steps.append("channels BGR") }
        steps.append("layout \(layout.rawValue)")
        return steps.joined(separator: "; ")
    }
}

/// Data that cannot be made into a model's input, or an unusable preprocessing record.
public struct PreprocessingError: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var description: String { reason }
    public init(reason: String) { self.reason = reason }
}

extension ImageDataset {
    /// Greyscale images repeated to `channels` identical planes.
    func repeatingChannels(_ channels: Int) -> ImageDataset {
        let plane = rows * cols
        var out = [Float](repeating: 0, count: count * channels * plane)
        for i in 0..<count {
            for c in 0..<channels {
                out.replaceSubrange((i * channels + c) * plane ..< (i * channels + c + 1) * plane, with: images[i * plane ..< (i + 1) * plane])
            }
        }
        return ImageDataset(images: out, labels: labels, channels: channels, rows: rows, cols: cols)
    }

    /// Colour images with their first and third planes exchanged (RGB to BGR).
    func swappingFirstAndThirdChannel() -> ImageDataset {
        var out = images
        let plane = rows * cols, per = channels * plane
        for i in 0..<count {
            for p in 0..<plane { out.swapAt(i * per + p, i * per + 2 * plane + p) }
        }
        return ImageDataset(images: out, labels: labels, channels: channels, rows: rows, cols: cols)
    }

    /// Every value transformed by `f(channel, value)`.
    func mapChannels(_ f: (Int, Float) -> Float) -> ImageDataset {
        var out = images
        let plane = rows * cols, per = channels * plane
        for i in 0..<count {
            for c in 0..<channels {
                let start = i * per + c * plane
                for p in start..<(start + plane) { out[p] = f(c, out[p]) }
            }
        }
        return ImageDataset(images: out, labels: labels, channels: channels, rows: rows, cols: cols)
    }
}
