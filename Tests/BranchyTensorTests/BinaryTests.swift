import BranchyTensor
import CBranchyKernels
import Testing

@Suite struct BinaryTests {
    @Test func signMapsZeroToPlusOne() {
        let x = Tensor(shape: [1, 7], data: [-2, -1e-30, -0.0, 0, 1e-30, 3, .nan])
        let expected: [Float] = [-1, -1, 1, 1, 1, 1, -1]
        #expect(Sign.forward(x).data == expected)
        var y = [Float](repeating: 0, count: 7)
        x.data.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { bk_sign(7, xp.baseAddress!, $0.baseAddress!) } }
        #expect(y == expected)
    }

    @Test func signBackwardIsClippedStraightThrough() {
        let x = Tensor(shape: [1, 6], data: [-1.5, -1, -0.25, 0, 1, 1.01])
        let dy = Tensor(shape: [1, 6], data: [1, 2, 3, 4, 5, 6])
        #expect(Sign.backward(input: x, dy: dy).data == [0, 2, 3, 4, 5, 0])
    }

    @Test func packedBitsFollowTheSigns() {
        let n = 70
        let x: [Float] = (0..<n).map { (i: Int) -> Float in
            let v = Float(i)
            return i % 3 == 0 ? -(v + 1) : v
        }
        var bits = [UInt64](repeating: .max, count: 2 * bk_sign_words(Int32(n)))
        x.withUnsafeBufferPointer { xp in bits.withUnsafeMutableBufferPointer { bk_pack_signs(1, Int32(n), xp.baseAddress!, n, $0.baseAddress!) } }
        #expect(bk_sign_words(Int32(n)) == 2)
        for i in 0..<128 {
            let set = bits[i / 64] >> UInt64(i % 64) & 1 == 1
            #expect(set == (i < n && i % 3 == 0), "bit \(i)")
        }
    }

    /// The reference against the definition: α · Σ sign(x)·sign(w) (an exact integer) + b.
    @Test func referenceMatchesDefinition() {
        let x = randomTensor([3, 37], seed: 1), w = randomTensor([5, 37], seed: 2), b = randomTensor([5], seed: 3)
        let y = BinaryLinear.reference(x: x, weight: w, bias: b)
        for o in 0..<5 {
            let alpha = (0..<37).reduce(Float(0)) { $0 + abs(w.data[o * 37 + $1]) } / 37
            for s in 0..<3 {
                let dot = (0..<37).reduce(0) { $0 + Int(Sign.value(x.data[s * 37 + $1]) * Sign.value(w.data[o * 37 + $1])) }
                #expect(y.data[s * 5 + o] == alpha * Float(dot) + b.data[o])
            }
        }
    }

    /// The C kernel gives the reference's bits at every batch size and odd input sizes, on every path.
    @Test(arguments: KernelISA.supported)
    func kernelMatchesReferenceBitForBit(isa: KernelISA) {
        for inF in [1, 5, 63, 64, 65, 130, 392] {
            for (outF, n) in [(1, 1), (10, 1), (10, 2), (3, 7), (10, 13), (7, 64)] {
                let seed = UInt64(inF * 100 + outF * 10 + n)
                // Some exact zeros, which must count as +1 on both sides.
                var x = randomTensor([n, inF], seed: seed)
                for i in stride(from: 0, to: x.count, by: 11) { x.data[i] = 0 }
                let w = randomTensor([outF, inF], seed: seed + 1, range: 0.3), b = randomTensor([outF], seed: seed + 2)
                let ref = BinaryLinear.reference(x: x, weight: w, bias: b)
                let got = BinaryLinear.forward(x: x, weight: w, bias: b, isa: isa)
                #expect(got.data.map(\.bitPattern) == ref.data.map(\.bitPattern), "in \(inF) out \(outF) batch \(n) \(isa)")
                let noBias = BinaryLinear.forward(x: x, weight: w, bias: nil, isa: isa)
                #expect(noBias == BinaryLinear.reference(x: x, weight: w, bias: nil), "no bias, in \(inF) out \(outF) batch \(n)")
            }
        }
    }

    /// A sample's output is the same alone as among others.
    @Test func resultsDoNotDependOnTheBatch() {
        let x = randomTensor([9, 100], seed: 20), w = randomTensor([10, 100], seed: 21), b = randomTensor([10], seed: 22)
        let all = BinaryLinear.forward(x: x, weight: w, bias: b)
        for s in 0..<9 {
            let one = BinaryLinear.forward(x: x.items(s..<(s + 1)), weight: w, bias: b)
            #expect(one.data == Array(all.data[(s * 10)..<((s + 1) * 10)]))
        }
    }

    /// The backward pass against the documented straight-through estimators, written out in Double.
    @Test func backwardFollowsTheStraightThroughEstimators() {
        let n = 4, inF = 9, outF = 3
        // Ranges beyond 1 so that both clippings apply to some entries.
        let x = randomTensor([n, inF], seed: 30, range: 2), w = randomTensor([outF, inF], seed: 31, range: 1.6)
        let dy = randomTensor([n, outF], seed: 32)
        var dw = Tensor(shape: w.shape, repeating: 0.5)
        var db: Tensor? = Tensor(shape: [outF], repeating: 0.25)
        let dx = BinaryLinear.backward(x: x, weight: w, dy: dy, dWeight: &dw, dBias: &db)!
        let alpha = BinaryLinear.scales(weight: w)
        func sign(_ v: Float) -> Double { v >= 0 ? 1 : -1 }
        for s in 0..<n { for i in 0..<inF {
            var g = 0.0
            for o in 0..<outF { g += Double(dy.data[s * outF + o]) * Double(alpha[o]) * sign(w.data[o * inF + i]) }
            let want = abs(x.data[s * inF + i]) <= 1 ? g : 0
            #expect(abs(Double(dx.data[s * inF + i]) - want) < 1e-5)
        } }
        for o in 0..<outF {
            for i in 0..<inF {
                var g = 0.0
                for s in 0..<n { g += Double(dy.data[s * outF + o]) * sign(x.data[s * inF + i]) }
                let want = 0.5 + (abs(w.data[o * inF + i]) <= 1 ? g : 0)
                #expect(abs(Double(dw.data[o * inF + i]) - want) < 1e-5)
            }
            let sum = (0..<n).reduce(0.0) { $0 + Double(dy.data[$1 * outF + o]) }
            #expect(abs(Double(db!.data[o]) - (0.25 + sum)) < 1e-5)
        }
        #expect(BinaryLinear.backward(x: x, weight: w, dy: dy, dWeight: &dw, dBias: &db, needInputGradient: false) == nil)
    }
}

