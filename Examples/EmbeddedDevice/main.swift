// An application that embeds the device slice of a Branchy cluster with the `Branchy` library and
// classifies test images in process; samples the device is not sure of go to the cluster's edge
// and cloud, which must be running (`scripts/cluster.sh up`).
//
//   swift build -c release --product branchy-embedded-example
//   scripts/cluster.sh up
//   .build/release/branchy-embedded-example topology/local.yaml device data/fashion-mnist 0 16 25
//   .build/release/branchy-embedded-example topology/local.yaml device data/fashion-mnist --time 20 $(seq 0 255)
//
// Arguments: TOPOLOGY NODE DATASET [--time N] INDEX... Each INDEX is a test image of DATASET
// (read here with BranchyData; an application has its own images), sent as pixels. With --time N,
// the images are classified N times each, in turn, one call at a time, and the latency percentiles
// of the calls are printed.
import Branchy
import BranchyData
import Foundation

@main
struct EmbeddedDeviceExample {
    static func main() async {
        var args = Array(CommandLine.arguments.dropFirst())
        var repeats = 0
        if let i = args.firstIndex(of: "--time"), i + 1 < args.count, let n = Int(args[i + 1]), n > 0 {
            repeats = n
            args.removeSubrange(i...(i + 1))
        }
        guard args.count >= 4, let indices = Optional(args[3...].compactMap { Int($0) }), indices.count == args.count - 3 else {
            FileHandle.standardError.write(Data("usage: branchy-embedded-example TOPOLOGY NODE DATASET [--time N] INDEX...\n".utf8))
            exit(2)
        }
        do {
            let images = try ImageDataset.load(directory: URL(fileURLWithPath: args[2]), split: .test, for: [1, 28, 28], preprocessing: nil)
            let device = try await BranchyDevice.open(topology: args[0], node: args[1])
            print("model \(device.modelName): input \(device.inputShape), \(device.classes) classes, exits \(device.exitNames.joined(separator: ", "))")
            for i in indices where !(0..<images.count).contains(i) { throw ExampleError("\(args[2]) has no test image \(i)") }
            func pixels(_ i: Int) -> [UInt8] { images.image(i).map { UInt8(($0 * 255).rounded()) } }
            if repeats > 0 {
                // Round robin over the images, one call at a time: the latency of each call as the caller sees it.
                var nanos: [Int64] = []
                var exits: [String: Int] = [:]
                let inputs = indices.map(pixels)
                for r in 0..<(repeats * inputs.count) {
                    let start = ContinuousClock.now
                    let a = try await device.classify(pixels: inputs[r % inputs.count], channels: images.channels, rows: images.rows, cols: images.cols)
                    let d = ContinuousClock.now - start
                    nanos.append(d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)
                    exits[a.exitName, default: 0] += 1
                }
                nanos.sort()
                func p(_ q: Double) -> String { String(format: "%.1f", Double(nanos[min(nanos.count - 1, Int(q * Double(nanos.count)))]) / 1000) }
                let shares = exits.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                print("\(nanos.count) calls over \(indices.count) images, one at a time (\(shares)): p50 \(p(0.5)) µs, p90 \(p(0.9)) µs, p99 \(p(0.99)) µs")
            } else {
                for i in indices {
                    let a = try await device.classify(pixels: pixels(i), channels: images.channels, rows: images.rows, cols: images.cols)
                    let p = a.probabilities.map { String(format: "%.3f", $0[a.predictedClass]) } ?? "-"
                    func µs(_ d: Duration?) -> String { d.map { $0.formatted(.units(allowed: [.microseconds], width: .narrow)) } ?? "?" }
                    // Each link crossed: its round trip, and of it the time the node beyond held the sample.
                    let hops = a.hops.map { h in
                        "; \(h.link) \(µs(h.roundTrip)) (\(h.link.components(separatedBy: "->").last ?? h.link) \(µs(h.upstreamTime)))"
                    }.joined()
                    print("image \(i): class \(a.predictedClass) (p=\(p), label \(images.labels[i])) from \(a.exitName) on the \(a.tier), "
                        + "\(a.upwardBytes) bytes upward, \(µs(a.latency))\(hops)")
                }
            }
            await device.close()
        } catch {
            FileHandle.standardError.write(Data("branchy-embedded-example: \(error)\n".utf8))
            exit(1)
        }
    }
}

struct ExampleError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
