import BranchyModel
import Foundation
import SwiftProtobuf

/// Reads an ONNX file (protobuf, through SwiftProtobuf and the ONNX schema) into a ``GraphIR``:
/// checks the opset, the one image input with a batch dimension, and every tensor's data,
/// reading external data files next to the model.
enum ONNXReader {
    /// Opsets of the default domain the importer reads.
    static let opsets = 13...20
    /// The largest ONNX file read (external data counted separately).
    static let maxFileBytes = 2 << 30

    static func read(_ url: URL) throws -> GraphIR {
        let file = url.path
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? nil
        guard let size else { throw ImportError(file: file, reason: "cannot read the file (missing or not a regular file)") }
        guard size <= maxFileBytes else { throw ImportError(file: file, reason: "the file is \(size) bytes, more than the limit of \(maxFileBytes)") }
        guard let data = FileManager.default.contents(atPath: file) else { throw ImportError(file: file, reason: "cannot read the file") }
        let model: Onnx_ModelProto
        do {
            model = try Onnx_ModelProto(serializedBytes: data)
        } catch {
            throw ImportError(file: file, reason: "not a readable ONNX model (protobuf: \(error)); truncated or not ONNX?")
        }
        guard model.hasGraph else { throw ImportError(file: file, reason: "the model has no graph") }
        let defaults = model.opsetImport.filter { $0.domain.isEmpty || $0.domain == "ai.onnx" }
        guard let opset = defaults.map({ Int($0.version) }).max() else {
            throw ImportError(file: file, reason: "the model imports no opset of the default ONNX domain")
        }
        guard opsets.contains(opset) else {
            throw ImportError(file: file, reason: "opset \(opset) is not supported (\(opsets.lowerBound) to \(opsets.upperBound))")
        }
        let graph = model.graph
        let directory = url.deletingLastPathComponent()
        var initializers: [String: Constant] = [:]
        for t in graph.initializer {
            initializers[t.name] = try constant(t, file: file, location: "initializer '\(t.name)'", directory: directory)
        }
        let inputs = graph.input.filter { initializers[$0.name] == nil }
        guard inputs.count == 1, let input = inputs.first else {
            throw ImportError(file: file, reason: "the graph needs exactly one input (the image batch), found \(inputs.map(\.name))")
        }
        let shape = try inputShape(input, file: file)
        guard !graph.output.isEmpty else { throw ImportError(file: file, reason: "the graph has no outputs (the exits' logits)") }
        var nodes: [GraphIR.Node] = []
        for (i, n) in graph.node.enumerated() {
            let name = n.name.isEmpty ? "#\(i)" : n.name
            var attributes: [String: GraphIR.Attribute] = [:]
            for a in n.attribute {
                attributes[a.name] = try attribute(a, file: file, location: "node '\(name)' (\(n.opType), opset \(opset)) attribute '\(a.name)'",
                                                   directory: directory)
            }
            nodes.append(GraphIR.Node(name: name, opType: n.opType, domain: n.domain, inputs: n.input, outputs: n.output, attributes: attributes))
        }
        let producer = [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
        return GraphIR(nodes: nodes, initializers: initializers, input: (input.name, shape), outputs: graph.output.map(\.name),
                       opset: opset, producer: producer)
    }

    /// The input's shape after the batch dimension: (N, C, H, W) with C, H, W known.
    private static func inputShape(_ input: Onnx_ValueInfoProto, file: String) throws -> [Int] {
        let where_ = "graph input '\(input.name)'"
        guard input.type.tensorType.hasShape else { throw ImportError(file: file, location: where_, reason: "has no shape") }
        guard input.type.tensorType.elemType == 1 else {
            throw ImportError(file: file, location: where_, reason: "must be float32 (data type \(input.type.tensorType.elemType))")
        }
        let dims = input.type.tensorType.shape.dim
        guard dims.count == 4 else { throw ImportError(file: file, location: where_, reason: "must be (N, C, H, W), has \(dims.count) dimensions") }
        var shape: [Int] = []
        for d in dims.dropFirst() {
            guard case .dimValue(let v)? = d.value, v > 0, v <= Int64(ModelLimits.maxSize) else {
                throw ImportError(file: file, location: where_, reason: "C, H and W must be fixed positive sizes (only the batch may vary)")
            }
            shape.append(Int(v))
        }
        return shape
    }

    private static func attribute(_ a: Onnx_AttributeProto, file: String, location: String, directory: URL) throws -> GraphIR.Attribute {
        switch a.type {
        case .int: return .int(Int(clamping: a.i))
        case .float: return .float(a.f)
        case .string: return .string(String(decoding: a.s, as: UTF8.self))
        case .ints: return .ints(a.ints.map { Int(clamping: $0) })
        case .floats: return .floats(a.floats)
        case .tensor: return .tensor(try constant(a.t, file: file, location: location, directory: directory))
        default: return .other("\(a.type)")
        }
    }

    /// A tensor's values, from its typed fields, raw bytes or an external data file.
    static func constant(_ t: Onnx_TensorProto, file: String, location: String, directory: URL) throws -> Constant {
        func fail(_ reason: String) -> ImportError { ImportError(file: file, location: location, reason: reason) }
        var count = 1
        for d in t.dims {
            guard d >= 0 else { throw fail("negative dimension \(d)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(clamping: d))
            guard !overflow, product <= ModelLimits.maxTensorElements else {
                throw fail("dims \(t.dims) hold more than \(ModelLimits.maxTensorElements) elements")
            }
            count = product
        }
        let dims = t.dims.map { Int($0) }
        let width: Int
        switch t.dataType {
        case 1, 6: width = 4
        case 7, 11: width = 8
        default: throw fail("data type \(t.dataType) is not supported (float, double, int32 and int64 are)")
        }
        var raw: Data? = t.hasRawData ? t.rawData : nil
        if t.dataLocation == .external { raw = try external(t, bytes: count * width, directory: directory, fail: fail) }
        if let raw {
            guard raw.count == count * width else { throw fail("holds \(raw.count) bytes of data, \(count * width) expected for dims \(dims)") }
            return raw.withUnsafeBytes { b in
                switch t.dataType {
                case 1: return Constant(dims: dims, values: .floats((0..<count).map { Float(bitPattern: b.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self).littleEndian) }))
                case 11: return Constant(dims: dims, values: .floats((0..<count).map { Float(Double(bitPattern: b.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self).littleEndian)) }))
                case 6: return Constant(dims: dims, values: .ints((0..<count).map { .known(Int(Int32(bitPattern: b.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self).littleEndian))) }))
                default: return Constant(dims: dims, values: .ints((0..<count).map { .known(Int(Int64(bitPattern: b.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self).littleEndian))) }))
                }
            }
        }
        let values: Constant.Values
        switch t.dataType {
        case 1: values = .floats(t.floatData)
        case 11: values = .floats(t.doubleData.map(Float.init))
        case 6: values = .ints(t.int32Data.map { .known(Int($0)) })
        default: values = .ints(t.int64Data.map { .known(Int($0)) })
        }
        let found: Int
        switch values { case .floats(let f): found = f.count; case .ints(let i): found = i.count }
        guard found == count else { throw fail("holds \(found) values, \(count) expected for dims \(dims)") }
        return Constant(dims: dims, values: values)
    }

    /// The bytes of an external tensor: `location` (a file in the model's folder or below it),
    /// `offset` and `length`.
    private static func external(_ t: Onnx_TensorProto, bytes: Int, directory: URL, fail: (String) -> ImportError) throws -> Data {
        var entries: [String: String] = [:]
        for e in t.externalData { entries[e.key] = e.value }
        guard let location = entries["location"], !location.isEmpty else { throw fail("external data without a 'location'") }
        let parts = location.split(separator: "/")
        guard !location.hasPrefix("/"), !parts.contains(".."), !location.contains("\\") else {
            throw fail("external data location '\(location)' must be a file in the model's folder (no absolute path, no '..')")
        }
        let offset = Int(entries["offset"] ?? "0") ?? -1
        let length = entries["length"].map { Int($0) ?? -1 } ?? bytes
        guard offset >= 0, length == bytes else { throw fail("external data offset \(entries["offset"] ?? "") or length \(entries["length"] ?? "") is invalid (\(bytes) bytes expected)") }
        let url = directory.appendingPathComponent(location)
        guard let handle = try? FileHandle(forReadingFrom: url) else { throw fail("cannot open external data file '\(url.path)'") }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()).map(Int.init) ?? 0
        guard offset <= size - length else { throw fail("external data \(offset)..<\(offset + length) lies beyond the end of '\(location)' (\(size) bytes)") }
        try? handle.seek(toOffset: UInt64(offset))
        guard let data = try? handle.read(upToCount: length), data.count == length else { throw fail("cannot read external data from '\(location)'") }
        return data
    }
}
