import BranchyTensor
import Testing

@Suite struct PoolingTests {
    @Test(arguments: [(30, 15), (15, 8), (17, 9), (11, 6), (28, 14), (7, 4)])
    func ceilModeSizes(input: Int, expected: Int) {
        let g = Pool2DGeometry(channels: 1, inH: input, inW: input, kernel: 2, stride: 2, ceilMode: true)
        #expect(g.outH == expected)
    }

    @Test func floorModeDropsTheRemainder() {
        #expect(Pool2DGeometry(channels: 1, inH: 7, inW: 7, kernel: 2, stride: 2).outH == 3)
    }

    @Test(arguments: [false, true])
    func maxPoolMatchesReference(ceil: Bool) {
        let g = Pool2DGeometry(channels: 3, inH: 9, inW: 7, kernel: 2, stride: 2, ceilMode: ceil)
        let x = randomTensor([2, 3, 9, 7], seed: 50)
        var argmax: [Int32] = []
        let fast = MaxPool2D.forward(g, x: x, argmax: &argmax)
        #expect(fast.data == MaxPool2DReference.forward(g, x: x).data)
    }

    @Test func maxPoolBackwardRoutesToTheMaximum() {
        let g = Pool2DGeometry(channels: 1, inH: 2, inW: 2, kernel: 2, stride: 2)
        let x = Tensor(shape: [1, 1, 2, 2], data: [1, 5, 3, 2])
        var argmax: [Int32] = []
        let y = MaxPool2D.forward(g, x: x, argmax: &argmax)
        #expect(y.data == [5])
        let dx = MaxPool2D.backward(inputShape: x.shape, dy: Tensor(shape: [1, 1, 1, 1], data: [2]), argmax: argmax)
        #expect(dx.data == [0, 2, 0, 0])
    }

    @Test func avgPoolGradientMatchesFiniteDifferences() {
        let g = Pool2DGeometry(channels: 2, inH: 5, inW: 5, kernel: 2, stride: 2, ceilMode: true)
        let x = randomTensor([1, 2, 5, 5], seed: 60)
        let dy = randomTensor([1, 2, g.outH, g.outW], seed: 61)
        func loss(_ x: Tensor) -> Double {
            zip(AvgPool2D.forward(g, x: x).data, dy.data).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        let dx = AvgPool2D.backward(g, inputShape: x.shape, dy: dy)
        for i in [0, 4, 12, 24, 49] {
            var xp = x, xm = x
            xp.data[i] += 1e-2; xm.data[i] -= 1e-2
            #expect(abs((loss(xp) - loss(xm)) / 2e-2 - Double(dx.data[i])) < 1e-3)
        }
        // The ceil-mode edge window averages the one column it covers.
        let ones = Tensor(shape: [1, 1, 5, 5], repeating: 1)
        let y = AvgPool2D.forward(Pool2DGeometry(channels: 1, inH: 5, inW: 5, kernel: 2, stride: 2, ceilMode: true), x: ones)
        #expect(y.data.allSatisfy { $0 == 1 })
    }
}
