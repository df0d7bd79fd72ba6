// An application that embeds the device slice of a Branchy cluster with the `Branchy` library and
// classifies test images in process; samples the device is not sure of go to the cluster's edge
// and cloud, which must be running (`scripts/cluster.sh up`).
//
//   swift build -c release --product branchy-embedded-example
//   scripts/cluster.sh up
//   .build/release/branchy-embedded-example topology/local.yaml device data/fashion-mnist 0 16 25
//   .build/release/branchy-embedded-example topology/local.yaml device data/fashion-mnist --time 2000 0
//
// Arguments: TOPOLOGY NODE DATASET [--time N] INDEX... Each INDEX is a test image of DATASET
// (read here with BranchyData; an application has its own images), sent as pixels. With --time N,
// each image is classified N times, one call at a time, and the latency percentiles are printed.
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
            for i in indices {
                guard i >= 0 && i < images.count else { throw ExampleError("\(args[2]) has no test image \(i)") }
                let pixels = images.image(i).map { UInt8(($0 * 255).rounded()) }
                if repeats > 0 {
                    var nanos: [Int64] = []
                    var last: Classification? = nil
                    for _ in 0..<repeats {
                        let start = ContinuousClock.now
                        last = try await device.classify(pixels: pixels, channels: images.channels, rows: images.rows, cols: images.cols)
                        let d = ContinuousClock.now - start
                        nanos.append(d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)
                    }
                    nanos.sort()
                    func p(_ q: Double) -> String { String(format: "%.1f", Double(nanos[min(nanos.count - 1, Int(q * Double(nanos.count)))]) / 1000) }
                    print("image \(i): \(repeats) calls, one at a time, answered by \(last!.exitName): p50 \(p(0.5)) µs, p90 \(p(0.9)) µs, p99 \(p(0.99)) µs")
                } else {
                    let a = try await device.classify(pixels: pixels, channels: images.channels, rows: images.rows, cols: images.cols)
                    let p = a.probabilities.map { String(format: "%.3f", $0[a.predictedClass]) } ?? "-"
                    print("image \(i): class \(a.predictedClass) (p=\(p), label \(images.labels[i])) from \(a.exitName) on the \(a.tier), "
                        + "\(a.upwardBytes) bytes upward, \(a.latency.formatted(.units(allowed: [.microseconds], width: .narrow)))")
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
