import BranchyTensor

/// Label-preserving image augmentation for training batches (N, C, H, W), in place.
public enum Augment {
    /// Flips each image horizontally with probability ½ and shifts it by up to `shift` pixels (zero fill).
    public static func apply(_ x: inout Tensor, flip: Bool, shift: Int, rng: inout SeededRandom) {
        let c = x.shape[1], h = x.shape[2], w = x.shape[3]
        var plane = [Float](repeating: 0, count: h * w)
        for s in 0..<x.batch {
            let doFlip = flip && (rng.next() & 1) == 1
            let dy = shift > 0 ? Int(rng.next() % UInt64(2 * shift + 1)) - shift : 0
            let dx = shift > 0 ? Int(rng.next() % UInt64(2 * shift + 1)) - shift : 0
            if !doFlip && dx == 0 && dy == 0 { continue }
            for ch in 0..<c {
                let o = (s * c + ch) * h * w
                for i in 0..<(h * w) { plane[i] = x.data[o + i] }
                for yy in 0..<h {
                    let sy = yy - dy
                    for xx in 0..<w {
                        var sx = xx - dx
                        if doFlip { sx = w - 1 - sx }
                        x.data[o + yy * w + xx] = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? plane[sy * w + sx] : 0
                    }
                }
            }
        }
    }
}
