import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// Where a device's lanes compute: a task executor on the event loops of a group of its own, whose
/// threads run `niceness` steps below the rest of the process, so that the threads that move bytes
/// (the link's loop and, on a shared machine, the edge and the cloud) preempt the computing.
final class LaneExecutor: TaskExecutor {
    let loop: any EventLoop

    init(loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    /// One executor per loop of a new group of `lanes` threads, each lowered by `niceness` steps (0 to 19).
    static func group(lanes: Int, niceness: Int) -> (group: MultiThreadedEventLoopGroup, executors: [LaneExecutor]) {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: lanes)
        let loops = Array(group.makeIterator())
        if niceness > 0 {
            for loop in loops { loop.execute { lowerThisThreadsPriority(by: Int32(min(niceness, 19))) } }
        }
        return (group, loops.map(LaneExecutor.init))
    }

    /// Lowers the calling thread's scheduling priority (Linux: its own nice value; elsewhere nothing).
    static func lowerThisThreadsPriority(by steps: Int32) {
        #if os(Linux)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        guard n > 0, let tid = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .split(separator: "/").last.flatMap({ id_t($0) }) else { return }
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        let current = getpriority(which, tid)
        _ = setpriority(which, tid, min(19, current + steps))
        #endif
    }
}
