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
}
