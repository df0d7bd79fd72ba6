import BranchyData
import BranchyModel
import BranchyTensor
import Foundation

/// Every exit's verdict on every sample of a data set.
///
/// All exits are computed for all samples once; which exit *takes* a sample under given
/// thresholds is then a cheap pass over these outputs, so that one run serves an
/// evaluation and a whole threshold sweep.
public struct ExitTrace: Sendable {
    public var exitNames: [String]
    public var labels: [Int]
    /// outputs[exit][sample].
    public var outputs: [[ExitOutput]]

    public var samples: Int { labels.count }
}

/// Runs a network over a data set the way the tiers do, in one process.
public enum Evaluator {
    /// Computes every exit on `count` samples of `data`. Features crossing from one stage to the next
    /// go through `codec` per sample, as they do on the wire between tiers. Throws when the
    /// images are not the network's input.
    public static func trace(network: Network, data: IDXDataset, limit: Int? = nil, codec: FeatureCodecKind = .float32,
                             batchSize: Int = 256, progress: Bool = false) throws -> ExitTrace {
        try network.checkInput(of: data)
        let n = min(data.count, limit ?? data.count)
        let exits = network.stages.count
        var outputs = [[ExitOutput]](repeating: [], count: exits)
        var bar = ProgressBar(total: n, label: "eval")
        var start = 0
        while start < n {
            let end = min(n, start + batchSize)
            let batch = data.batch(indices: start..<end)
            var features = Tensor(shape: [end - start] + network.spec.input, data: batch.images)
            for i in 0..<exits {
                if i > 0 { features = codecPerSample(features, codec) }
                features = network.trunk(i, features)
                outputs[i] += network.classify(exit: i, features: features)
            }
            start = end
            if progress { bar.update(start, fields: "", force: start == n) }
        }
        if progress { bar.finish() }
        return ExitTrace(exitNames: network.stages.map(\.exitName), labels: data.labels.prefix(n).map(Int.init), outputs: outputs)
    }

    /// Applies the codec's encode/decode round trip to each sample separately (each is its own message on the wire).
    public static func codecPerSample(_ x: Tensor, _ codec: FeatureCodecKind) -> Tensor {
        if codec == .float32 { return x }
        var out = x
        let per = x.itemCount
        for s in 0..<x.batch {
            let item = codec.roundTrip(Tensor(shape: Array(x.shape.dropFirst()), data: Array(x.data[(s * per)..<((s + 1) * per)])))
            out.data.replaceSubrange((s * per)..<((s + 1) * per), with: item.data)
        }
        return out
    }
}
