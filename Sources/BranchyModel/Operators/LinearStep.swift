import BranchyTensor
import CBranchyKernels

/// A fully connected layer compiled for inference: Wᵀ packed in column panels, ReLU fused.
struct LinearStep: CompiledStep {
    let inputCount: Int
    let outputCount: Int
    let isa: KernelISA
    let packedWeight: [Float]
    let bias: [Float]?
    let relu: Bool

    init(weight: Tensor, bias: Tensor?, relu: Bool, isa: KernelISA) {
        let o = weight.shape[0], k = weight.shape[1]
        outputCount = o
        inputCount = k
        self.isa = isa
        self.relu = relu
        var packed = [Float](repeating: 0, count: bk_pack_b_size(isa.rawValue, Int32(k), Int32(o)))
        weight.data.withUnsafeBufferPointer { w in
            packed.withUnsafeMutableBufferPointer { d in
                bk_pack_b(isa.rawValue, Int32(k), Int32(o), w.baseAddress!, 1, k, d.baseAddress!)
            }
        }
        packedWeight = packed
        // Padded to whole column panels, as the kernel reads it.
        self.bias = bias.map { $0.data + [Float](repeating: 0, count: (o + isa.nr - 1) / isa.nr * isa.nr - o) }
    }

    var scratchFloats: Int { bk_linear_scratch_size(isa.rawValue, Int32(isa.mr), Int32(inputCount)) }

    /// n samples: x (n × in) → y (n × out).
    func run(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        packedWeight.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointerOrNil { b in
                bk_linear(isa.rawValue, Int32(n), Int32(inputCount), Int32(outputCount), x, inputCount, w.baseAddress!,
                          b, y, outputCount, relu ? 1 : 0, scratch)
            }
        }
    }

    var perSample: Bool { false }

    func runGroup(_ n: Int, _ x: UnsafePointer<Float>, _ inCount: Int, _ y: UnsafeMutablePointer<Float>, _ run: GroupRun) {
        self.run(n, x, y, scratch: run.workspace.buffer(2))
    }
}
