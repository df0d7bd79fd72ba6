import NIOCore

/// A task executor that runs jobs on one event loop: the front door runs a request's backend call
/// on the loop that read the request, so that a request answered at once (the device sure of it,
/// computed inline) takes no thread hop at all, and one that waits (a batch, upstream) frees the loop.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let loop: any EventLoop

    public init(loop: any EventLoop) { self.loop = loop }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
