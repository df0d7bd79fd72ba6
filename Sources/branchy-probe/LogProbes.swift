import ArgumentParser
import BranchyWire
import Foundation

/// Sends a hello with NAME (escapes such as `\n`, `\x1b`, `\x00` and `\\` are decoded) under NODE's
/// certificate: it must be answered with an error frame and closed.
struct Inject: Check {
    static let configuration = CommandConfiguration(abstract: "Checks that a hello with a forged node name is refused.")
    @OptionGroup var peer: Peer
    @Argument(help: "The node name to claim, with backslash escapes.") var nameEscaped: String

    func check() async throws {
        let link = try await peer.cluster.connect(as: peer.node, server: peer.server)
        defer { link.hardClose() }
        try await link.send(.hello(Hello(role: .device, nodeName: unescaped(nameEscaped), fingerprint: peer.fingerprint)))
        let frames = try await refusal(link, "a hello with a forged node name")
        note("inject: refused with \(String(reflecting: frames[0].summary))")
        print("forged hello refused with error \(frames[0].errorCode!)")
    }

    /// `text` with `\n`, `\r`, `\t`, `\0`, `\xHH`, `\uHHHH` and any other escaped character decoded.
    private func unescaped(_ text: String) -> String {
        text.replacing(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)/) { match in
            let e = String(match.1)
            if e.count > 1, let v = UInt32(e.dropFirst(), radix: 16), let scalar = Unicode.Scalar(v) { return String(scalar) }
            return ["n": "\n", "r": "\r", "t": "\t", "0": "\0"][e] ?? e
        }
    }
}

/// COUNT TLS connect/close cycles as NODE, closed without TLS close_notify.
struct Cycles: Check {
    static let configuration = CommandConfiguration(abstract: "TLS connect/close cycles without close_notify.")
    @OptionGroup var cluster: Cluster
    @Argument var node: String
    @Argument var server: String
    @Argument var count: Int

    func check() async throws {
        let t0 = monotonic()
        for done in 0..<count {
            do { try await cluster.connect(as: node, server: server).hardClose() } catch {
                throw CheckFailed("connect/close cycle \(done + 1): \(error)")
            }
        }
        note("cycles: \(count) TLS connect/close cycles without close_notify in \(fmt(monotonic() - t0)) s")
        print("\(count) cycles in \(fmt(monotonic() - t0, 1)) s")
    }
}

/// COUNT hellos claiming a node name that NODE's certificate does not hold, each refused with an error.
struct RefusedHellos: Check {
    static let configuration = CommandConfiguration(abstract: "Hellos claiming a name the certificate does not hold, each refused.")
    @OptionGroup var peer: Peer
    @Argument var count: Int

    func check() async throws {
        let t0 = monotonic()
        for i in 0..<count {
            let link = try await peer.cluster.connect(as: peer.node, server: peer.server)
            defer { link.hardClose() }
            try await link.send(.hello(Hello(role: .device, nodeName: "not-\(peer.node)-\(i)", fingerprint: peer.fingerprint)))
            _ = try await refusal(link, "hello \(i + 1) with a name not in the certificate")
        }
        print("\(count) refused hellos in \(fmt(monotonic() - t0, 1)) s")
    }
}

/// After line OFFSET, LOG holds ESCAPED literally; no line of LOG starts with FORGED; LOG holds no raw
/// control byte but newline and tab.
struct LogEscaped: Check {
    static let configuration = CommandConfiguration(abstract: "Checks that a log shows a forged name escaped and no raw control byte.")
    @Argument var log: String
    @Argument var offset: Int
    @Argument var escaped: String
    @Argument var forged: String

    func check() async throws {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: log)))
        let bad = Set(data.filter { $0 < 0x20 && $0 != 0x0A && $0 != 0x09 }).sorted()
        try require(bad.isEmpty, "the log holds raw control bytes \(bad.map { String(format: "0x%02x", $0) }.joined(separator: ", "))")
        let lines = data.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if let line = lines.first(where: { $0.hasPrefix(forged) }) {
            throw CheckFailed("the log has a forged line: \(String(reflecting: String(line.prefix(80))))")
        }
        guard let line = lines.dropFirst(offset).first(where: { $0.contains(escaped) }) else {
            throw CheckFailed("the log does not show the escaped name \(String(reflecting: escaped))")
        }
        note("log line: \(line)")
        print("the forged name is logged escaped on one line")
    }
}
