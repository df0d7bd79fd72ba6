import ArgumentParser
import BranchyTensor
import BranchyWire
import NIOCore

/// Three quick replays on one edge (stage 1, input [8, 7, 7]), as device-16: a version 1 frame header
/// dribbled one byte every 250 ms after the hello must be cut with limitReached HANDSHAKE_MS (+ MARGIN_MS)
/// after its first byte; a statsRequest reusing the id of an infer in flight gets duplicateRequestID while
/// the infer is still answered; a client hello with a non-empty names table gets badFrame and the close.
struct SmallCases: Check {
    static let configuration = CommandConfiguration(abstract: "A dribbled header, a duplicate request id and a client names table.")
    @OptionGroup var cluster: Cluster
    @Argument var server: String
    @Argument var fingerprint: ModelFingerprint
    @Argument var handshakeMs: Int
    @Argument var marginMs: Int

    func check() async throws {
        let node = "device-16"
        let (handshake, margin) = (Double(handshakeMs) / 1000, Double(marginMs) / 1000)
        var figures: [String] = []
        let (limitReached, duplicate) = (ErrorCode.limitReached.rawValue, ErrorCode.duplicateRequestID.rawValue)
        let badFrame = ErrorCode.badFrame.rawValue

        // A version 1 header, one byte at a time (it never completes: 19 of its 20 bytes at most).
        var link = try await cluster.authenticated(as: node, server: server, fingerprint: fingerprint)
        var header = ByteBuffer()
        header.writeFrameHeader(FrameHeader(type: .infer, requestID: 1, payloadLength: 2000))
        let t0 = monotonic()
        var cut: Double?, got: [Frame] = []
        for i in 0..<(FrameHeader.size - 1) where cut == nil {
            do { try await link.write(header.getSlice(at: i, length: 1)!) } catch { cut = monotonic() - t0; break }
            if let frames = try? await link.untilClosed(within: 0.25) { (got, cut) = (frames, monotonic() - t0) }
        }
        if cut == nil {
            got = try await link.untilClosed(within: handshake + margin, or: "a frame header dribbled one byte every 250 ms is still open "
                                             + "after \(fmt(monotonic() - t0, 1)) s (handshakeTimeoutMs \(handshakeMs))")
        }
        let after = cut ?? monotonic() - t0
        link.hardClose()
        note("dribble: cut after \(fmt(after)) s; frames \(got.map(\.summary))")
        try require(handshake - 0.1 <= after && after <= handshake + margin,
                    "a dribbled frame header was cut \(fmt(after)) s after its first byte, "
                    + "expected \(fmt(handshake, 1)) to \(fmt(handshake + margin, 1)) s")
        try require(got.first?.errorCode == limitReached, "a dribbled frame header was cut with \(got.map(\.summary)), not error \(limitReached)")
        figures.append("dribbled v1 header cut after \(fmt(after)) s with error \(limitReached)")

        // An infer in flight, and a statsRequest with its id in the same write.
        link = try await cluster.authenticated(as: node, server: server, fingerprint: fingerprint, version: 2)
        defer { link.hardClose() }
        let features = EncodedTensor(kind: .float32, shape: [8, 7, 7], parameters: .none, bytes: [UInt8](repeating: 0, count: 4 * 8 * 7 * 7))
        try await link.send(Frame(requestID: 5, message: .infer(InferRequest(sampleID: 1, stageIndex: 1, features: features))),
                            Frame(requestID: 5, message: .statsRequest))
        got = []
        let deadline = monotonic() + 5
        func answered() -> Bool { got.contains { $0.requestID == 5 && $0.message.type == .result } }
        func refused() -> Bool { got.contains { $0.requestID == 5 && $0.errorCode == duplicate } }
        while !(got.contains { $0.errorCode != nil } && answered()),
              let frame = try? await link.frame(within: max(0.001, deadline - monotonic())) { got.append(frame) }
        let kinds = got.map { "(\($0.summary), id \($0.requestID))" }
        note("duplicate id: frames \(kinds)")
        try require(refused(), "a statsRequest reusing the id of an infer in flight got \(kinds), not error \(duplicate) for id 5")
        try require(answered(), "the infer in flight was not answered: \(kinds)")
        await pause(0.2)
        try require(await link.established(), "the edge closed the connection after duplicateRequestID")
        figures.append("statsRequest reusing an in-flight id: error \(duplicate), the infer answered, connection open")
        link.hardClose()

        // A client hello with a names table.
        link = try await cluster.connect(as: node, server: server)
        let names = NameTable(["edge", "cloud"])
        try await link.send(.hello(Hello(protocolVersion: 2, role: .device, nodeName: node, fingerprint: fingerprint, names: names)))
        got = try await link.untilClosed(within: 5, or: "a client hello with a names table is still open after 5 s")
        note("names table: frames \(got.map(\.summary))")
        try require(got.first?.errorCode == badFrame, "a client hello with a names table got \(got.map(\.summary)), not error \(badFrame)")
        figures.append("client hello with 2 names: error \(badFrame), closed")
        print(figures.joined(separator: "; "))
    }
}
