import ArgumentParser
import BranchyWire
import Foundation
import Synchronization

/// The hostile clients and verdicts of the hardening checks in scripts/e2e-faults.sh.
///
/// Each probe prints one line of figures on standard output (for the check's `ok` line) and details on
/// standard error, and exits 0 when its check holds; otherwise the last line on standard output says why
/// and it exits 1. Every probe but `impostor` (which serves until killed) ends by itself.
@main
struct BranchyProbe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "branchy-probe", abstract: "Probes for the hardening checks of scripts/e2e-faults.sh.",
        subcommands: [
            Impostor.self, ImpostorVerdict.self, Sans.self, Timeouts.self, Hold.self, HoldVerdict.self, PeerCap.self, Budget.self,
            Inject.self, Cycles.self, RefusedHellos.self, GzipBomb.self, ModelBomb.self, DeviceReport.self, Measure.self,
            LogEscaped.self, StatsFlood.self, ZstdFlood.self, MetricsExhaust.self, SmallCases.self, Latency.self,
        ])
}

/// A probe: `check()` prints the line of figures, or throws when the check does not hold.
protocol Check: AsyncParsableCommand {
    /// Runs the probe; throws ``CheckFailed`` (or any other error) when its check does not hold.
    func check() async throws
}

extension Check {
    mutating func run() async throws {
        do { try await check() } catch {
            print(error is CheckFailed ? "\(error)" : "\(Self._commandName): \(error)")
            throw ExitCode.failure
        }
    }
}

/// Why a check does not hold: the last line the probe prints.
struct CheckFailed: Error, CustomStringConvertible {
    var description: String
    init(_ reason: String) { description = reason }
}

/// Throws ``CheckFailed`` with `why` unless `condition` holds.
func require(_ condition: Bool, _ why: @autoclosure () -> String) throws {
    if !condition { throw CheckFailed(why()) }
}

/// A detail for standard error.
func note(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }

/// Seconds on the monotonic clock.
func monotonic() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// Sleeps for `seconds`.
func pause(_ seconds: Double) async { try? await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9)) }

/// `x` with `digits` decimals.
func fmt(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }

/// The lines of a JSON-lines file decoded as `T`; none when the file cannot be read.
func jsonLines<T: Decodable>(_ path: String, as: T.Type) throws -> [T] {
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    return try text.split(separator: "\n").filter { !$0.allSatisfy(\.isWhitespace) }.map { try JSONDecoder().decode(T.self, from: Data($0.utf8)) }
}

/// Decodes a JSON file as `T`, or throws ``CheckFailed`` naming `what`.
func jsonFile<T: Decodable>(_ path: String, as: T.Type, _ what: String) throws -> T {
    guard let data = FileManager.default.contents(atPath: path) else { throw CheckFailed("no readable \(what) \(path)") }
    do { return try JSONDecoder().decode(T.self, from: data) } catch { throw CheckFailed("\(what) \(path) does not read as expected: \(error)") }
}

/// Raises the soft descriptor limit of this process to at least `need` (at most the hard limit).
func raiseDescriptorLimit(_ need: Int) {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(need) else { return }
    limit.rlim_cur = min(limit.rlim_max, rlim_t(need))
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

extension ModelFingerprint: ExpressibleByArgument {
    public init?(argument: String) { self.init(hex: argument) }
}

/// A value shared between tasks and event loops, behind a lock.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    /// Runs `body` on the value under the lock.
    func callAsFunction<R>(_ body: (inout Value) throws -> R) rethrows -> R { try mutex.withLock { try body(&$0) } }
    /// A copy of the value.
    var value: Value { mutex.withLock { $0 } }
}
