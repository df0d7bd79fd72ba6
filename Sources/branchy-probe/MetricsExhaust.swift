import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

/// Holds COUNT TCP connections (nothing sent) to the metrics port of the node PID for SECONDS: once its
/// descriptors are all taken, the rest wait in its accept queue and every accept fails with EMFILE.
/// Prints its CPU use while full and, from its /readyz after the release, how many accepts failed in
/// the episode.
struct MetricsExhaust: Check {
    static let configuration = CommandConfiguration(abstract: "Exhausts a node's descriptors through its metrics port.")
    @Argument var host: String
    @Argument var port: Int
    @Argument var pid: Int32
    @Argument var count: Int
    @Argument var seconds: Double

    func check() async throws {
        raiseDescriptorLimit(3 * count + 64)
        let node = NodeProcess(pid: pid)
        let address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let limit = try node.descriptorLimit(), startFDs = try node.descriptors()
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.milliseconds(Int64(seconds * 1000)))
        let held = Shared((channels: [any Channel](), closing: false))
        var started = 0
        func open(_ n: Int) {
            started += n
            for _ in 0..<n {
                bootstrap.connect(to: address).whenSuccess { channel in
                    held { $0.closing ? channel.close(promise: nil) : $0.channels.append(channel) }
                }
            }
        }
        let t0 = monotonic()
        open(count)
        var peak = startFDs, full: (at: Double, ticks: Int)?, samples: [(t: Double, fds: Int, ticks: Int)] = []
        while monotonic() - t0 < seconds && node.alive {
            // Connections whose SYN the full accept queue dropped are retried by the kernel only after a
            // second or more: until the table is full, keep adding some (at most 3 x COUNT in all).
            if full == nil && started < 3 * count { open(min(32, 3 * count - started)) }
            guard let fds = try? node.descriptors(), let ticks = try? node.cpuTicks() else { break }
            let now = monotonic() - t0
            samples.append((now, fds, ticks))
            peak = max(peak, fds)
            if full == nil && fds >= limit { full = (now, ticks) }
            await pause(0.1)
        }
        let end = monotonic() - t0
        let channels = held { $0.closing = true; return $0.channels }
        var established = 0
        for channel in channels { if await tcpEstablished(channel) { established += 1 } }
        channels.forEach { $0.close(promise: nil) }
        try require(node.alive, "the node is gone (it crashed or was killed while its descriptors were exhausted)")
        // While the episode lasts (5 s after its last failure) the node's readiness counts its failed accepts.
        await pause(0.6)
        var readiness: String
        do {
            let link = try await Link.open(address, tls: nil, timeout: 3)
            try await link.write(ByteBuffer(string: "GET /readyz HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n"))
            let answer = await link.text(within: 3)
            link.hardClose()
            let status = answer.split(separator: " ").dropFirst().first ?? "?"
            let body = answer.components(separatedBy: "\r\n\r\n").dropFirst().first ?? ""
            readiness = "\(status) " + body.trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            readiness = "no answer from /readyz: \(error)"
        }
        let failures = readiness.firstMatch(of: /\((\d+) failed accepts\)/).map { String($0.1) } ?? "?"
        note("metrics exhaust: \(started) connections started, \(established) established at the end; node descriptors \(startFDs) before, "
             + "peak \(peak) of \(limit); full after \(full.map { fmt($0.at) } ?? "None") s; samples (t, fds, ticks): "
             + "\(stride(from: 0, to: samples.count, by: 5).map { "(\(fmt(samples[$0].t, 1)), \(samples[$0].fds), \(samples[$0].ticks))" }); "
             + "readiness after: \(readiness)")
        guard let full, let last = samples.last else {
            throw CheckFailed("the node's descriptors peaked at \(peak) of \(limit): never exhausted, the check proves nothing")
        }
        let window = max(0.1, last.t - full.at)
        let cpu = 100 * Double(last.ticks - full.ticks) / NodeProcess.ticksPerSecond / window
        print("\(established) connections held on the metrics port for \(fmt(end, 1)) s; node descriptors \(startFDs) -> \(peak) of \(limit) "
              + "(full after \(fmt(full.at)) s); node CPU \(fmt(cpu, 1))% over the \(fmt(window, 1)) s exhausted; "
              + "\(failures) failed accepts in the episode (its /readyz)")
    }
}
