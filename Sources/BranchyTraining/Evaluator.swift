import BranchyData
import BranchyModel
import BranchyReport
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
    /// inputBytes[stage][sample]: what sending the input of that stage over its link cost, as the
    /// `measure` closure given to the trace counted it (empty when none was given; 0 where no link).
    public var inputBytes: [[Int]] = []

    public var samples: Int { labels.count }
}

/// Runs a network over a data set the way the tiers do, in one process.
public enum Evaluator {
    /// Computes every exit on `count` samples of `data`. Features crossing from one stage to the next
    /// go through `codec` per sample, as they do on the wire between tiers. Throws when the
    /// images are not the network's input.
    public static func trace(network: Network, data: ImageDataset, limit: Int? = nil, codec: FeatureCodecKind = .float32,
                             batchSize: Int = 256, progress: Bool = false, int8: Int8Calibration? = nil,
                             observer: ActivationObserver? = nil) throws -> ExitTrace {
        try trace(network: network, data: data, limit: limit, links: LinkCodecs(between: codec, stages: network.stages.count),
                  batchSize: batchSize, progress: progress, int8: int8, observer: observer)
    }

    /// Computes every exit on `count` samples of `data`, with the codec of each link the cluster's
    /// samples cross: `links.codecs[i]` is applied to the input of stage `i` (index 0 to the raw
    /// input, for a device that hosts no stage), nil where the stages run in one process. With `int8`,
    /// the convolutions it covers run in int8; with `observer`, the float convolutions record
    /// the range of their inputs there.
    public static func trace(network: Network, data: ImageDataset, limit: Int? = nil, links: LinkCodecs,
                             batchSize: Int = 256, progress: Bool = false,
                             measure: ((_ stage: Int, _ item: Tensor) -> Int)? = nil,
                             int8: Int8Calibration? = nil, observer: ActivationObserver? = nil) throws -> ExitTrace {
        try network.checkInput(of: data)
        let n = min(data.count, limit ?? data.count)
        let exits = network.stages.count
        var outputs = [[ExitOutput]](repeating: [], count: exits)
        var inputBytes = [[Int]](repeating: [], count: measure == nil ? 0 : exits)
        var bar = ProgressBar(total: n, label: "eval")
        let compiled = CompiledNetwork(network, int8: int8, observer: observer)
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
                if let codec = links.codec(before: i) {
                    if let measure {
                        let per = network.stages[i].inputShape.reduce(1, *)
                        for s in 0..<count {
                            inputBytes[i].append(measure(i, Tensor(shape: network.stages[i].inputShape,
                                                                   data: Array(features[(s * per)..<((s + 1) * per)]))))
                        }
                    }
                    features = codecPerSample(Tensor(shape: [count] + network.stages[i].inputShape, data: features), codec).data
                } else if measure != nil {
                    inputBytes[i].append(contentsOf: repeatElement(0, count: count))
                }
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
        var trace = ExitTrace(exitNames: network.stages.map(\.exitName), labels: data.labels.prefix(n).map(Int.init), outputs: outputs)
        trace.inputBytes = inputBytes
        return trace
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

/// The codec on each link between stages, as a cluster's path from a device to the root lays
/// them out: `codecs[i]` encodes the input of stage `i` (`codecs[0]`: the raw input, sent by a
/// device that hosts no stage), nil where two stages run in the same process.
public struct LinkCodecs: Sendable, Hashable, CustomStringConvertible {
    public var codecs: [FeatureCodecKind?]

    public init(_ codecs: [FeatureCodecKind?]) { self.codecs = codecs }

    /// One codec between every two stages, none on the input (the device runs the first stage).
    public init(between codec: FeatureCodecKind, stages: Int) {
        codecs = [nil] + [FeatureCodecKind?](repeating: codec, count: max(0, stages - 1))
    }

    /// The codec applied to the input of stage `i`, if the input crosses a link.
    public func codec(before i: Int) -> FeatureCodecKind? {
        i < codecs.count ? codecs[i] : nil
    }

    /// E.g. `device | int8 | edge | int8 | cloud`-style: the codec before each stage, `-` for none.
    public var description: String {
        codecs.map { $0?.name ?? "-" }.joined(separator: ",")
    }
}
