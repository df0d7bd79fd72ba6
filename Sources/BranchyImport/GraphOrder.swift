/// The checks that make a graph a graph: every tensor produced once, every input defined,
/// no cycle; and the nodes in an order where each comes after what it reads.
extension GraphIR {
    /// Node indices in dependency order (file order where free). Throws for a tensor produced
    /// twice, an input nothing defines, a cycle, or an output nothing produces.
    func dependencyOrder(file: String) throws -> [Int] {
        var producer: [String: Int] = [:]
        for (i, node) in nodes.enumerated() {
            for out in node.outputs where !out.isEmpty {
                if out == input.name || initializers[out] != nil || producer[out] != nil {
                    throw ImportError(file: file, location: location(of: node),
                                      reason: "tensor '\(out)' is produced twice (by this node and another or an initializer)")
                }
                producer[out] = i
            }
        }
        var waiting = [Int](repeating: 0, count: nodes.count)
        var readers: [[Int]] = Array(repeating: [], count: nodes.count)
        for (i, node) in nodes.enumerated() {
            for name in Set(node.inputs) where !name.isEmpty {
                if let p = producer[name] {
                    waiting[i] += 1
                    readers[p].append(i)
                } else if name != input.name && initializers[name] == nil {
                    throw ImportError(file: file, location: location(of: node),
                                      reason: "input '\(name)' is not defined (no node, initializer or graph input of that name)")
                }
            }
        }
        var ready = (0..<nodes.count).filter { waiting[$0] == 0 }.reversed() as [Int]
        var order: [Int] = []
        order.reserveCapacity(nodes.count)
        while let i = ready.popLast() {
            order.append(i)
            for r in readers[i].reversed() {
                waiting[r] -= 1
                if waiting[r] == 0 { ready.append(r) }
            }
        }
        if order.count < nodes.count {
            let stuck = (0..<nodes.count).first { waiting[$0] > 0 }!
            throw ImportError(file: file, location: location(of: nodes[stuck]),
                              reason: "the graph has a cycle through this node (it depends on its own output)")
        }
        for out in outputs where producer[out] == nil && out != input.name {
            throw ImportError(file: file, location: "graph output '\(out)'", reason: "no node produces it")
        }
        return order
    }

    /// How errors name a node: `node 'NAME' (OP, opset N)`.
    func location(of node: Node) -> String {
        "node '\(node.name)' (\(node.opType), opset \(opset))"
    }
}
