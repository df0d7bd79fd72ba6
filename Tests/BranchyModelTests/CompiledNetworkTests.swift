import BranchyTensor
import Testing
@testable import BranchyModel

/// The compiled inference path against the layer-by-layer reference, on every kernel path.
@Suite struct CompiledNetworkTests {
    /// Specs that exercise every compiled step and the fallback: direct and im2col convolutions,
    /// fused ReLU and pooling in both orders, pooling with padding and ceil mode, linear layers
    /// with and without ReLU, batch normalisation (folded into a convolution, or a per-sample affine
    /// step), average pooling, residual blocks (identity, projection and zero-padded shortcuts,
    /// nested, with and without a fused ReLU), local response normalisation, and Winograd
    /// convolutions (odd and even maps, one tile or many, pooled or not, in residual blocks).
    static var specs: [ModelSpec] {
        [ModelFixture.tiny, ModelFixture.tinyBatchNorm, ModelFixture.residualIdentity(), ModelFixture.residualProjection(),
         ModelSpec(name: "mixed", input: [1, 13, 11], classes: 7, stages: [
            StageSpec(name: "a", trunk: [
                .conv("c1", out: 13, kernel: 3, pad: 1), .relu, .maxPool(2, stride: 2, ceil: true),
            ], exit: ExitSpec(name: "exit-a", layers: [.flatten, .linear("fc", out: 7)])),
            StageSpec(name: "b", trunk: [
                LayerSpec(op: "conv", name: "c2", out: 20, kernel: 3, stride: 2, pad: 1), LayerSpec(op: "maxpool", kernel: 3, stride: 1, pad: 1),
                .relu, .conv("c3", out: 5, kernel: 1), .relu,
            ], exit: ExitSpec(name: "exit-b", layers: [.flatten, .linear("fc1", out: 40), .relu, .linear("fc2", out: 7)])),
            StageSpec(name: "c", trunk: [.relu, .maxPool(2, ceil: true), .conv("c4", out: 3, kernel: 2)],
                      exit: ExitSpec(name: "exit-c", layers: [.flatten, .linear("fc", out: 7)])),
         ]), winogradSpec]
    }

    /// Convolutions that run as Winograd F(2×2, 3×3): on a 7×9 map (odd, so its map is wider
    /// than the output), in a residual block on 4×5, pooled after, and on a 2×3 map (one row of tiles);
    /// 16 to 33 channels, so the transforms' vector and one-at-a-time channel paths both run.
    static let winogradSpec = ModelSpec(name: "winograd", input: [1, 7, 9], classes: 5, stages: [
        StageSpec(name: "a", trunk: [
            .conv("c1", out: 16, kernel: 3, pad: 1), .relu, .conv("c2", out: 20, kernel: 3, pad: 1), .relu,
            .maxPool(2, ceil: true),
        ], exit: ExitSpec(name: "exit-a", layers: [.flatten, .linear("fc", out: 5)])),
        StageSpec(name: "b", trunk: [
            .residual("b1", [.conv("b1.c1", out: 20, kernel: 3, pad: 1), .relu, .conv("b1.c2", out: 20, kernel: 3, pad: 1)]), .relu,
            .conv("c3", out: 33, kernel: 3, pad: 1), .maxPool(2, ceil: true),
        ], exit: ExitSpec(name: "exit-b", layers: [.flatten, .linear("fc", out: 5)])),
        StageSpec(name: "c", trunk: [.conv("c4", out: 16, kernel: 3, pad: 1), .relu],
                  exit: ExitSpec(name: "exit-c", layers: [.flatten, .linear("fc", out: 5)])),
    ])

    /// A network compiled for some of its stages runs them exactly as the whole network compiled
    /// does, compiles nothing of the others, and needs a workspace no larger.
    @Test func compilingSomeStagesOnlyGivesTheSameBits() throws {
        let network = try ModelFixture.randomNetwork(Self.winogradSpec, seed: 73)
        let whole = CompiledNetwork(network), middle = CompiledNetwork(network, stages: [1])
        #expect(middle.stages.map(\.isCompiled) == [false, true, false])
        #expect(middle.stages[0].trunk.isEmpty && middle.stages[2].exit.isEmpty)
        #expect(middle.makeWorkspace().bytes <= whole.makeWorkspace().bytes)
        let count = 5
        let input = (0..<count * whole.stages[1].inputCount).map { Float(($0 * 37) % 101) / 50 - 1 }
        let a = whole.run(stage: 1, count: count, input: input, workspace: whole.makeWorkspace())
        let b = middle.run(stage: 1, count: count, input: input, workspace: middle.makeWorkspace())
        #expect(a.features == b.features && a.logits == b.logits)
    }

