import BranchyModel
import BranchyTensor

/// One operation on activations (values that depend on the image input), after constants are
/// folded and batch norms, biases and no-ops are absorbed: a Branchy layer with its tensors, or
/// the merge of several paths.
struct ActivationOp {
    enum Kind {
        /// A layer (its `name` set when emitted) and its tensors by suffix (`weight`, `bias`, …).
        case layer(LayerSpec, tensors: [(suffix: String, value: Tensor)])
        /// The sum, product or channel concatenation of the inputs.
        case merge(String)
    }

    /// The ONNX node it came from (for names and errors).
    var node: String
    var opType: String
    var kind: Kind
    /// Activation inputs (one for a layer, several for a merge).
    var inputs: [String]
    var output: String
    /// Shape of one output item.
    var shape: [Int]
    /// Multiply-adds per sample.
    var macs: Int
    /// ONNX nodes it stands for (folded ones included).
    var nodes: Int = 1

    var parameters: Int {
        guard case .layer(_, let tensors) = kind else { return 0 }
        return tensors.filter { !$0.suffix.hasPrefix("running") }.reduce(0) { $0 + $1.value.count }
    }
}
