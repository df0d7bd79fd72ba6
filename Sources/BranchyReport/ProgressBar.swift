import Foundation

/// A one-line progress bar redrawn on standard error.
public struct ProgressBar {
    public var total: Int
    public var label: String
    private let start = Date()
    private var lastDraw = Date.distantPast
    private let interactive = isatty(2) != 0

    public init(total: Int, label: String) { self.total = total; self.label = label }

    /// Redraws the bar at `done` items with extra `fields` (e.g. "loss 0.31"); throttled to 10 Hz unless `force`.
    public mutating func update(_ done: Int, fields: String, force: Bool = false) {
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let left = rate > 0 ? Double(total - done) / rate : 0
        let width = 24
        let filled = total > 0 ? min(width, width * done / total) : 0
        let bar = String(repeating: "=", count: filled) + (filled < width ? ">" : "") + String(repeating: " ", count: max(0, width - filled - 1))
        let line = "\(label) [\(bar)] \(done)/\(total) \(fields) \(Int(rate))/s \(Self.clock(elapsed)) left \(Self.clock(left))"
        if interactive {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        } else if force || done == total {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    /// Ends the line.
    public func finish() {
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func clock(_ s: Double) -> String {
        let t = Int(s.rounded())
        return String(format: "%d:%02d", t / 60, t % 60)
    }
}
