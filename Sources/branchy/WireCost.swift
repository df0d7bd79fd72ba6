import BranchyModel
import BranchyTensor
import BranchyTopology
import BranchyTraining
import BranchyWire
import Foundation

/// What a sample costs on the wire, per link, as the cluster's protocol (version 2) lays it out:
/// each request and result is one frame in one TLS record (22 bytes of record overhead).
struct WireCost {
    /// The codec (kind and compressor) before each stage that crosses a link, else nil.
    let codecs: [FeatureCodec?]
    /// The names the servers send in their helloAck, so results refer to them by index.
    let names: NameTable
    let exitNames: [String]
    /// For each stage, the node that runs it (to name the answering node in results).
    let nodeOfStage: [String]
    /// The link name of the link before each stage, if any.
    let linkBefore: [String?]

    /// Typical field values of a request on the wire: ids below 128 (reused once answered),
    /// sample numbers up to 65535 and a deadline of some seconds.
    static let requestID: UInt64 = 1
    static let sampleID: UInt64 = 9_999
    static let deadlineMillis: UInt32 = 8_000

    /// Bytes of the infer frame (with its TLS record) that carries `item` into stage `stage`.
    func requestBytes(stage: Int, item: Tensor) -> Int {
        guard let codec = codecs[stage] else { return 0 }
        let encoded = (try? codec.encode(item)) ?? codec.kind.encode(item)
        let frame = Frame(requestID: Self.requestID, message: .infer(InferRequest(
            sampleID: Self.sampleID, deadlineMillis: Self.deadlineMillis, stageIndex: UInt8(stage), features: encoded)))
        return TLSRecordOverhead.wireBytes(forFrame: frame.encodedSize(in: .v2(names: names)))
    }

    /// Links (stage indices whose input crosses one) a sample leaving at `exit` crosses, in order.
    func links(upTo exit: Int) -> [Int] { (0...exit).filter { codecs[$0] != nil } }

    /// Bytes, both directions, TLS records included, of a sample that leaves at `exit`, given the
    /// request bytes of each link it crosses.
    func sampleBytes(exit: Int, request: (Int) -> Int, predicted: Int = 3) -> Int {
        let crossed = links(upTo: exit)
        var total = 0
        var laterHops: [HopCost] = []
        for stage in crossed.reversed() {
            let req = request(stage)
            let result = InferResult(exitIndex: UInt8(exit), exitName: exitNames[exit], nodeName: nodeOfStage[exit],
                                     predictedClass: UInt16(predicted), confidence: 0.5, entropy: 0.5, hops: laterHops)
            let resp = TLSRecordOverhead.wireBytes(forFrame: Frame(requestID: Self.requestID, message: .result(result)).encodedSize(in: .v2(names: names)))
            total += req + resp
            laterHops.insert(HopCost(link: linkBefore[stage] ?? "", requestFrameBytes: UInt64(req - 22), responseFrameBytes: UInt64(resp - 22),
                                     requestTLSBytes: UInt64(req), responseTLSBytes: UInt64(resp)), at: 0)
        }
        return total
    }

    /// The layout of the path from `device` to the root of `topology`.
    static func from(topology path: String, device: String?, network: Network) throws -> WireCost {
        let stageNames = network.stages.map(\.name)
        let topology = try Topology.load(contentsOf: URL(fileURLWithPath: path), stageOrder: stageNames, checkFiles: false)
        guard let start = device.map({ topology.node(named: $0) }) ?? topology.nodes.first(where: { $0.role == .device }) else {
            throw CalibrationError("no device '\(device ?? "")' in \(path)")
        }
        var codecs = [FeatureCodec?](repeating: nil, count: stageNames.count)
        var linkBefore = [String?](repeating: nil, count: stageNames.count)
        var nodeOfStage = [String](repeating: "", count: stageNames.count)
        var node: NodeConfig? = start
        var hosted = 0
        while let n = node {
            for s in n.stages { if let i = stageNames.firstIndex(of: s) { nodeOfStage[i] = n.name } }
            hosted += n.stages.count
            guard let up = n.upstream, hosted < stageNames.count else { break }
            codecs[hosted] = FeatureCodec(n.codec)
            linkBefore[hosted] = "\(n.name)->\(up)"
            node = topology.node(named: up)
        }
        let names = NameTable(topology.nodes.map(\.name) + network.stages.map(\.exitName)
                              + topology.nodes.compactMap { n in n.upstream.map { "\(n.name)->\($0)" } })
        return WireCost(codecs: codecs, names: names, exitNames: network.stages.map(\.exitName), nodeOfStage: nodeOfStage, linkBefore: linkBefore)
    }

    /// The layout of the shipped three-node path (device, edge, cloud: one stage each after the
    /// first), with the given codec on each link.
    static func threeNodes(network: Network, codecs linkCodecs: [FeatureCodec]) -> WireCost {
        let n = network.stages.count
        let nodes = ["device", "edge", "cloud"]
        var codecs = [FeatureCodec?](repeating: nil, count: n)
        var linkBefore = [String?](repeating: nil, count: n)
        for i in 1..<n {
            codecs[i] = linkCodecs[min(i - 1, linkCodecs.count - 1)]
            linkBefore[i] = "\(nodes[min(i - 1, 2)])->\(nodes[min(i, 2)])"
        }
        let nodeOfStage = (0..<n).map { nodes[min($0, 2)] }
        let names = NameTable(nodes + network.stages.map(\.exitName) + ["device->edge", "edge->cloud"])
        return WireCost(codecs: codecs, names: names, exitNames: network.stages.map(\.exitName), nodeOfStage: nodeOfStage, linkBefore: linkBefore)
    }

    /// The kinds of the codecs, for the evaluator (compression changes no value).
    var linkCodecs: LinkCodecs { LinkCodecs(codecs.map { $0?.kind }) }
}

struct CalibrationError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
