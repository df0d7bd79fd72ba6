import Foundation

extension ImageDataset {
    /// A data set from NumPy arrays: images `x` of shape (N, C, H, W) (NCHW), (N, H, W, C) with C
    /// 1, 3 or 4 where the second axis is not (NHWC, transposed to NCHW), or (N, H, W)
    /// (greyscale); labels `y` of shape (N) holding whole numbers 0 to 255. Integer images are
    /// bytes, divided by 255 as IDX and CIFAR-10 pixels are; float images are taken as they are, as
    /// a model's prepared input (``ImageDataset/isTensor``).
    public static func fromArrays(x: NPYArray, y: NPYArray, file: String) throws -> ImageDataset {
        func fail(_ reason: String) -> NPYArray.Error { NPYArray.Error(file: file, reason: reason) }
        guard y.shape.count == 1 || (y.shape.count == 2 && y.shape[1] == 1) else {
            throw fail("labels must have shape (N), got \(y.shape)")
        }
        let n = y.shape[0]
        guard let first = x.shape.first, first == n else {
            throw fail("\(x.shape.first ?? 0) images but \(n) labels")
        }
        var labels = [UInt8]()
        labels.reserveCapacity(n)
        for (i, v) in y.values.enumerated() {
            guard v >= 0, v <= 255, v == v.rounded() else { throw fail("label \(i) is \(v), not a whole number from 0 to 255") }
            labels.append(UInt8(v))
        }
        let (c, h, w, channelsLast): (Int, Int, Int, Bool)
        switch x.shape.count {
        case 3: (c, h, w, channelsLast) = (1, x.shape[1], x.shape[2], false)
        case 4:
            let last = [1, 3, 4].contains(x.shape[3]) && ![1, 3, 4].contains(x.shape[1])
            (c, h, w, channelsLast) = last ? (x.shape[3], x.shape[1], x.shape[2], true) : (x.shape[1], x.shape[2], x.shape[3], false)
        default: throw fail("images must have shape (N, C, H, W), (N, H, W, C) or (N, H, W), got \(x.shape)")
        }
        guard n > 0, c > 0, h > 0, w > 0 else { throw fail("empty images \(x.shape)") }
        // Bytes divided by 255, exactly as IDX and CIFAR-10 pixels are (not multiplied by 1/255).
        let divisor: Float = x.isInteger ? 255 : 1
        if x.isInteger, let bad = x.values.firstIndex(where: { $0 < 0 || $0 > 255 }) {
            throw fail("integer images must be bytes 0 to 255; value \(bad) is \(x.values[bad])")
        }
        if let bad = x.values.firstIndex(where: { !$0.isFinite }) { throw fail("value \(bad) of the images is not finite") }
        var images = [Float](repeating: 0, count: x.values.count)
        let plane = h * w, per = c * plane
        for s in 0..<n {
            for p in 0..<plane {
                for ch in 0..<c {
                    let from = channelsLast ? s * per + p * c + ch : s * per + ch * plane + p
                    images[s * per + ch * plane + p] = x.values[from] / divisor
                }
            }
        }
        var d = ImageDataset(images: images, labels: labels, channels: c, rows: h, cols: w)
        d.isTensor = !x.isInteger
        return d
    }

    /// A `.npz` file's images and labels: arrays `x` and `y`, or the keys after a colon
    /// (`data.npz:images,labels`).
    public static func loadNPZ(_ spec: String) throws -> ImageDataset {
        var path = spec, keys = ("x", "y")
        if let colon = spec.range(of: ".npz:", options: .backwards) {
            path = String(spec[..<colon.lowerBound]) + ".npz"
            let names = spec[colon.upperBound...].split(separator: ",").map(String.init)
            guard names.count == 2 else {
                throw NPYArray.Error(file: path, reason: "give the images' and the labels' keys as FILE.npz:IMAGES,LABELS, got '\(spec[colon.upperBound...])'")
            }
            keys = (names[0], names[1])
        }
        let archive = try NPZArchive(contentsOf: URL(fileURLWithPath: path))
        return try fromArrays(x: try archive.array(keys.0), y: try archive.array(keys.1), file: path)
    }

    /// Images and labels from a pair of `.npy` files, given as `IMAGES.npy,LABELS.npy`.
    public static func loadNPYPair(_ spec: String) throws -> ImageDataset {
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, parts.allSatisfy({ $0.hasSuffix(".npy") }) else {
            throw NPYArray.Error(file: spec, reason: "give a pair of .npy files as IMAGES.npy,LABELS.npy")
        }
        return try fromArrays(x: try NPYArray.read(URL(fileURLWithPath: parts[0])), y: try NPYArray.read(URL(fileURLWithPath: parts[1])),
                              file: parts[0])
    }
}
