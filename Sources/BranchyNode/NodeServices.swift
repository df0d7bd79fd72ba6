import BranchyFrontDoor
import BranchyFrontDoorGRPC
import BranchyObservability
import BranchyTopology
import BranchyTransport
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// The parts a node executable runs besides its server, each a swift-service-lifecycle `Service`,
/// so that one `ServiceGroup` starts them together and, on SIGTERM or SIGINT, stops them in the
/// reverse order of its list (list the server or the device's run last: it finishes first, while
/// the link and the metrics are still up).

/// The way upstream: connects (and reconnects) until graceful shutdown, then stops every link.
public struct UpstreamService: Service {
    let pool: UpstreamPool
    public init(pool: UpstreamPool) { self.pool = pool }

    public func run() async throws {
        pool.start()
        try? await gracefulShutdown()
        _ = try? await pool.stop().get()
    }
}

/// `/metrics`, `/healthz` and `/readyz`, served until graceful shutdown.
public struct MetricsService: Service {
    let endpoint: Endpoint
    let metrics: NodeMetrics
    let group: any EventLoopGroup
    let logger: Logger
    let acceptBackoff: AcceptBackoff
    let notReadyBecause: @Sendable () async -> String?

    public init(endpoint: Endpoint, metrics: NodeMetrics, group: any EventLoopGroup, logger: Logger, acceptBackoff: AcceptBackoff,
                notReadyBecause: @escaping @Sendable () async -> String?) {
        self.endpoint = endpoint
        self.metrics = metrics
        self.group = group
        self.logger = logger
        self.acceptBackoff = acceptBackoff
        self.notReadyBecause = notReadyBecause
    }

    public func run() async throws {
        let acceptBackoff = self.acceptBackoff, notReadyBecause = self.notReadyBecause
        let server = try await MetricsServer.start(at: endpoint, metrics: metrics, group: group, logger: logger, acceptBackoff: acceptBackoff) {
            if let accept = acceptBackoff.notReadyBecause { return accept }
            return await notReadyBecause()
        }
        try? await gracefulShutdown()
        await server.close()
    }
}

/// Runs `reload` on every SIGHUP, one at a time, until graceful shutdown.
public struct ReloadService: Service {
    let reload: @Sendable () -> Void
    public init(reload: @escaping @Sendable () -> Void) { self.reload = reload }

    public func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            reload()
        }
    }
}

/// A job that ends by itself (the device's run over its data set), cancelled on graceful shutdown;
/// run it with `successTerminationBehavior: .gracefullyShutdownGroup` so that the others stop when it is done.
public struct JobService: Service {
    let body: @Sendable () async throws -> Void
    public init(_ body: @escaping @Sendable () async throws -> Void) { self.body = body }

    public func run() async throws {
        try await cancelWhenGracefulShutdown { try await body() }
    }
}

/// The front door for applications (the Open Inference Protocol over HTTP, and over gRPC when it
/// has a gRPC server), served until graceful shutdown; bound before the group runs, so that a busy
/// port stops the node with its error.
public struct FrontDoorService: Service {
    let server: FrontDoorServer?
    let grpc: FrontDoorGRPCServer?
    let logger: Logger
    public init(server: FrontDoorServer?, grpc: FrontDoorGRPCServer?, logger: Logger) { self.server = server; self.grpc = grpc; self.logger = logger }

    public func run() async throws {
        try? await gracefulShutdown()
        await server?.close()
        await grpc?.close()
    }
}