    /// The fixture does run Winograd convolutions (five of its six), and the network compiled
    /// without them agrees with the one compiled with them within float rounding.
    @Test(arguments: KernelISA.supported)
    func winogradMatchesDirectConvolution(isa: KernelISA) throws {
        let network = try ModelFixture.randomNetwork(Self.winogradSpec, seed: 71)
        let fast = CompiledNetwork(network, isa: isa), direct = CompiledNetwork(network, isa: isa, winograd: false)
        #expect(Self.winogradSteps(fast) == 5 && Self.winogradSteps(direct) == 0)
        let input = ModelFixture.randomInput(Self.winogradSpec.input, count: 14, seed: 8)
        let a = Self.compiledOutputs(fast, input, perSample: false), b = Self.compiledOutputs(direct, input, perSample: false)
        for i in network.stages.indices {
            let scale = max(1, b.features[i].map(abs).max() ?? 1)
            #expect(maxDifference(a.features[i], b.features[i]) <= 2e-5 * scale, "stage \(i) on \(isa)")
        }
    }

    /// Convolution steps compiled as Winograd, residual blocks included.
    static func winogradSteps(_ net: CompiledNetwork) -> Int {
        func count(_ steps: [any CompiledStep]) -> Int {
            steps.reduce(0) { n, step in
                switch step {
                case let c as ConvStep:
                    if case .winograd = c.form { n + 1 } else { n }
                case let r as ResidualStep: n + count(r.body) + count(r.shortcut)
                default: n
                }
            }
        }
        return net.stages.reduce(0) { $0 + count($1.trunk) }
    }


    /// Runs every stage on `input`, each stage on the features of the one before.
    static func compiledOutputs(_ net: CompiledNetwork, _ input: Tensor, perSample: Bool) -> Outcomes {
        let n = input.batch
        var out = Outcomes(features: [], logits: [])
        let ws = net.makeWorkspace()
        var x = input.data
        for (i, stage) in net.stages.enumerated() {
            var f = [Float](repeating: .nan, count: n * stage.featureCount)
            var l = [Float](repeating: .nan, count: n * net.classes)
            x.withUnsafeBufferPointer { xp in f.withUnsafeMutableBufferPointer { fp in l.withUnsafeMutableBufferPointer { lp in
                if perSample {
                    for s in 0..<n {
                        net.run(stage: i, count: 1, input: xp.baseAddress! + s * stage.inputCount, features: fp.baseAddress! + s * stage.featureCount,
                                logits: lp.baseAddress! + s * net.classes, workspace: ws)
                    }
                } else {
                    net.run(stage: i, count: n, input: xp.baseAddress!, features: fp.baseAddress!, logits: lp.baseAddress!, workspace: ws)
                }
            } } }
            out.features.append(f); out.logits.append(l)
            x = f
        }
        return out
    }

    struct Outcomes: Equatable { var features: [[Float]]; var logits: [[Float]] }

    /// The layer-by-layer reference: every stage on `input`, each on the features of the one before.
    static func referenceOutputs(_ network: Network, _ input: Tensor) -> Outcomes {
        var out = Outcomes(features: [], logits: [])
        var x = input
        for i in network.stages.indices {
            x = network.trunk(i, x)
            out.features.append(x.data)
            out.logits.append(network.exitLogits(i, x).data)
        }
        return out
    }

