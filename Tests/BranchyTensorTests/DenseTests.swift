import BranchyTensor
import Foundation
import Testing

@Suite struct DenseTests {
    @Test func linearMatchesDefinitionAndFiniteDifferences() {
        let x = randomTensor([3, 6], seed: 70), w = randomTensor([4, 6], seed: 71), b = randomTensor([4], seed: 72)
        let y = Linear.forward(x: x, weight: w, bias: b)
        for s in 0..<3 { for o in 0..<4 {
            var ref = b.data[o]
            for i in 0..<6 { ref += x.data[s * 6 + i] * w.data[o * 6 + i] }
            #expect(abs(y.data[s * 4 + o] - ref) < 1e-5)
        } }
        let dy = randomTensor([3, 4], seed: 73)
        var dw = Tensor(shape: w.shape)
        var db: Tensor? = Tensor(shape: [4])
        let dx = Linear.backward(x: x, weight: w, dy: dy, dWeight: &dw, dBias: &db)!
        func loss(_ x: Tensor, _ w: Tensor, _ b: Tensor) -> Double {
            zip(Linear.forward(x: x, weight: w, bias: b).data, dy.data).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        for i in [0, 5, 11, 17] {
            var p = x, m = x; p.data[i] += 1e-2; m.data[i] -= 1e-2
            #expect(abs((loss(p, w, b) - loss(m, w, b)) / 2e-2 - Double(dx.data[i])) < 1e-3)
        }
        for i in [0, 9, 23] {
            var p = w, m = w; p.data[i] += 1e-2; m.data[i] -= 1e-2
            #expect(abs((loss(x, p, b) - loss(x, m, b)) / 2e-2 - Double(dw.data[i])) < 1e-3)
        }
        for i in 0..<4 {
            var p = b, m = b; p.data[i] += 1e-2; m.data[i] -= 1e-2
            #expect(abs((loss(x, w, p) - loss(x, w, m)) / 2e-2 - Double(db!.data[i])) < 1e-3)
        }
    }

    @Test func reluForwardBackward() {
        let x = Tensor(shape: [1, 4], data: [-1, 0, 2, -3])
        let y = ReLU.forward(x)
        #expect(y.data == [0, 0, 2, 0])
        #expect(ReLU.backward(output: y, dy: Tensor(shape: [1, 4], data: [1, 1, 1, 1])).data == [0, 0, 1, 0])
    }

    @Test func batchNormMatchesDefinitionAndGradient() {
        let x = randomTensor([2, 3, 2, 2], seed: 80)
        let mean = randomTensor([3], seed: 81), gamma = randomTensor([3], seed: 82), beta = randomTensor([3], seed: 83)
        let variance = Tensor(shape: [3], data: [0.5, 1, 2])
        let y = BatchNorm.forward(x: x, mean: mean, variance: variance, gamma: gamma, beta: beta)
        let c = 1, i = (1 * 3 + c) * 4 + 2
        let ref = (x.data[i] - mean.data[c]) / (variance.data[c] + 1e-5).squareRoot() * gamma.data[c] + beta.data[c]
        #expect(abs(y.data[i] - ref) < 1e-5)
        let dy = randomTensor(x.shape, seed: 84)
        var dg = Tensor(shape: [3]), dbeta = Tensor(shape: [3])
        let dx = BatchNorm.backward(x: x, dy: dy, mean: mean, variance: variance, gamma: gamma, dGamma: &dg, dBeta: &dbeta)
        func loss(_ x: Tensor, _ g: Tensor) -> Double {
            zip(BatchNorm.forward(x: x, mean: mean, variance: variance, gamma: g, beta: beta).data, dy.data).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        var p = x, m = x; p.data[5] += 1e-2; m.data[5] -= 1e-2
        #expect(abs((loss(p, gamma) - loss(m, gamma)) / 2e-2 - Double(dx.data[5])) < 1e-3)
        var gp = gamma, gm = gamma; gp.data[2] += 1e-2; gm.data[2] -= 1e-2
        #expect(abs((loss(x, gp) - loss(x, gm)) / 2e-2 - Double(dg.data[2])) < 1e-3)
    }

    @Test func softmaxEntropyAndCrossEntropy() {
        let logits = Tensor(shape: [2, 10], data: [Float](repeating: 0, count: 10) + [100] + [Float](repeating: 0, count: 9))
        let p = Softmax.forward(logits)
        #expect(abs(p.data[3] - 0.1) < 1e-6)
        let h = Softmax.entropy(p)
        #expect(abs(h[0] - logf(10)) < 1e-5)          // uniform: ln 10
        #expect(h[1] < 1e-6)                          // one-hot: 0
        #expect(abs(Softmax.entropy(p, normalized: true)[0] - 1) < 1e-5)
        let ls = Softmax.logSoftmax(logits)
        #expect(abs(ls.data[0] - logf(0.1)) < 1e-5)
        let x = randomTensor([3, 5], seed: 90, range: 3)
        let labels = [1, 4, 0]
        let (_, d) = Softmax.crossEntropy(logits: x, labels: labels)
        for i in [0, 6, 14] {
            var a = x, b = x; a.data[i] += 1e-2; b.data[i] -= 1e-2
            let num = (Softmax.crossEntropy(logits: a, labels: labels).loss - Softmax.crossEntropy(logits: b, labels: labels).loss) / 2e-2
            #expect(abs(num - d.data[i]) < 2e-3)
        }
        #expect(Softmax.argmax(logits) == [0, 0])
    }
}
