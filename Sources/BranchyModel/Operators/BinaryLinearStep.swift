import BranchyTensor
import CBranchyKernels

/// An XNOR-Net binary linear layer compiled for inference: weight signs packed to bits and α
/// computed once; each sample's signs are packed into the workspace scratch and multiplied
/// by XOR and popcount (`bk_xnor_linear`). Gives the same bits as the layer's forward pass.
struct BinaryLinearStep: CompiledStep {
    let inputCount: Int
    let outputCount: Int
    let isa: KernelISA
    let packedWeight: [UInt64]
    let alpha: [Float]
    let bias: [Float]?

    init(weight: Tensor, bias: Tensor?, isa: KernelISA) {
        outputCount = weight.shape[0]
        inputCount = weight.shape[1]
        self.isa = isa
        packedWeight = BinaryLinear.packWeight(weight)
        alpha = BinaryLinear.scales(weight: weight)
        self.bias = bias?.data
    }

    /// Floats of scratch for `n` samples' packed signs (two per 64-bit word).
    func scratchFloats(_ n: Int) -> Int { 2 * n * bk_sign_words(Int32(inputCount)) }

    /// n samples: x (n × in) → y (n × out). `scratch` holds scratchFloats(n) floats, 8-byte aligned.
    func run(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, scratch: UnsafeMutableRawPointer) {
        let bits = scratch.assumingMemoryBound(to: UInt64.self)
        packedWeight.withUnsafeBufferPointer { w in
            alpha.withUnsafeBufferPointer { a in
                bias.withUnsafeBufferPointerOrNil { b in
                    bk_xnor_linear(isa.rawValue, Int32(n), Int32(inputCount), Int32(outputCount), x, inputCount, w.baseAddress!,
                                   a.baseAddress!, b, y, outputCount, bits)
                }
            }
        }
    }

    var perSample: Bool { false }

    func runGroup(_ n: Int, _ x: UnsafePointer<Float>, _ inCount: Int, _ y: UnsafeMutablePointer<Float>, _ run: GroupRun) {
        self.run(n, x, y, scratch: UnsafeMutableRawPointer(run.workspace.buffer(2)))
    }
}