    @Test(arguments: KernelISA.supported)
    func matchesLayerByLayerReference(isa: KernelISA) throws {
        for (index, spec) in Self.specs.enumerated() {
            let network = try ModelFixture.randomNetwork(spec, seed: 40 + UInt64(index))
            let net = CompiledNetwork(network, isa: isa)
            let input = ModelFixture.randomInput(spec.input, count: 29, seed: 9)
            let got = Self.compiledOutputs(net, input, perSample: false)
            let want = Self.referenceOutputs(network, input)
            for i in network.stages.indices {
                let scale = max(1, want.features[i].map(abs).max() ?? 1)
                #expect(maxDifference(got.features[i], want.features[i]) <= 2e-5 * scale, "\(spec.name) stage \(i) features on \(isa)")
                #expect(maxDifference(got.logits[i], want.logits[i]) <= 2e-4 * max(1, want.logits[i].map(abs).max() ?? 1),
                        "\(spec.name) stage \(i) logits on \(isa)")
            }
        }
    }

    /// A sample's result is the same alone or in a batch, at any position.
    @Test(arguments: KernelISA.supported)
    func resultsDoNotDependOnTheBatch(isa: KernelISA) throws {
        for (index, spec) in Self.specs.enumerated() {
            let network = try ModelFixture.randomNetwork(spec, seed: 60 + UInt64(index))
            let net = CompiledNetwork(network, isa: isa)
            let input = ModelFixture.randomInput(spec.input, count: 31, seed: 3)
            #expect(Self.compiledOutputs(net, input, perSample: false) == Self.compiledOutputs(net, input, perSample: true),
                    "\(spec.name) on \(isa)")
        }
    }

    @Test(.enabled(if: KernelISA.avx2.isSupported && KernelISA.avx512.isSupported, "needs a CPU with AVX-512"))
    func fusedPathsAgreeBitForBit() throws {
        for (index, spec) in Self.specs.enumerated() {
            let network = try ModelFixture.randomNetwork(spec, seed: 80 + UInt64(index))
            let input = ModelFixture.randomInput(spec.input, count: 17, seed: 4)
            #expect(Self.compiledOutputs(CompiledNetwork(network, isa: .avx2), input, perSample: false)
                    == Self.compiledOutputs(CompiledNetwork(network, isa: .avx512), input, perSample: false), "\(spec.name)")
        }
    }

    /// Folding a batch norm into the convolution before it changes the arithmetic, not the
    /// function: folded and unfolded inference agree within float rounding, and the folded
    /// network has no affine step left after a convolution.
    @Test(arguments: KernelISA.supported)
    func foldedBatchNormMatchesUnfolded(isa: KernelISA) throws {
        for (index, spec) in [ModelFixture.tinyBatchNorm, ModelFixture.residualIdentity(), ModelFixture.residualProjection()].enumerated() {
            let network = try ModelFixture.randomNetwork(spec, seed: 90 + UInt64(index))
            let folded = CompiledNetwork(network, isa: isa)
            let unfolded = CompiledNetwork(network, isa: isa, foldBatchNorm: false)
            #expect(folded.foldsBatchNorm && !unfolded.foldsBatchNorm)
            #expect(Self.affineSteps(folded) < Self.affineSteps(unfolded), "\(spec.name)")
            let input = ModelFixture.randomInput(spec.input, count: 13, seed: 7)
            let a = Self.compiledOutputs(folded, input, perSample: false), b = Self.compiledOutputs(unfolded, input, perSample: false)
            for i in network.stages.indices {
                let scale = max(1, b.features[i].map(abs).max() ?? 1)
                #expect(maxDifference(a.features[i], b.features[i]) <= 2e-5 * scale, "\(spec.name) stage \(i) on \(isa)")
                #expect(maxDifference(a.logits[i], b.logits[i]) <= 2e-4 * max(1, b.logits[i].map(abs).max() ?? 1),
                        "\(spec.name) stage \(i) logits on \(isa)")
            }
        }
        // b-lenet3-bin has no batch norm right after a convolution: nothing changes for it.
        let bin = try Network(spec: Architectures.bLeNet3Bin)
        #expect(Self.affineSteps(CompiledNetwork(bin)) == Self.affineSteps(CompiledNetwork(bin, foldBatchNorm: false)))
    }

    /// Affine (batch norm) steps anywhere in the compiled network, residual blocks included.
    static func affineSteps(_ net: CompiledNetwork) -> Int {
        func count(_ steps: [any CompiledStep]) -> Int {
            steps.reduce(0) { n, step in
                switch step {
                case is AffineStep: n + 1
                case let r as ResidualStep: n + count(r.body) + count(r.shortcut)
                default: n
                }
            }
        }
        return net.stages.reduce(0) { $0 + count($1.trunk) + count($1.exit) }
    }

    @Test func summaryMatchesSoftmaxReference() {
        let logits = ModelFixture.randomInput([10], count: 50, seed: 5)
        let reference = ExitOutput.from(logits: Tensor(shape: [50, 10], data: logits.data.map { $0 * 8 }))
        let scaled = logits.data.map { $0 * 8 }
        scaled.withUnsafeBufferPointer { p in
            for s in 0..<50 { #expect(ExitOutput.summarize(p.baseAddress! + s * 10, classes: 10) == reference[s]) }
        }
    }
}

/// The largest absolute difference between two equally long arrays.
func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "sizes differ: \(a.count) vs \(b.count)")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
