import BranchyTensor
import Foundation
import Testing
@testable import BranchyModel

/// The operators ONNX import needs beyond the trained models' — grouped, depthwise and dilated
/// convolutions, `clip`, `leakyrelu`, `sigmoid`, `hardsigmoid`, `globalavgpool` and `branches`
/// blocks — planned, run layer by layer and compiled, trained and saved.
@Suite struct ImportedOperatorTests {
    /// A MobileNetV2-style stage (depthwise convolution, ReLU6, a residual sum), a
    /// squeeze-excitation gate, a concatenation, a dilated grouped convolution and the
    /// activations, on two stages.
    static let spec = ModelSpec(name: "imported", input: [4, 7, 7], classes: 3, stages: [
        StageSpec(name: "a", trunk: [
            .conv("expand", out: 8, kernel: 1),
            .clip(min: 0, max: 6),
            .groupedConv("dw", out: 8, kernel: 3, groups: 8, stride: 1, pad: 1),
            .relu,
            .branches("se", merge: "mul", [[], [.globalAvgPool, .conv("se1", out: 2, kernel: 1), .relu,
                                               .conv("se2", out: 8, kernel: 1), LayerSpec(op: "hardsigmoid", alpha: 1 / 6, beta: 0.5)]]),
            .residual("res", [.groupedConv("g", out: 8, kernel: 3, groups: 2, pad: 2, dilation: 2), LayerSpec(op: "leakyrelu", alpha: 0.1)]),
        ], exit: ExitSpec(name: "ea", layers: [.globalAvgPool, .flatten, .linear("fc", out: 3)])),
        StageSpec(name: "b", trunk: [
            .branches("cat", merge: "concat", [[.groupedConv("dws", out: 8, kernel: 3, groups: 8, stride: 2, pad: 1)],
                                              [.maxPool(2, ceil: true)]]),
            LayerSpec(op: "sigmoid"),
            .branches("sum3", merge: "add", [[], [.conv("p", out: 16, kernel: 1)], [.clip(min: -1, max: nil)]]),
        ], exit: ExitSpec(name: "eb", layers: [.flatten, .linear("fc", out: 3)])),
    ])

    @Test func decodesAndPlans() throws {
        let json = try JSONEncoder().encode(Self.spec)
        #expect(try JSONDecoder().decode(ModelSpec.self, from: json) == Self.spec)
        let network = try Network(spec: Self.spec)
        #expect(network.stages.map(\.outputShape) == [[8, 7, 7], [16, 4, 4]])
        #expect(network.stages[0].trunk[2] is GroupedConvLayer)
        #expect(network.stages[0].trunk[1] is ClipLayer)
        #expect(network.expectedTensors.first { $0.name == "a.trunk.dw.weight" }?.shape == [8, 1, 3, 3])
        #expect(network.expectedTensors.first { $0.name == "a.trunk.g.weight" }?.shape == [8, 4, 3, 3])
    }

    /// Compiled inference (group and per-sample runs, every ISA) agrees with the layers.
    @Test(arguments: KernelISA.supported)
    func compiledMatchesLayers(isa: KernelISA) throws {
        let network = try ModelFixture.randomNetwork(Self.spec, seed: 21)
        let input = ModelFixture.randomInput(Self.spec.input, count: 9, seed: 22)
        let got = CompiledNetworkTests.compiledOutputs(CompiledNetwork(network, isa: isa), input, perSample: false)
        let want = CompiledNetworkTests.referenceOutputs(network, input)
        for i in network.stages.indices {
            #expect(maxDifference(got.features[i], want.features[i]) <= 2e-5 * max(1, want.features[i].map(abs).max() ?? 1))
            #expect(maxDifference(got.logits[i], want.logits[i]) <= 2e-4 * max(1, want.logits[i].map(abs).max() ?? 1))
        }
        #expect(got == CompiledNetworkTests.compiledOutputs(CompiledNetwork(network, isa: isa), input, perSample: true))
    }

