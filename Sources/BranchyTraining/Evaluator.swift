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
        let compiled = CompiledNetwork(network)
        let workspaces = (0..<max(1, Parallel.threads)).map { _ in compiled.makeWorkspace() }
        let classes = compiled.classes
        var logits = [Float](repeating: 0, count: batchSize * classes)
        var start = 0
        while start < n {
            let end = min(n, start + batchSize)
            let count = end - start
            let batch = data.batch(indices: start..<end)
            var features = batch.images
            for i in 0..<exits {
                let stage = compiled.stages[i]
                if i > 0 { features = codecPerSample(Tensor(shape: [count] + network.stages[i].inputShape, data: features), codec).data }
                var next = [Float](repeating: 0, count: count * stage.featureCount)
                features.withUnsafeBufferPointer { x in
                    next.withUnsafeMutableBufferPointer { f in
                        logits.withUnsafeMutableBufferPointer { l in
                            compiled.runParallel(stage: i, count: count, input: x.baseAddress!, features: f.baseAddress!,
                                                 logits: l.baseAddress!, workspaces: workspaces)
                            for s in 0..<count {
                                outputs[i].append(ExitOutput.summarize(l.baseAddress! + s * classes, classes: classes))
                            }
                        }
                    }
                }
                features = next
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
