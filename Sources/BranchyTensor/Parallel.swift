import Dispatch
import Synchronization

/// Work splitting over the machine's cores.
public enum Parallel {
    /// Number of worker threads kernels may use (defaults to the active processor count).
    ///
    /// Set it before any kernel runs (the command-line tools do so once, from `--threads`);
    /// kernels only read it.
    public static var threads: Int {
        get { configuredThreads.load(ordering: .relaxed) }
        set { configuredThreads.store(max(1, newValue), ordering: .relaxed) }
    }

    private static let configuredThreads = Atomic<Int>(max(1, sysconfThreads()))

    private static func sysconfThreads() -> Int {
        #if os(Linux) || os(macOS)
        return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        return 1
        #endif
    }

    /// Calls `body(range)` on disjoint chunks covering `0..<count`, in parallel when
    /// `count >= minimumPerThread * 2` and more than one thread is configured.
    @inlinable
    public static func forEachChunk(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        let workers = min(threads, count / max(1, minimumPerThread))
        if workers <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        // `body` runs on several threads at once, each call on its own range; the callers'
        // contract is that a call writes only memory that belongs to its range (or to its
        // worker), which is what makes sharing the non-Sendable closure safe.
        nonisolated(unsafe) let body = body
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let lo = count * w / workers
            let hi = count * (w + 1) / workers
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Calls `body(worker, range)` for each worker (at most `maxWorkers`); use `worker` to index per-worker scratch.
    @inlinable
    public static func forEachWorker(_ count: Int, minimumPerThread: Int = 1, maxWorkers: Int = .max,
                                     _ body: (Int, Range<Int>) -> Void) -> Int {
        let workers = max(1, min(threads, maxWorkers, count / max(1, minimumPerThread)))
        if workers == 1 {
            if count > 0 { body(0, 0..<count) }
            return 1
        }
        // As in `forEachChunk`: each call writes only memory of its own range or worker.
        nonisolated(unsafe) let body = body
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let lo = count * w / workers
            let hi = count * (w + 1) / workers
            if lo < hi { body(w, lo..<hi) }
        }
        return workers
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
