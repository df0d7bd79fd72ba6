import BranchyModel
import BranchyTensor
import Foundation

/// Imports an early-exit network from ONNX: the graph's outputs are the exits' logits; stage k
/// ends at exit k's branch point (the last tensor its head shares with the deeper exits),
/// which is what stage k forwards upward.
public enum ONNXImporter {
    /// What an import gives: the model description, its tensors and the plan of its stages.
    public struct Result {
        public var spec: ModelSpec
        /// Every tensor the description needs, by name.
        public var tensors: [String: Tensor]
        public var stages: [StagePlan]
        /// The opset and producer of the file.
        public var opset: Int
        public var producer: String
        /// The stages whose exits were added (`addExits`), by index, with their input shapes.
        public var addedExits: [(stage: Int, input: [Int])] = []
    }

    /// One stage as the plan prints it.
    public struct StagePlan: Sendable {
        public var name: String
        public var exit: String
        /// ONNX nodes in the stage's trunk and exit (absorbed ones included).
        public var nodes: Int
        public var multiplyAdds: Int
        public var parameters: Int
        /// The tensor the stage forwards (its trunk's output), and its shape per sample.
        public var forwarded: String
        public var forwardedShape: [Int]
    }

    /// Imports `url`. `exits` names the graph outputs in order (default: all, by depth);
    /// `split` names the forwarded tensors (default: the branch points). `addExits` names
    /// tensors of a classifier (a graph with one output) at which new exits are attached, each
    /// with the head ``ExitHead/layers(input:classes:)`` describes, its tensors left out of
    /// ``Result/tensors`` (``Result/addedExits`` names them) for training.
    public static func importModel(_ url: URL, exits: [String]? = nil, split: [String]? = nil, name: String? = nil,
                                   addExits: [String]? = nil) throws -> Result {
        let file = url.path
        let graph = try ONNXReader.read(url)
        var lowering = Lowering(graph: graph, file: file)
        try lowering.run()
        let ops = lowering.ops
        let source = graph.input.name
        let decomposition = Decomposition(ops: ops, producer: lowering.producer, file: file)

        // Exits: the chosen outputs, by depth unless named.
        let outputs = graph.outputs.map(lowering.resolve)
        var chosen: [(name: String, tensor: String)]
        if let exits {
            chosen = try exits.map { e in
                guard let i = graph.outputs.firstIndex(of: e) else {
                    throw ImportError(file: file, location: "--exits", reason: "'\(e)' is not a graph output (outputs: \(graph.outputs.joined(separator: ", ")))")
                }
                return (e, outputs[i])
            }
        } else {
            // By the ops an exit shares with the other exits (its trunk), then by all its ops.
            chosen = zip(graph.outputs, outputs).map { ($0, $1) }
            let ancestors = chosen.map { decomposition.ancestors(of: $0.tensor) }
            let keys = ancestors.indices.map { i in
                (ancestors.indices.filter { $0 != i }.reduce(into: Set<Int>()) { $0.formUnion(ancestors[$1].intersection(ancestors[i])) }.count,
                 ancestors[i].count)
            }
            chosen = chosen.indices.sorted { keys[$0] < keys[$1] || keys[$0] == keys[$1] && $0 < $1 }.map { chosen[$0] }
        }
        for e in chosen {
            guard let shape = lowering.shapes[e.tensor], lowering.producer[e.tensor] != nil else {
                throw ImportError(file: file, location: "graph output '\(e.name)'", reason: "does not depend on the image input")
            }
            guard shape.count == 1 else {
                throw ImportError(file: file, location: "graph output '\(e.name)'", reason: "must be logits of shape (N, classes), got (N, \(shape))")
            }
        }
        let classes = lowering.shapes[chosen[0].tensor]![0]
        if let odd = chosen.first(where: { lowering.shapes[$0.tensor]! != [classes] }) {
            throw ImportError(file: file, location: "graph output '\(odd.name)'",
                              reason: "has \(lowering.shapes[odd.tensor]![0]) logits, the first exit \(classes): every exit must predict the same classes")
        }

        // Branch points: the deepest tensor on exit k's dominator chain that every deeper exit's chain holds.
        var points: [String] = []
        var added = Set<Int>()
        if let addExits {
            guard chosen.count == 1 else {
                throw ImportError(file: file, location: "--add-exit", reason: "exits are added to a classifier with one output; this graph has \(chosen.count) (use --exits to pick one)")
            }
            guard split == nil else { throw ImportError(file: file, location: "--add-exit", reason: "give --add-exit or --split, not both") }
            for (k, t) in addExits.enumerated() {
                let resolved = lowering.resolve(t)
                guard lowering.shapes[resolved] != nil, lowering.producer[resolved] != nil else {
                    throw ImportError(file: file, location: "--add-exit", reason: "'\(t)' is not a tensor computed from the image input")
                }
                points.append(resolved)
                added.insert(k)
            }
            chosen = addExits.indices.map { (name: "exit\($0 + 1)", tensor: "") } + chosen
        } else if let split {
            guard split.count == chosen.count - 1 else {
                throw ImportError(file: file, location: "--split", reason: "give \(chosen.count - 1) tensors (one per exit but the last), got \(split.count)")
            }
            for s in split {
                let t = lowering.resolve(s)
                guard lowering.shapes[t] != nil else {
                    throw ImportError(file: file, location: "--split", reason: "'\(s)' is not a tensor computed from the image input")
                }
                points.append(t)
            }
        } else {
            let chains = try chosen.map { try decomposition.dominators(of: $0.tensor, from: source) }
            for k in 0..<(chosen.count - 1) {
                let deeper = chains[(k + 1)...].map(Set.init)
                points.append(chains[k].first { t in deeper.allSatisfy { $0.contains(t) } }!)
            }
        }

        // Stages: the trunk from the previous point to this one, then the exit head.
        var builder = SpecBuilder(ops: ops)
        var stageSpecs: [StageSpec] = []
        var plans: [StagePlan] = []
        let stageNames = chosen.count == 3 ? ["device", "edge", "cloud"] : chosen.count == 2 ? ["device", "cloud"]
            : (1...chosen.count).map { "stage\($0)" }
        var previous = source
        for (k, exit) in chosen.enumerated() {
            let last = k == chosen.count - 1
            let trunkItems: [Decomposition.Item], headItems: [Decomposition.Item]
            if last {
                var all = try decomposition.chain(from: previous, to: exit.tensor)
                headItems = all.isEmpty ? [] : [all.removeLast()]
                trunkItems = all
            } else {
                let point = points[k]
                guard try decomposition.dominators(of: point, from: source).contains(previous) else {
                    throw ImportError(file: file, location: added.contains(k) ? "--add-exit" : "graph output '\(exit.name)'",
                                      reason: "the branch point '\(point)' comes before the previous stage's; give them in depth order")
                }
                trunkItems = try decomposition.chain(from: previous, to: point)
                headItems = added.contains(k) ? [] : try decomposition.chain(from: point, to: exit.tensor)
            }
            if added.contains(k) {
                let stage = stageNames[k], shape = lowering.shapes[points[k]]!
                let trunk = builder.layers(trunkItems, prefix: "\(stage).trunk")
                let head = ExitHead.layers(input: shape, classes: classes)
                stageSpecs.append(StageSpec(name: stage, trunk: trunk, exit: ExitSpec(name: exit.name, layers: head)))
                let indices = Decomposition.opIndices(trunkItems)
                let cost = ExitHead.cost(input: shape, classes: classes)
                plans.append(StagePlan(name: stage, exit: exit.name + " (added)", nodes: indices.reduce(0) { $0 + ops[$1].nodes },
                                       multiplyAdds: indices.reduce(0) { $0 + ops[$1].macs } + cost.multiplyAdds,
                                       parameters: indices.reduce(0) { $0 + ops[$1].parameters } + cost.parameters,
                                       forwarded: points[k], forwardedShape: shape))
                previous = points[k]
                continue
            }
            guard !headItems.isEmpty else {
                throw ImportError(file: file, location: "graph output '\(exit.name)'", reason: "the exit has no layers of its own after its branch point")
            }
            let stage = stageNames[k]
            let trunk = builder.layers(trunkItems, prefix: "\(stage).trunk")
            let head = builder.layers(headItems, prefix: "\(stage).exit")
            stageSpecs.append(StageSpec(name: stage, trunk: trunk, exit: ExitSpec(name: SpecBuilder.sanitize(exit.name), layers: head)))
            let indices = Decomposition.opIndices(trunkItems + headItems)
            let forwarded = last ? (trunkItems.isEmpty ? previous : lowering.resolve(ops[Decomposition.opIndices([trunkItems.last!]).first!].output))
                : points[k]
            plans.append(StagePlan(name: stage, exit: exit.name, nodes: indices.reduce(0) { $0 + ops[$1].nodes },
                                   multiplyAdds: indices.reduce(0) { $0 + ops[$1].macs },
                                   parameters: indices.reduce(0) { $0 + ops[$1].parameters },
                                   forwarded: forwarded, forwardedShape: lowering.shapes[forwarded] ?? graph.input.shape))
            if !last { previous = points[k] }
        }
        let modelName = name ?? url.deletingPathExtension().lastPathComponent
        let spec = ModelSpec(name: modelName, input: graph.input.shape, classes: classes, stages: stageSpecs,
                             defaults: stageSpecs.count > 1 ? .init(thresholds: Array(repeating: 0.5, count: stageSpecs.count - 1), codec: "int8") : nil)
        do {
            _ = try Network(spec: spec, file: file)
        } catch let e as ModelError {
            throw ImportError(file: file, reason: "the imported description does not check: \(e)")
        }
        var result = Result(spec: spec, tensors: builder.tensors, stages: plans, opset: graph.opset, producer: graph.producer)
        result.addedExits = added.sorted().map { ($0, lowering.shapes[points[$0]]!) }
        return result
    }

    /// Writes an import as a model directory (model.json, weights.safetensors) and returns the
    /// loaded model; `directory` must not exist yet. Nothing is left behind on failure.
    @discardableResult
    public static func write(_ result: Result, to directory: URL, source: String) throws -> Model {
        let network = try Network(spec: result.spec, file: directory.path)
        for (name, tensor) in result.tensors {
            guard network.assign(name, tensor) else {
                throw ImportError(file: source, reason: "internal: tensor '\(name)' has no place in the imported description")
            }
        }
        do {
            return try Model.save(network, to: directory, metadata: ["source": source, "opset": "\(result.opset)", "producer": result.producer])
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }
}
