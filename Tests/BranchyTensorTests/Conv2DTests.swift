import BranchyTensor
import Testing

@Suite struct Conv2DTests {
    static let geometries = [
        Conv2DGeometry(inC: 1, inH: 28, inW: 28, outC: 5, kH: 5, kW: 5, stride: 1, pad: 3),
        Conv2DGeometry(inC: 3, inH: 7, inW: 9, outC: 4, kH: 3, kW: 3, stride: 2, pad: 1),
        Conv2DGeometry(inC: 2, inH: 5, inW: 5, outC: 3, kH: 1, kW: 1, stride: 1, pad: 0),
        Conv2DGeometry(inC: 8, inH: 7, inW: 7, outC: 32, kH: 3, kW: 3, stride: 1, pad: 1),
    ]

    @Test func paperSizes() {
        #expect(Self.geometries[0].outH == 30)
    }

    @Test(arguments: geometries)
    func forwardMatchesReference(g: Conv2DGeometry) {
        let x = randomTensor([3, g.inC, g.inH, g.inW], seed: 10)
        let w = randomTensor([g.outC, g.inC, g.kH, g.kW], seed: 11)
        let b = randomTensor([g.outC], seed: 12)
        let fast = Conv2D.forward(g, x: x, weight: w, bias: b)
        let ref = Conv2DReference.forward(g, x: x, weight: w, bias: b)
        #expect(fast.shape == [3, g.outC, g.outH, g.outW])
        #expect(maxDifference(fast.data, ref.data) < 1e-4)
    }

    @Test(arguments: geometries)
    func backwardMatchesReference(g: Conv2DGeometry) {
        let x = randomTensor([5, g.inC, g.inH, g.inW], seed: 20)
        let w = randomTensor([g.outC, g.inC, g.kH, g.kW], seed: 21)
        let dy = randomTensor([5, g.outC, g.outH, g.outW], seed: 22)
        var dw = Tensor(shape: w.shape)
        var db: Tensor? = Tensor(shape: [g.outC])
        let dx = Conv2D.backward(g, x: x, weight: w, dy: dy, dWeight: &dw, dBias: &db)!
        let ref = Conv2DReference.backward(g, x: x, weight: w, dy: dy)
        #expect(maxDifference(dx.data, ref.dx.data) < 1e-3)
        #expect(maxDifference(dw.data, ref.dw.data) < 1e-3)
        #expect(maxDifference(db!.data, ref.db.data) < 1e-3)
    }

    @Test func batchSizeDoesNotChangeResults() {
        // Each sample's output must be bit-identical whether it runs alone or in a batch:
        // the tiers run single samples while the evaluator runs batches.
        let g = Self.geometries[3]
        let x = randomTensor([6, g.inC, g.inH, g.inW], seed: 30)
        let w = randomTensor([g.outC, g.inC, 3, 3], seed: 31)
        let all = Conv2D.forward(g, x: x, weight: w, bias: nil)
        for s in 0..<6 {
            let one = Conv2D.forward(g, x: x.items(s..<(s + 1)), weight: w, bias: nil)
            #expect(one.data == all.items(s..<(s + 1)).data)
        }
    }

    @Test func gradientMatchesFiniteDifferences() {
        let g = Conv2DGeometry(inC: 2, inH: 5, inW: 4, outC: 3, kH: 3, kW: 3, stride: 1, pad: 1)
        let x = randomTensor([2, 2, 5, 4], seed: 40)
        let w = randomTensor([3, 2, 3, 3], seed: 41)
        let dy = randomTensor([2, 3, g.outH, g.outW], seed: 42)
        func loss(_ x: Tensor, _ w: Tensor) -> Double {
            let y = Conv2D.forward(g, x: x, weight: w, bias: nil)
            return zip(y.data, dy.data).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        var dw = Tensor(shape: w.shape)
        var db: Tensor? = nil
        let dx = Conv2D.backward(g, x: x, weight: w, dy: dy, dWeight: &dw, dBias: &db)!
        let h: Float = 1e-2
        for i in [0, 7, 19, 39] {
            var xp = x, xm = x
            xp.data[i] += h; xm.data[i] -= h
            let numeric = (loss(xp, w) - loss(xm, w)) / Double(2 * h)
            #expect(abs(numeric - Double(dx.data[i])) < 1e-2)
        }
        for i in [0, 5, 17, 53] {
            var wp = w, wm = w
            wp.data[i] += h; wm.data[i] -= h
            let numeric = (loss(x, wp) - loss(x, wm)) / Double(2 * h)
            #expect(abs(numeric - Double(dw.data[i])) < 1e-2)
        }
    }
}
