import BranchyTensor

func randomTensor(_ shape: [Int], seed: UInt64, range: Float = 1) -> Tensor {
    var rng = SeededRandom(seed: seed)
    let n = shape.reduce(1, *)
    return Tensor(shape: shape, data: (0..<n).map { _ in rng.uniform(-range, range) })
}

func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "sizes differ: \(a.count) vs \(b.count)")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
