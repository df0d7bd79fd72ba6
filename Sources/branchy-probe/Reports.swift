import ArgumentParser
import Foundation

/// The parts of a device run's report (`--report`) the probes read.
struct DeviceRun: Decodable {
    struct Latency: Decodable { var p50, mean, p99: Double }
    struct Exit: Decodable { var index: Int?, name: String?, count: Int?, latencyMs: Latency? }
    var answered, degraded, failed: Int
    var samples, deviceLinkConnections: Int?
    var latencyMs: Latency
    var exits: [Exit]?
}

/// One line of a device run's predictions (`--predictions`).
struct Prediction: Decodable { var sample: Int, status: String, exit: Int }

/// A device run's report: MODE `answered` (all answered, none degraded or failed) or `local` (all
/// answered at the device's own exit, never connected upstream).
struct DeviceReport: Check {
    static let configuration = CommandConfiguration(abstract: "Checks a device run's report and predictions.")
    @Argument var report: String
    @Argument var predictions: String
    @Argument var samples: Int
    @Argument var mode: Mode

    /// What the run must show.
    enum Mode: String, ExpressibleByArgument { case answered, local }

    func check() async throws {
        let run = try jsonFile(report, as: DeviceRun.self, "device report")
        let rows: [Prediction]
        do { rows = try jsonLines(predictions, as: Prediction.self) } catch {
            throw CheckFailed("predictions \(predictions) do not read as expected: \(error)")
        }
        try require(run.samples == samples, "the device report has \(run.samples.map(String.init) ?? "no") samples, expected \(samples)")
        try require(rows.map(\.sample).sorted() == Array(0..<samples), "\(rows.count) predictions, not each of the \(samples) samples once")
        note("device report: answered \(run.answered), degraded \(run.degraded), failed \(run.failed), connections "
             + "\(run.deviceLinkConnections ?? 0), exits \((run.exits ?? []).map { ($0.name ?? "?", $0.count ?? 0) })")
        try require(run.failed == 0, "\(run.failed) samples failed")
        switch mode {
        case .answered:
            try require(run.answered == samples, "answered \(run.answered), degraded \(run.degraded) of \(samples)")
            try require(rows.allSatisfy { $0.status == "answered" }, "some predictions are not 'answered'")
            print("\(samples) answered, none degraded")
        case .local:
            let upstream = rows.filter { $0.exit != 0 }
            try require(upstream.isEmpty, "\(upstream.count) samples answered by exit \(upstream.first?.exit ?? 0), not the device's")
            try require((run.deviceLinkConnections ?? 0) == 0, "the device counted \(run.deviceLinkConnections ?? 0) upstream handshakes")
            print("\(samples) answered by the device itself (\(run.degraded) degraded)")
        }
    }
}

/// `p50 mean p99 edge-exit-p50 answered degraded failed` of a device report (ms; the edge-exit p50 is that
/// of the samples answered at exit 1, `-` if none).
struct Latency: Check {
    static let configuration = CommandConfiguration(abstract: "Prints the latency figures of a device report.")
    @Argument var report: String

    func check() async throws {
        let run = try jsonFile(report, as: DeviceRun.self, "device report")
        let edge = run.exits?.first { $0.index == 1 && ($0.count ?? 0) > 0 }?.latencyMs.map { fmt($0.p50, 3) } ?? "-"
        let l = run.latencyMs
        print("\(fmt(l.p50, 3)) \(fmt(l.mean, 3)) \(fmt(l.p99, 3)) \(edge) \(run.answered) \(run.degraded) \(run.failed)")
    }
}

/// Runs COMMAND (stdin from /dev/null, stdout and stderr inherited) for at most SECONDS and writes to OUT a
/// JSON object: its exit status (negative: killed by that signal; `"timeout"`: still running), its wall
/// time and its peak resident set size (ru_maxrss from wait4).
struct Measure: Check {
    static let configuration = CommandConfiguration(abstract: "Runs a command with a time limit; records its exit status, time and peak RSS.")
    @Argument var seconds: Double
    @Argument var out: String
    @Argument(parsing: .captureForPassthrough) var command: [String]

    func check() async throws {
        try require(!command.isEmpty, "no command to measure")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var argv = command.map { strdup($0) } + [nil], pid: pid_t = 0
        let t0 = monotonic(), rc = posix_spawnp(&pid, command[0], &actions, nil, &argv, environ)
        argv.forEach { free($0) }
        try require(rc == 0, "cannot run \(command[0]): \(String(cString: strerror(rc)))")
        var status: Int32 = 0, usage = rusage(), timedOut = false
        while wait4(pid, &status, WNOHANG, &usage) == 0 {
            timedOut = monotonic() - t0 > seconds
            if timedOut { kill(pid, SIGKILL); wait4(pid, &status, 0, &usage) } else { await pause(0.005) }
        }
        let code = timedOut ? "\"timeout\"" : status & 0x7f == 0 ? "\((status >> 8) & 0xff)" : "\(-(status & 0x7f))"
        let json = "{\"status\": \(code), \"seconds\": \(fmt(monotonic() - t0, 3)), \"maxRssMB\": \(fmt(Double(usage.ru_maxrss) / 1024, 1))}\n"
        try Data(json.utf8).write(to: URL(fileURLWithPath: out))
    }
}