    /// The grouped convolution against a plain loop over its definition, and with one group
    /// and no dilation against the packed convolution.
    @Test func groupedConvolutionIsItsDefinition() {
        let g = GroupedConv2DGeometry(inC: 6, inH: 7, inW: 6, outC: 4, kernel: 3, stride: 2, pad: 2, dilation: 2, groups: 2)
        let x = ModelFixture.randomInput([6, 7, 6], count: 2, seed: 5)
        let w = ModelFixture.randomInput(g.weightShape, count: 1, seed: 6).reshaped(g.weightShape)
        let b = Tensor(shape: [4], data: [0.5, -1, 0, 2])
        let y = GroupedConv2D.forward(g, x: x, weight: w, bias: b)
        var worst: Float = 0
        for s in 0..<2 { for o in 0..<4 { for oy in 0..<g.outH { for ox in 0..<g.outW {
            var sum = b.data[o]
            for ci in 0..<3 { for ky in 0..<3 { for kx in 0..<3 {
                let iy = oy * 2 - 2 + ky * 2, ix = ox * 2 - 2 + kx * 2
                guard iy >= 0, iy < 7, ix >= 0, ix < 6 else { continue }
                sum += w.data[((o * 3 + ci) * 3 + ky) * 3 + kx] * x.data[((s * 6 + (o / 2) * 3 + ci) * 7 + iy) * 6 + ix]
            }}}
            worst = max(worst, abs(sum - y.data[((s * 4 + o) * g.outH + oy) * g.outW + ox]))
        }}}}
        #expect(worst < 1e-5)

        let plain = GroupedConv2DGeometry(inC: 3, inH: 5, inW: 5, outC: 4, kernel: 3, stride: 1, pad: 1)
        let x3 = ModelFixture.randomInput([3, 5, 5], count: 2, seed: 7)
        let w3 = ModelFixture.randomInput([4, 3, 3, 3], count: 1, seed: 8).reshaped([4, 3, 3, 3])
        let dense = Conv2D.forward(Conv2DGeometry(inC: 3, inH: 5, inW: 5, outC: 4, kH: 3, kW: 3, stride: 1, pad: 1), x: x3, weight: w3, bias: nil)
        #expect(maxDifference(GroupedConv2D.forward(plain, x: x3, weight: w3, bias: nil).data, dense.data) < 1e-5)
    }

    /// The depthwise 3×3 fast path gives the general form's bits, for every stride, padding and
    /// dilation tried, on maps small enough that every window touches an edge.
    @Test(arguments: [(1, 1, 1), (2, 1, 1), (1, 0, 1), (1, 2, 2), (2, 2, 2), (3, 1, 1), (1, 1, 3)])
    func depthwiseFastPathIsTheReference(stride: Int, pad: Int, dilation: Int) {
        for (h, w) in [(7, 7), (14, 9), (3, 3), (2, 5)] {
            let g = GroupedConv2DGeometry(inC: 5, inH: h, inW: w, outC: 5, kernel: 3, stride: stride, pad: pad, dilation: dilation, groups: 5)
            guard g.outH >= 1, g.outW >= 1 else { continue }
            let x = ModelFixture.randomInput([5, h, w], count: 1, seed: UInt64(h * 31 + w)).data
            let weight = ModelFixture.randomInput([5, 1, 3, 3], count: 1, seed: 9).data
            let bias: [Float] = [0.5, -0.25, 0, 1, -2]
            var fast = [Float](repeating: .nan, count: g.outputCount), slow = [Float](repeating: .nan, count: g.outputCount)
            x.withUnsafeBufferPointer { xp in weight.withUnsafeBufferPointer { wp in bias.withUnsafeBufferPointer { bp in
                GroupedConv2D.depthwise3x3(g, xp.baseAddress!, weight: wp.baseAddress!, bias: bp.baseAddress, &fast)
                GroupedConv2D.reference(g, xp.baseAddress!, weight: wp.baseAddress!, bias: bp.baseAddress, &slow)
            }}}
            #expect(fast.map(\.bitPattern) == slow.map(\.bitPattern), "\(g)")
            // The C kernel on every path: the same values (a zero sum's sign aside, which == ignores).
            let packed = PackedDepthwise3x3(geometry: g, weight: weight, bias: bias)
            var scratch = [Float](repeating: .nan, count: packed.scratchFloats)
            for isa in KernelISA.supported {
                var kernel = [Float](repeating: .nan, count: g.outputCount)
                x.withUnsafeBufferPointer { packed.run($0.baseAddress!, &kernel, scratch: &scratch, isa: isa) }
                #expect(kernel == slow, "\(isa) \(g)")
            }
        }
    }

