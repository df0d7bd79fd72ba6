import Foundation

/// Checks the nodes' stages against the model's stage order: every name is known,
/// each node hosts a contiguous run, and every path from a device to the root
/// hosts exactly the model's stages, in order, with no gap and no overlap.
struct StageValidator {
    let context: ErrorContext
    let nodes: [ParsedNode]
    let stageOrder: [String]
    let indexByName: [String: Int]

    func validate() throws {
        let position = Dictionary(stageOrder.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        var ranges: [ClosedRange<Int>?] = []
        for node in nodes {
            var indices: [Int] = []
            for (j, stage) in node.config.stages.enumerated() {
                guard let index = position[stage] else {
                    throw context.error(node.keyPath("stages[\(j)]"),
                                        "unknown stage '\(stage)' (model stages: \(stageOrder.joined(separator: ", ")))",
                                        line: node.line(of: "stages"))
                }
                indices.append(index)
            }
            guard zip(indices, indices.dropFirst()).allSatisfy({ $1 == $0 + 1 }) else {
                throw error(node, "stages [\(node.config.stages.joined(separator: ", "))] are not contiguous in model order "
                                + "(\(stageOrder.joined(separator: ", ")))")
            }
            // A device that hosts no stage sends its raw input upstream (the raw-offload baselines).
            ranges.append(indices.isEmpty ? nil : indices.first!...indices.last!)
        }
        for (i, node) in nodes.enumerated() where node.config.role == .device {
            try checkPath(from: i, ranges: ranges)
        }
    }

    private func error(_ node: ParsedNode, _ reason: String) -> TopologyError {
        context.error(node.keyPath("stages"), reason, line: node.line(of: "stages"))
    }

    /// Walks from the device at `start` to the root, checking that the hosted stage runs tile the model.
    private func checkPath(from start: Int, ranges: [ClosedRange<Int>?]) throws {
        var path = [start]
        while let upstream = nodes[path.last!].config.upstream, let next = indexByName[upstream] {
            path.append(next)
        }
        let route = path.map { nodes[$0].config.name }.joined(separator: " -> ")
        var expected = 0
        var hostOf: [Int: String] = [:]
        for index in path {
            let node = nodes[index]
            guard let range = ranges[index] else { continue }
            if range.lowerBound > expected {
                let missing = stageOrder[expected..<range.lowerBound].map { "'\($0)'" }.joined(separator: ", ")
                throw error(node, "stage \(missing) is hosted by no node on the path \(route); "
                                + "'\(node.config.name)' starts at '\(stageOrder[range.lowerBound])'")
            }
            if range.lowerBound < expected {
                let stage = stageOrder[range.lowerBound]
                throw error(node, "stage '\(stage)' is hosted twice on the path \(route): "
                                + "by '\(hostOf[range.lowerBound] ?? "?")' and by '\(node.config.name)'")
            }
            for stage in range { hostOf[stage] = node.config.name }
            expected = range.upperBound + 1
        }
        if expected < stageOrder.count {
            let root = nodes[path.last!]
            throw error(root, "the path \(route) ends at stage '\(stageOrder[expected - 1])'; "
                            + "its root '\(root.config.name)' must host the model's last stage '\(stageOrder.last!)'")
        }
    }
}
