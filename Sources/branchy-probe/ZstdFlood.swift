import ArgumentParser
import BranchyTensor
import BranchyWire

/// Up to FRAMES version 2 infer frames for STAGE, PER_CONNECTION per connection in one write, for at most
/// SECONDS: a float32 tensor stating [1, 2048, 2048] as a ~530-byte Zstandard stream (made by the
/// nodes' own compressor, the system's libzstd) that inflates to 16 MiB. Every connection must get
/// badTensor and be closed; prints the CPU time of PID.
struct ZstdFlood: Check {
    static let configuration = CommandConfiguration(abstract: "Sends infer frames whose zstd tensor inflates to 16 MiB.")
    @OptionGroup var cluster: Cluster
    @Argument var server: String
    @Argument var fingerprint: ModelFingerprint
    @Argument var pid: Int32
    @Argument var stage: UInt8
    @Argument var frames: Int
    @Argument var perConnection: Int
    @Argument var seconds: Double

    func check() async throws {
        let shape = [1, 2048, 2048]
        let plain = EncodedTensor(kind: .float32, shape: shape, parameters: .none, bytes: [UInt8](repeating: 0, count: 4 * shape.reduce(1, *)))
        let tensor = try plain.compressed(with: .zstd)
        try require(tensor.compression == .zstd, "Zstandard did not make 16 MiB of zeros smaller")
        let bombs = (1...perConnection).map {
            Frame(requestID: UInt64($0), message: .infer(InferRequest(sampleID: UInt64($0), stageIndex: stage, features: tensor)))
        }
        // Peer identities device-16, device-15, ... device-5 (never device-1, the real device): none holds more than four.
        let peers = (0..<12).map { "device-\(16 - $0)" }
        let node = NodeProcess(pid: pid)
        let c0 = try node.cpuTicks(), t0 = monotonic()
        var sent = 0, connections = 0, outcomes: [String: Int] = [:], firstText = "", closeTimes: [Double] = []
        while sent < frames && monotonic() - t0 < seconds {
            let p = peers[connections % peers.count]
            let link = try await cluster.authenticated(as: p, server: server, fingerprint: fingerprint, version: 2)
            defer { link.hardClose() }
            connections += 1
            let t1 = monotonic()
            try? await link.write(link.encode(bombs))   // the edge may close before it took every frame
            sent += perConnection
            let got = try await link.untilClosed(within: 5, or: "connection \(connections): \(perConnection) shape bombs sent, "
                                                 + "still open after 5 s")
            closeTimes.append(monotonic() - t1)
            let outcome = got.first.map { $0.errorCode.map { "\($0)" } ?? "frame type \($0.message.type)" } ?? "closed without a frame"
            if case .error(let e) = got.first?.message, firstText.isEmpty { firstText = e.message }
            outcomes[outcome, default: 0] += 1
            try require(!got.contains { $0.message.type == .result }, "connection \(connections): a shape bomb was answered with a result")
        }
        let elapsed = monotonic() - t0
        try require(node.alive, "the edge is gone (it crashed or was killed during the zstd flood)")
        let cpu = Double(try node.cpuTicks() - c0) / NodeProcess.ticksPerSecond
        note("zstd flood: stream of \(tensor.compressedBytes.count) bytes for \(shape); \(sent) frames on \(connections) connections in "
             + "\(fmt(elapsed)) s; outcomes \(outcomes); closed \(fmt(1000 * (closeTimes.min() ?? 0), 1)) to "
             + "\(fmt(1000 * (closeTimes.max() ?? 0), 1)) ms "
             + "after the write; edge CPU \(fmt(cpu)) s; first refusal: \(String(reflecting: firstText))")
        let summary = "\(sent) frames stating \(shape) (\(tensor.compressedBytes.count)-byte zstd stream, 16 MiB inflated) on \(connections) "
            + "connections in \(fmt(elapsed, 1)) s; edge CPU \(fmt(cpu)) s"
        let badTensor = "\(ErrorCode.badTensor.rawValue)"
        try require(outcomes[badTensor] == connections, "\(summary): not every connection got badTensor (\(badTensor)): \(outcomes)")
        print("\(summary); every connection refused with badTensor and closed")
    }
}