    /// `bk_clip` (the compiled clip, in place or not) gives ClipLayer.value's bits on every path:
    /// NaN, ±0, ±∞ and values on both bounds, in whole vectors and in the tail.
    @Test func clipKernelIsItsScalarTwin() throws {
        let specials: [Float] = [.nan, -0.0, 0, .infinity, -.infinity, 6, -1, 0.5, 7, -.greatestFiniteMagnitude, .leastNonzeroMagnitude]
        let x = (0..<37).map { specials[$0 % specials.count] * ($0 % 3 == 2 ? -1 : 1) }
        for (low, high) in [(Float(0), Float(6)), (-1, 1), (-.infinity, 0), (0, .infinity)] {
            let layer = ClipLayer(inputShape: [37])
            layer.low = low; layer.high = high
            let want = x.map { layer.value($0).bitPattern }
            for isa in KernelISA.supported {
                let kernel = layer.kernel(isa: isa)
                var y = [Float](repeating: 1, count: 37)
                x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { kernel(37, xp.baseAddress!, $0.baseAddress!) } }
                #expect(y.map(\.bitPattern) == want, "clip(\(low), \(high)) on \(isa)")
                var inPlace = x
                inPlace.withUnsafeMutableBufferPointer { kernel(37, UnsafePointer($0.baseAddress!), $0.baseAddress!) }
                #expect(inPlace.map(\.bitPattern) == want, "clip(\(low), \(high)) in place on \(isa)")
            }
        }
    }

    /// The activations at their edges, as ONNX defines them.
    @Test func activationValues() throws {
        let spec = ModelSpec(name: "act", input: [1, 1, 6], classes: 6, stages: [
            StageSpec(name: "a", trunk: [], exit: ExitSpec(name: "e", layers: [.flatten])),
        ])
        _ = spec
        let x: [Float] = [-10, -3, -0.5, 0, 0.5, 10]
        func run(_ layer: LayerSpec) throws -> [Float] {
            let s = ModelSpec(name: "act", input: [1, 1, 6], classes: 6, stages: [
                StageSpec(name: "a", trunk: [layer], exit: ExitSpec(name: "e", layers: [.flatten])),
            ])
            let n = try Network(spec: s)
            return n.trunk(0, Tensor(shape: [1, 1, 1, 6], data: x)).data
        }
        #expect(try run(.clip(min: 0, max: 6)) == [0, 0, 0, 0, 0.5, 6])
        #expect(try run(LayerSpec(op: "leakyrelu", alpha: 0.1)) == [-1, -0.3, -0.05, 0, 0.5, 10])
        #expect(try run(LayerSpec(op: "hardsigmoid")) == [0, 0, 0.4, 0.5, 0.6, 1])
        let s = try run(LayerSpec(op: "sigmoid"))
        #expect(abs(s[0] - 4.5398e-5) < 1e-8 && s[3] == 0.5 && abs(s[5] - 0.9999546) < 1e-6)
    }

    /// Each new layer alone after a convolution, for the gradient check.
    static let gradientCases: [(String, LayerSpec)] = [
        ("depthwise", .groupedConv("dw", out: 4, kernel: 3, groups: 4, pad: 1)),
        ("grouped-dilated", .groupedConv("g", out: 4, kernel: 3, groups: 2, stride: 2, pad: 2, dilation: 2)),
        ("sigmoid", LayerSpec(op: "sigmoid")),
        ("globalavgpool", .globalAvgPool),
        ("mul", .branches("se", merge: "mul", [[], [.globalAvgPool, .conv("se1", out: 4, kernel: 1), LayerSpec(op: "sigmoid")]])),
        ("mul-full", .branches("m", merge: "mul", [[.conv("m1", out: 4, kernel: 1)], [.conv("m2", out: 4, kernel: 3, pad: 1)]])),
        ("concat", .branches("cat", merge: "concat", [[.conv("c1", out: 2, kernel: 1)], [], [.conv("c2", out: 3, kernel: 3, pad: 1)]])),
        ("add3", .branches("sum", merge: "add", [[], [.conv("p", out: 4, kernel: 1)], [LayerSpec(op: "sigmoid")]])),
    ]

    /// The backward pass of each new layer against finite differences of the joint loss. The
    /// absolute allowance is the float32 forward pass's rounding in the difference quotient (a
    /// residual block with an identity shortcut needs as much); the piecewise-linear activations
    /// (`clip`, `leakyrelu`, `hardsigmoid`), whose kinks finite differences straddle, are checked
    /// value by value in ``piecewiseLinearGradients()``.
    @Test(arguments: gradientCases.indices)
    func gradientCheck(_ index: Int) throws {
        let (name, layer) = Self.gradientCases[index]
        let spec = ModelSpec(name: name, input: [3, 5, 5], classes: 3, stages: [
            StageSpec(name: "a", trunk: [.conv("c", out: 4, kernel: 3, pad: 1), layer],
                      exit: ExitSpec(name: "e", layers: [.flatten, .linear("fc", out: 3)])),
        ])
        // Three branches add three roundings: a larger allowance for the three-way sum.
        let absolute = name == "add3" ? 3e-4 : 1e-4
        let (mismatches, _, worst) = try GradientCheckTests.check(spec, seed: 23, weights: [1], absolute: absolute)
        #expect(mismatches.isEmpty, "\(name): \(mismatches.prefix(5))")
        #expect(worst < 2e-2, "\(name)")
    }

    /// dx = dy · slope, away from the kinks, for the piecewise-linear activations.
    @Test func piecewiseLinearGradients() throws {
        let x: [Float] = [-2.5, -0.7, -0.1, 0.2, 0.35, 0.9, 3]
        let dy: [Float] = [1, -2, 0.5, 3, -1, 2, 0.25]
        let cases: [(LayerSpec, [Float])] = [
            (.clip(min: -0.3, max: 0.4), [0, 0, 1, 1, 1, 0, 0]),
            (LayerSpec(op: "leakyrelu", alpha: 0.1), [0.1, 0.1, 0.1, 1, 1, 1, 1]),
            (LayerSpec(op: "hardsigmoid", alpha: 0.5, beta: 0.5), [0, 0.5, 0.5, 0.5, 0.5, 0.5, 0]),
        ]
        for (layer, slopes) in cases {
            let s = ModelSpec(name: "pl", input: [1, 1, 7], classes: 7, stages: [
                StageSpec(name: "a", trunk: [layer], exit: ExitSpec(name: "e", layers: [.flatten])),
            ])
            let l = try Network(spec: s).stages[0].trunk[0]
            _ = l.forward(Tensor(shape: [1, 1, 1, 7], data: x), training: true)
            let dx = l.backward(Tensor(shape: [1, 1, 1, 7], data: dy), needInputGradient: true)!
            #expect(dx.data == zip(dy, slopes).map(*), "\(layer.op)")
        }
    }

    /// Bad descriptions name the key.
    @Test func refusesBadDescriptions() {
        func error(_ layer: LayerSpec) -> String {
            let s = ModelSpec(name: "bad", input: [4, 7, 7], classes: 3, stages: [
                StageSpec(name: "a", trunk: [layer], exit: ExitSpec(name: "e", layers: [.flatten, .linear("fc", out: 3)])),
            ])
            do { _ = try Network(spec: s); return "" } catch { return "\(error)" }
        }
        #expect(error(.groupedConv("g", out: 6, kernel: 3, groups: 3)).contains("groups"))
        #expect(error(.clip(min: 2, max: 1)).contains("'min'"))
        #expect(error(LayerSpec(op: "branches", name: "b", merge: "max", branches: [[], []])).contains("unknown merge 'max'"))
        #expect(error(.branches("b", merge: "add", [[]])).contains("at least two branches"))
        #expect(error(.branches("b", merge: "add", [[], [.conv("c", out: 2, kernel: 1)]])).contains("one shape"))
        #expect(error(LayerSpec(op: "relu", groups: 2)).contains("'groups' belongs to 'conv'"))
    }

    /// A model with the new operators saves and loads.
    @Test func savesAndLoads() throws {
        let scratch = try ScratchDirectory()
        let network = try ModelFixture.randomNetwork(Self.spec, seed: 24)
        let model = try Model.save(network, to: scratch.path("imported"))
        #expect(model.spec == Self.spec)
        let input = ModelFixture.randomInput(Self.spec.input, count: 3, seed: 25)
        #expect(CompiledNetworkTests.referenceOutputs(model.network, input) == CompiledNetworkTests.referenceOutputs(network, input))
    }
}
