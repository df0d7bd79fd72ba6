/// Reads a graph of ``ActivationOp``s as Branchy describes networks: chains of layers and
/// blocks of parallel branches that fork from one tensor and merge into one (a graph that is
/// series-parallel between its cut tensors), and finds each exit's branch point.
final class Decomposition {
    /// A piece of a chain: one op, or a merge op with the chains of its branches.
    indirect enum Item {
        case op(Int)
        case block(Int, [[Item]])
    }

    /// The deepest nesting of blocks read (a description allows fewer: ``ModelLimits/maxNesting``).
    static let maxDepth = 64

    let ops: [ActivationOp]
    let producer: [String: Int]
    let file: String
    private var visited = Set<Int>()
    private var dominatorCache: [String: [String]] = [:]

    init(ops: [ActivationOp], producer: [String: Int], file: String) {
        self.ops = ops; self.producer = producer; self.file = file
    }

    private func fail(_ op: Int, _ reason: String) -> ImportError {
        ImportError(file: file, location: "node '\(ops[op].node)' (\(ops[op].opType))", reason: reason)
    }

    /// The tensors every path from `source` to `tensor` passes through, from `tensor` back to
    /// `source` (both included).
    func dominators(of tensor: String, from source: String, depth: Int = 0) throws -> [String] {
        let key = source + "\u{0}" + tensor
        if let hit = dominatorCache[key] { return hit }
        var chain = [tensor]
        var current = tensor
        var steps = 0
        while current != source {
            guard let p = producer[current] else {
                throw ImportError(file: file, location: "tensor '\(tensor)'",
                                  reason: "it does not come from '\(source)' alone (the graph is not a chain of blocks there)")
            }
            steps += 1
            if steps > ops.count { throw fail(p, "the graph loops") }
            current = ops[p].inputs.count == 1 ? ops[p].inputs[0] : try fork(of: p, from: source, depth: depth + 1)
            chain.append(current)
        }
        dominatorCache[key] = chain
        return chain
    }

    /// The tensor where the inputs of merge op `p` part: the nearest one all their paths from
    /// `source` pass through.
    func fork(of p: Int, from source: String, depth: Int = 0) throws -> String {
        guard depth <= Self.maxDepth else { throw fail(p, "blocks are nested more than \(Self.maxDepth) deep") }
        let chains = try ops[p].inputs.map { try dominators(of: $0, from: source, depth: depth) }
        let others = chains.dropFirst().map(Set.init)
        guard let f = chains[0].first(where: { t in others.allSatisfy { $0.contains(t) } }) else {
            throw fail(p, "its inputs do not part from one tensor")
        }
        return f
    }

    /// The chain from `source` to `target`; each op may be taken once over all chains (an op
    /// taken twice is one whose output is read outside its block: the graph is not
    /// series-parallel there).
    func chain(from source: String, to target: String, depth: Int = 0) throws -> [Item] {
        guard depth <= Self.maxDepth else {
            throw ImportError(file: file, location: "tensor '\(target)'", reason: "blocks are nested more than \(Self.maxDepth) deep")
        }
        var items: [Item] = []
        var current = target
        while current != source {
            guard let p = producer[current] else {
                throw ImportError(file: file, location: "tensor '\(target)'", reason: "it does not come from '\(source)' alone")
            }
            guard visited.insert(p).inserted else {
                throw fail(p, "its output is read both inside and outside a block of parallel branches (or across a stage's "
                    + "branch point), which Branchy cannot split; choose other split points with --split")
            }
            if ops[p].inputs.count == 1 {
                items.append(.op(p))
                current = ops[p].inputs[0]
            } else {
                let f = try fork(of: p, from: source)
                items.append(.block(p, try ops[p].inputs.map { try chain(from: f, to: $0, depth: depth + 1) }))
                current = f
            }
        }
        return items.reversed()
    }

    /// The ops that lead to `tensor`.
    func ancestors(of tensor: String) -> Set<Int> {
        var seen = Set<Int>()
        var stack = [tensor]
        while let t = stack.popLast() {
            guard let p = producer[t], seen.insert(p).inserted else { continue }
            stack.append(contentsOf: ops[p].inputs)
        }
        return seen
    }

    /// The ops in `items`, nested ones included.
    static func opIndices(_ items: [Item]) -> [Int] {
        items.flatMap { item -> [Int] in
            switch item {
            case .op(let p): return [p]
            case .block(let p, let branches): return [p] + branches.flatMap(opIndices)
            }
        }
    }
}
