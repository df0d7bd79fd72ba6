import BranchyData
import BranchyTensor
import Foundation
import Testing
@testable import BranchyModel

/// The default model with its shipped int8 calibration: the same bits on every int8 path and
/// batch size, close to float32, and clear errors for calibrations that do not fit.
@Suite struct Int8NetworkTests {
    static let root = BResNet3Tests.root
    static func model() throws -> Model { try Model.load(directory: root.appendingPathComponent("models/b-resnet3")) }

    /// Every stage's logits for the first `count` test images, each stage fed the previous stage's features.
    static func logits(_ net: CompiledNetwork, _ data: ImageDataset, count: Int, batch: Int) -> [[Float]] {
        var input = Array(data.images.prefix(count * data.pixelsPerImage))
        var out: [[Float]] = []
        let ws = net.makeWorkspace()
        for i in net.stages.indices {
            var logits: [Float] = []
            var features: [Float] = []
            var done = 0
            while done < count {
                let n = min(batch, count - done)
                let s = net.stages[i]
                let r = net.run(stage: i, count: n, input: Array(input[(done * s.inputCount)..<((done + n) * s.inputCount)]), workspace: ws)
                features += r.features
                logits += r.logits
                done += n
            }
            out.append(logits)
            input = features
        }
        return out
    }

    @Test func theShippedCalibrationCoversEveryConvolution() throws {
        let m = try Self.model()
        let c = try Int8Calibration.load(for: m)
        #expect(Set(c.activations.keys) == Set(m.network.convolutionKeys()))
        #expect(c.activations.count == 11)
        let net = CompiledNetwork(m.network, int8: c)
        // Every convolution but the two with fewer than four input channels (device.trunk.conv1, edge.trunk.conv1).
        #expect(net.quantizedConvolutions == 9)
    }

    @Test func everyPathAndBatchGivesTheSameBits() throws {
        let m = try Self.model()
        let c = try Int8Calibration.load(for: m)
        let data = try ImageDataset.load(path: Self.root.appendingPathComponent("data/fashion-mnist").path, for: m.spec.input,
                                         preprocessing: m.spec.preprocessing)
        let count = 40
        let reference = Self.logits(CompiledNetwork(m.network, int8: c, qisa: .baseline), data, count: count, batch: count)
        for qisa in QuantizedISA.supported {
            let net = CompiledNetwork(m.network, int8: c, qisa: qisa)
            for batch in [1, 7, count] {
                let got = Self.logits(net, data, count: count, batch: batch)
                #expect(got.map { $0.map(\.bitPattern) } == reference.map { $0.map(\.bitPattern) }, "\(qisa), batch \(batch)")
            }
        }
        // And close to float32: the same answer on nearly every sample at every exit.
        let float = Self.logits(CompiledNetwork(m.network), data, count: count, batch: count)
        for (e, (q, f)) in zip(reference, float).enumerated() {
            let classes = m.network.spec.classes
            let agree = (0..<count).filter { s in
                let qs = Array(q[(s * classes)..<((s + 1) * classes)]), fs = Array(f[(s * classes)..<((s + 1) * classes)])
                return qs.firstIndex(of: qs.max()!) == fs.firstIndex(of: fs.max()!)
            }.count
            #expect(agree >= count - 1, "exit \(e): int8 and float32 agree on \(agree) of \(count)")
            #expect(q != f, "exit \(e): int8 gave float32's logits, so it did not run")
        }
    }

    @Test func theObserverSeesEveryConvolution() throws {
        let m = try Self.model()
        let observer = ActivationObserver()
        let net = CompiledNetwork(m.network, observer: observer)
        let data = try ImageDataset.load(path: Self.root.appendingPathComponent("data/fashion-mnist").path, for: m.spec.input,
                                         preprocessing: m.spec.preprocessing)
        _ = Self.logits(net, data, count: 8, batch: 8)
        let seen = observer.observed
        #expect(Set(seen.keys) == Set(m.network.convolutionKeys()))
        // After a ReLU the input starts at 0; the image's pixels span a range.
        #expect(seen["edge.trunk.b1.conv2"].map { $0.min >= 0 && $0.max > 0 } == true)
        #expect(seen["device.trunk.conv1"].map { $0.max > $0.min } == true)
    }

    @Test func calibrationsThatDoNotFitNameTheProblem() throws {
        let m = try Self.model()
        let good = try Int8Calibration.load(for: m)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("int8-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func problem(_ c: Int8Calibration) -> String {
            let url = dir.appendingPathComponent("int8.json")
            do {
                try c.write(to: url)
                try Int8Calibration.load(url).check(covers: m, file: url.path)
                return ""
            } catch { return "\(error)" }
        }
        var stale = good
        stale.fingerprint = String(repeating: "0", count: 64)
        #expect(problem(stale).contains("not these weights"))
        var partial = good
        partial.activations["cloud.trunk.b2.conv2"] = nil
        #expect(problem(partial).contains("no range for cloud.trunk.b2.conv2"))
        var reversed = good
        reversed.activations["edge.trunk.conv1"] = .init(min: 2, max: 1)
        #expect(problem(reversed).contains("activations.edge.trunk.conv1"))
        var wide = good
        wide.activations["cloud.trunk.conv1"] = .init(min: -3e38, max: 3e38)
        #expect(problem(wide).contains("of finite width"))
        var format = good
        format.format = "other"
        #expect(problem(format).contains("format is 'other'"))
        let garbage = dir.appendingPathComponent("garbage.json")
        try Data("{".utf8).write(to: garbage)
        #expect(throws: Int8CalibrationError.self) { try Int8Calibration.load(garbage) }
        #expect(throws: Int8CalibrationError.self) { try Int8Calibration.load(dir.appendingPathComponent("missing.json")) }
    }
}
