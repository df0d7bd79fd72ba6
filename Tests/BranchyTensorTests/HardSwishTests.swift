import BranchyTensor
import CBranchyKernels
import Testing

/// The HardSwish kernel (`bk_hardswish`, one path per ISA) against its scalar twin
/// ``HardSwish/value(_:)``, and the twin against the definition y = x · relu6(x + 3) / 6.
@Suite struct HardSwishTests {
    /// The kinks at ±3 and their neighbours, zeros of both signs, subnormals, values whose x · 6
    /// would overflow, the largest floats, infinities and NaN.
    static let edges: [Float] = [
        -3, 3, Float(-3).nextDown, Float(-3).nextUp, Float(3).nextDown, Float(3).nextUp, 0, -0.0, -6, 6, -1.5, 1.5,
        .leastNonzeroMagnitude, -.leastNonzeroMagnitude, 1e38, -1e38, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
        .infinity, -.infinity, .nan,
    ]

    /// Equal bits, or both NaN.
    static func same(_ a: Float, _ b: Float) -> Bool { a.isNaN ? b.isNaN : a.bitPattern == b.bitPattern }

    /// bk_hardswish on `x` by the path of `isa`, with sentinels after the output that it must not touch.
    static func kernel(_ x: [Float], isa: KernelISA) -> [Float] {
        var y = [Float](repeating: 12345, count: x.count + 32)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { bk_hardswish(isa.rawValue, x.count, xp.baseAddress!, $0.baseAddress!) }
        }
        #expect(y[x.count...].allSatisfy { $0 == 12345 }, "wrote past \(x.count) values on \(isa)")
        return Array(y.prefix(x.count))
    }

    @Test func twinAtTheEdges() {
        let minusZero = Float(-0.0).bitPattern
        #expect(HardSwish.value(-3).bitPattern == minusZero, "x ≤ −3: x · 0, a negative zero")
        #expect(HardSwish.value(-1e38).bitPattern == minusZero)
        #expect(HardSwish.value(Float(-3).nextUp) < 0)
        #expect(HardSwish.value(3) == 3)
        #expect(HardSwish.value(1e38) == 1e38, "the factor is exactly 1: no overflow of x · 6")
        #expect(HardSwish.value(.greatestFiniteMagnitude) == .greatestFiniteMagnitude)
        #expect(HardSwish.value(.infinity) == .infinity)
        #expect(HardSwish.value(-.infinity).isNaN, "−∞ · 0, as PyTorch and ONNX Runtime give")
        #expect(HardSwish.value(.nan).isNaN)
        #expect(HardSwish.value(0).bitPattern == 0)
        #expect(HardSwish.value(-0.0).bitPattern == minusZero)
    }

    /// x · relu6(x + 3) / 6 in Double, within the three roundings of the float form.
    @Test func twinMatchesTheDefinition() {
        for x in randomTensor([2000], seed: 3, range: 4).data + Self.edges.filter(\.isFinite) {
            let d = Double(x)
            let exact = d * min(max(d + 3, 0), 6) / 6
            #expect(abs(Double(HardSwish.value(x)) - exact) <= 4 * Double(abs(Float(exact)).ulp), "x = \(x)")
        }
    }

    /// Random values, then the edge values at every position of a vector of every path, at
    /// every length up to a few vectors (so every tail length runs).
    @Test(arguments: KernelISA.supported)
    func kernelMatchesTwinBitForBit(isa: KernelISA) {
        let random = randomTensor([300], seed: 11, range: 8).data
        for n in 0...random.count {
            let x = Array(random.prefix(n))
            let y = Self.kernel(x, isa: isa)
            #expect(zip(x, y).allSatisfy { Self.same($1, HardSwish.value($0)) }, "\(n) random values on \(isa)")
        }
        for offset in 0..<17 {
            let x = Array(random.prefix(offset)) + Self.edges
            let y = Self.kernel(x, isa: isa)
            for (i, v) in x.enumerated() {
                #expect(Self.same(y[i], HardSwish.value(v)), "x = \(v) at \(i) on \(isa): \(y[i])")
            }
        }
    }

    @Test func forwardKeepsTheShape() {
        let x = randomTensor([3, 2, 5], seed: 4, range: 5)
        for isa in KernelISA.supported {
            let y = HardSwish.forward(x, isa: isa)
            #expect(y.shape == x.shape)
            #expect(y.data.map(\.bitPattern) == HardSwish.reference(x).data.map(\.bitPattern))
        }
        #expect(HardSwish.forward(Tensor(shape: [0, 4])).shape == [0, 4])
    }

    /// PyTorch's derivative: 0 below −3, x / 3 + 0.5 on [−3, 3], 1 above; and against central
    /// differences away from the kinks.
    @Test func backward() {
        let x = Tensor(shape: [1, 7], data: [-4, -3, -1.5, 0, 1.5, 3, 4])
        let dy = Tensor(shape: [1, 7], data: [2, 2, 2, 2, 2, 2, 2])
        #expect(HardSwish.backward(input: x, dy: dy).data == [0, -1, 0, 1, 2, 3, 2])
        let points = randomTensor([200], seed: 5, range: 5).data.filter { abs(abs($0) - 3) > 0.01 }
        let ones = Tensor(shape: [points.count], repeating: 1)
        let dx = HardSwish.backward(input: Tensor(shape: [points.count], data: points), dy: ones)
        for (i, v) in points.enumerated() {
            let h = 1e-3
            let numeric = (Double(HardSwish.value(Float(Double(v) + h))) - Double(HardSwish.value(Float(Double(v) - h)))) / (2 * h)
            #expect(abs(numeric - Double(dx.data[i])) < 1e-2, "x = \(v)")
        }
    }
}
