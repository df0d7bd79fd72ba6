import Foundation

/// Collects the range of every convolution's input while a network compiled with it runs
/// (``CompiledNetwork/init(_:isa:foldBatchNorm:winograd:stages:int8:observer:)``): the
/// measurement behind ``Int8Calibration``. Safe to share between threads.
public final class ActivationObserver: @unchecked Sendable {
    private let lock = NSLock()
    private var ranges: [String: Int8Calibration.Range] = [:]

    public init() {}

    /// Widens `key`'s range to cover `count` floats at x (NaN and ±∞ ignored: a range must be finite).
    func observe(_ key: String, _ x: UnsafePointer<Float>, count: Int) {
        var lo = Float.infinity, hi = -Float.infinity
        for i in 0..<count {
            let v = x[i]
            guard v.isFinite else { continue }
            if v < lo { lo = v }
            if v > hi { hi = v }
        }
        guard lo <= hi else { return }
        lock.lock()
        defer { lock.unlock() }
        if let r = ranges[key] { ranges[key] = .init(min: min(r.min, lo), max: max(r.max, hi)) } else { ranges[key] = .init(min: lo, max: hi) }
    }

    /// The ranges seen so far, by convolution key.
    public var observed: [String: Int8Calibration.Range] {
        lock.lock()
        defer { lock.unlock() }
        return ranges
    }
}
