import ArgumentParser
import BranchyModel
import BranchyTensor
import BranchyTopology
import BranchyTraining
import Foundation

extension LinkCodecs {
    /// Parses `--codec`: one codec for every link between stages (`int8`), or one per link
    /// (`sign,int8`). Compressors (`+zstd`) are accepted and change nothing: they are lossless.
    static func parse(_ text: String, stages: Int, option: String = "--codec") throws -> LinkCodecs {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
        let kinds = try parts.map { name -> FeatureCodecKind in
            guard let c = FeatureCodec(name) else {
                throw ValidationError("\(option): unknown codec '\(name)' (expected \(FeatureCodec.namesHelp))")
            }
            return c.kind
        }
        if kinds.count == 1 { return LinkCodecs(between: kinds[0], stages: stages) }
        guard kinds.count == stages - 1 else {
            throw ValidationError("\(option): the model has \(stages - 1) links between stages; give one codec or \(stages - 1), got \(kinds.count)")
        }
        return LinkCodecs([nil] + kinds.map(Optional.some))
    }

    /// The codecs a cluster's samples cross on the path from `device` to the root of `topology`:
    /// each node's codec encodes the input of the first stage its upstream runs.
    static func from(topology path: String, device: String?, stageNames: [String]) throws -> LinkCodecs {
        let topology = try Topology.load(contentsOf: URL(fileURLWithPath: path), stageOrder: stageNames, checkFiles: false)
        let devices = topology.nodes.filter { $0.role == .device }
        guard let start = device.map({ name in topology.node(named: name) }) ?? devices.first else {
            throw ValidationError("--topology: no device named '\(device ?? "")' in \(path)")
        }
        var codecs = [FeatureCodecKind?](repeating: nil, count: stageNames.count)
        var node: NodeConfig? = start
        var hosted = 0
        while let n = node {
            hosted += n.stages.count
            if let up = n.upstream, hosted < stageNames.count {
                codecs[hosted] = FeatureCodec(n.codec)?.kind
                node = topology.node(named: up)
            } else {
                node = nil
            }
        }
        return LinkCodecs(codecs)
    }
}
