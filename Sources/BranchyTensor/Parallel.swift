import Dispatch

/// Work splitting over the machine's cores.
public enum Parallel {
    /// Number of worker threads kernels may use (defaults to the active processor count).
    nonisolated(unsafe) public static var threads: Int = max(1, sysconfThreads())

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
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let lo = count * w / workers
            let hi = count * (w + 1) / workers
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Calls `body(worker, range)` for each worker; use `worker` to index per-worker scratch.
    @inlinable
    public static func forEachWorker(_ count: Int, minimumPerThread: Int = 1, _ body: (Int, Range<Int>) -> Void) -> Int {
        let workers = max(1, min(threads, count / max(1, minimumPerThread)))
        if workers == 1 {
            if count > 0 { body(0, 0..<count) }
            return 1
        }
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
