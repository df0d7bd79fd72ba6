import BranchyTensor

/// An ONNX graph as the importer reads it, independent of the protobuf types: nodes in file
/// order, the constant tensors (initializers), the one image input and the outputs.
struct GraphIR {
    /// A node: its name (or a made-up `#index` when it has none), op type and domain, input and
    /// output tensor names (empty names: absent optional inputs) and attributes.
    struct Node {
        var name: String
        var opType: String
        var domain: String
        var inputs: [String]
        var outputs: [String]
        var attributes: [String: Attribute]
    }

    /// An attribute's value.
    enum Attribute {
        case int(Int)
        case float(Float)
        case string(String)
        case ints([Int])
        case floats([Float])
        case tensor(Constant)
        case other(String)
    }

    var nodes: [Node]
    var initializers: [String: Constant]
    /// The image input: its name and its shape after the batch dimension.
    var input: (name: String, shape: [Int])
    var outputs: [String]
    /// The default domain's opset.
    var opset: Int
    /// Who wrote the file (`producer_name producer_version`).
    var producer: String
}

/// A tensor known when importing (an initializer, a `Constant`, or folded from them): float
/// values, or integers some of which may stand for the batch size (a `Shape` of the input).
struct Constant {
    enum Values {
        case floats([Float])
        case ints([Dim])
    }

    /// An integer that is known, or the batch size.
    enum Dim: Equatable {
        case known(Int)
        case batch
    }

    var dims: [Int]
    var values: Values

    var count: Int { dims.reduce(1, *) }

    /// The values as floats (integers converted); nil when one is the batch size.
    var floats: [Float]? {
        switch values {
        case .floats(let f): return f
        case .ints(let d):
            var out: [Float] = []
            for v in d { guard case .known(let i) = v else { return nil }; out.append(Float(i)) }
            return out
        }
    }

    /// The values as known integers; nil when one is the batch size or a float is not whole.
    var ints: [Int]? {
        switch values {
        case .floats(let f):
            guard f.allSatisfy({ $0.isFinite && $0 == $0.rounded() && Swift.abs($0) < 1e15 }) else { return nil }
            return f.map { Int($0) }
        case .ints(let d):
            var out: [Int] = []
            for v in d { guard case .known(let i) = v else { return nil }; out.append(i) }
            return out
        }
    }

    /// The values as dims (floats converted when whole).
    var dimValues: [Dim]? {
        if case .ints(let d) = values { return d }
        return ints.map { $0.map(Dim.known) }
    }

    /// As a tensor (floats only).
    var tensor: Tensor? { floats.map { Tensor(shape: dims, data: $0) } }
}
