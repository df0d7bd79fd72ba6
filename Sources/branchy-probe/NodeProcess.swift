import Foundation

/// A node under attack, seen through /proc.
struct NodeProcess {
    var pid: Int32

    /// The whitespace-separated words of /proc/PID/`file`.
    private func words(_ file: String) throws -> [Substring] {
        do { return try String(contentsOfFile: "/proc/\(pid)/\(file)", encoding: .utf8).split(whereSeparator: \.isWhitespace) } catch {
            throw CheckFailed("cannot read /proc/\(pid)/\(file): the node is gone")
        }
    }

    /// The number after `key` in /proc/PID/`file`.
    private func value(_ file: String, after key: [Substring]) throws -> Double {
        let w = try words(file)
        guard let i = w.indices.first(where: { w[$0...].starts(with: key) }), let v = Double(w[i + key.count]) else {
            throw CheckFailed("no \(key.joined(separator: " ")) in /proc/\(pid)/\(file)")
        }
        return v
    }

    /// VmRSS and VmHWM in MB.
    func memory() throws -> (rss: Double, hwm: Double) {
        (try value("status", after: ["VmRSS:"]) / 1024, try value("status", after: ["VmHWM:"]) / 1024)
    }

    /// The fields of /proc/PID/stat after the command name (the state first).
    private func stat() throws -> [Substring] { try words("stat").drop { !$0.hasSuffix(")") }.dropFirst().map { $0 } }

    /// User + system time so far, in clock ticks.
    func cpuTicks() throws -> Int {
        let fields = try stat()
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }

    /// Clock ticks per second.
    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// Whether the process runs (exists and is no zombie).
    var alive: Bool { (try? stat().first.map { $0 != "Z" }) == true }

    /// Open descriptors.
    func descriptors() throws -> Int {
        do { return try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count } catch {
            throw CheckFailed("cannot list /proc/\(pid)/fd: the node is gone")
        }
    }

    /// The soft limit on open descriptors.
    func descriptorLimit() throws -> Int { Int(try value("limits", after: ["Max", "open", "files"])) }
}
