import BranchyTensor
import Foundation

/// An ONNX graph being written: its nodes in order, its initializers (each name once), fresh
/// value names, and the model's tensors to draw weights from. The operators' ONNX forms are in
/// `ExportGraph+Operators.swift`.
struct ExportGraph {
    /// A node attribute.
    enum Attribute {
        case int(Int), ints([Int]), float(Float), string(String)
    }

    /// The model's tensors by name (`STAGE.trunk.NAME.weight`, …).
    let weights: [String: Tensor]
    /// Fold a batch norm that directly follows a plain convolution into it, as compiled inference does.
    let foldBatchNorm: Bool
    /// The stage being written, for errors.
    var stage = ""
    private(set) var nodes: [Onnx_NodeProto] = []
    private(set) var initializers: [Onnx_TensorProto] = []
    private var names = Set<String>()
    private var counter = 0

    init(weights: [String: Tensor], foldBatchNorm: Bool) {
        self.weights = weights
        self.foldBatchNorm = foldBatchNorm
    }

    /// A new value name after `base`: `base/7`.
    mutating func fresh(_ base: String) -> String {
        counter += 1
        return "\(base)/\(counter)"
    }

    /// The float32 initializer `name` of shape `dims`, added the first time the name is used.
    mutating func constant(_ name: String, _ values: [Float], dims: [Int]) -> String {
        if names.insert(name).inserted {
            initializers.append(Self.tensor(name, dims: dims, type: 1, raw: values.map(\.bitPattern.littleEndian)))
        }
        return name
    }

    /// The int64 initializer `name` of shape `dims`, added the first time the name is used.
    mutating func constant(_ name: String, int64 values: [Int], dims: [Int]) -> String {
        if names.insert(name).inserted {
            initializers.append(Self.tensor(name, dims: dims, type: 7, raw: values.map { Int64($0).littleEndian }))
        }
        return name
    }

    /// The model's tensor `name` (`layer` names the layer needing it, for the error).
    func weight(_ name: String, for layer: ExportLayer) throws -> Tensor {
        guard let t = weights[name] else {
            throw ExportError(stage: stage, location: layer.location, op: layer.spec.op, reason: "the model has no tensor '\(name)'")
        }
        return t
    }

    /// Appends one node; its output is `output`, or a fresh name after `base`. Returns the output.
    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], _ base: String, output: String? = nil,
                       _ attributes: [String: Attribute] = [:]) -> String {
        let out = output ?? fresh(base)
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = out
        n.input = inputs
        n.output = [out]
        n.attribute = attributes.sorted { $0.key < $1.key }.map { Self.attribute($0.key, $0.value) }
        nodes.append(n)
        return out
    }

    /// A one-element float32 initializer, shape [1] (a scalar as the script writes it).
    mutating func scalar(_ name: String, _ value: Float) -> String { constant(name, [value], dims: [1]) }

    /// Sign.value: +1 where x >= 0 (0 and -0 included), else -1 (NaN too), as
    /// Where(x >= 0, 1, -1); ONNX's Sign would give 0 for 0.
    mutating func sign(_ x: String, _ base: String, output: String? = nil) -> String {
        let one = scalar("sign.1", 1), minusOne = scalar("sign.-1", -1), zero = scalar("sign.0", 0)
        let nonnegative = node("GreaterOrEqual", [x, zero], base)
        return node("Where", [nonnegative, one, minusOne], base, output: output)
    }

    /// The model: this graph named `name`, float32 inputs and outputs of shape (N, shape…) with
    /// a dynamic batch dimension N, the default domain at ``ONNXExporter/opset``.
    func model(name: String, inputs: [(name: String, shape: [Int])], outputs: [(name: String, shape: [Int])],
               doc: String) -> Onnx_ModelProto {
        var g = Onnx_GraphProto()
        g.name = name
        g.docString = doc
        g.node = nodes
        g.initializer = initializers
        g.input = inputs.map { Self.valueInfo($0.name, $0.shape) }
        g.output = outputs.map { Self.valueInfo($0.name, $0.shape) }
        var m = Onnx_ModelProto()
        m.irVersion = Int64(ONNXExporter.irVersion)
        m.producerName = ONNXExporter.producer
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Int64(ONNXExporter.opset)
        m.opsetImport = [opset]
        m.graph = g
        return m
    }

    private static func tensor<T>(_ name: String, dims: [Int], type: Int32, raw: [T]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims.map(Int64.init)
        t.dataType = type
        t.rawData = raw.withUnsafeBytes { Data($0) }
        return t
    }

    private static func attribute(_ name: String, _ value: Attribute) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        switch value {
        case .int(let i): a.type = .int; a.i = Int64(i)
        case .ints(let i): a.type = .ints; a.ints = i.map(Int64.init)
        case .float(let f): a.type = .float; a.f = f
        case .string(let s): a.type = .string; a.s = Data(s.utf8)
        }
        return a
    }

    private static func valueInfo(_ name: String, _ shape: [Int]) -> Onnx_ValueInfoProto {
        var t = Onnx_TypeProto.Tensor()
        t.elemType = 1
        var dims = Onnx_TensorShapeProto()
        var batch = Onnx_TensorShapeProto.Dimension()
        batch.dimParam = "N"
        dims.dim = [batch] + shape.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            dim.dimValue = Int64(d)
            return dim
        }
        t.shape = dims
        var v = Onnx_ValueInfoProto()
        v.name = name
        v.type.tensorType = t
        return v
    }
}