/// Batch normalisation with batch statistics (used before the sign of a binarised stage).
@Suite struct BatchStatisticsTests {
    @Test func forwardNormalisesEachChannel() {
        let x = randomTensor([3, 2, 2, 2], seed: 40, range: 3)
        let gamma = Tensor(shape: [2], data: [1, 1]), beta = Tensor(shape: [2], data: [0, 0])
        let r = BatchNorm.forwardTraining(x: x, gamma: gamma, beta: beta, epsilon: 0)
        for c in 0..<2 {
            let values = (0..<3).flatMap { s in (0..<4).map { r.y.data[(s * 2 + c) * 4 + $0] } }
            let mean = values.reduce(0, +) / 12
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 12
            #expect(abs(mean) < 1e-5 && abs(variance - 1) < 1e-4)
        }
    }

    @Test func backwardMatchesFiniteDifferences() {
        let x = randomTensor([3, 2, 2, 2], seed: 41, range: 2)
        let gamma = randomTensor([2], seed: 42), beta = randomTensor([2], seed: 43)
        let dy = randomTensor([3, 2, 2, 2], seed: 44)
        func loss(_ x: Tensor, _ g: Tensor, _ b: Tensor) -> Double {
            let y = BatchNorm.forwardTraining(x: x, gamma: g, beta: b, epsilon: 1e-5).y
            return zip(y.data, dy.data).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        let r = BatchNorm.forwardTraining(x: x, gamma: gamma, beta: beta, epsilon: 1e-5)
        var dGamma = Tensor(shape: [2]), dBeta = Tensor(shape: [2])
        let dx = BatchNorm.backwardTraining(normalized: r.normalized, dy: dy, variance: r.variance, gamma: gamma, epsilon: 1e-5,
                                            dGamma: &dGamma, dBeta: &dBeta)
        let h: Float = 1e-2
        for i in [0, 5, 11, 17, 23] {
            var p = x, m = x; p.data[i] += h; m.data[i] -= h
            #expect(abs((loss(p, gamma, beta) - loss(m, gamma, beta)) / Double(2 * h) - Double(dx.data[i])) < 2e-3)
        }
        for c in 0..<2 {
            var p = gamma, m = gamma; p.data[c] += h; m.data[c] -= h
            #expect(abs((loss(x, p, beta) - loss(x, m, beta)) / Double(2 * h) - Double(dGamma.data[c])) < 2e-3)
            var pb = beta, mb = beta; pb.data[c] += h; mb.data[c] -= h
            #expect(abs((loss(x, gamma, pb) - loss(x, gamma, mb)) / Double(2 * h) - Double(dBeta.data[c])) < 2e-3)
        }
    }
}
