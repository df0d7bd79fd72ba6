import BranchyData
import BranchyFrontDoor
import BranchyFrontDoorGRPC
import BranchyObservability
import BranchyTopology
import BranchyTransport
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import BranchyServing
import ServiceLifecycle

/// The bodies of the node executables, kept here so that the executables stay thin.
public enum NodeMain {
    /// Sends swift-log output to stderr at `level`, labelled with the node name, as plain lines or
    /// (`format` json) one JSON object per line.
    public static func logger(node: String, level: String, format: LogFormat = .text) -> Logger {
        let lvl = Logger.Level(rawValue: level) ?? .info
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = lvl
                return h
            case .json:
                var h = JSONLogHandler(label: label)
                h.logLevel = lvl
                return h
            }
        }
        return Logger(label: node)
    }

    /// Loads the node and checks it has the role the executable serves.
    public static func context(topology: String, node: String, role: BranchyTopology.NodeRole, replica: Int? = nil) throws -> NodeContext {
        let ctx = try NodeContext.load(topologyPath: topology, nodeName: node, replica: replica)
        guard ctx.config.role == role else {
            throw NodeError("\(topology): node '\(node)' has role \(ctx.config.role.rawValue); use branchy-\(ctx.config.role.rawValue) for it")
        }
        return ctx
    }

    /// The data set a device classifies: `explicit` if given (relative to the working directory),
    /// else the topology's `dataset:` (relative to the topology file).
    public static func datasetPath(explicit: String?, context: NodeContext) throws -> String {
        if let explicit { return explicit }
        guard let url = context.topology.dataset else {
            throw NodeError("\(context.topology.fileURL.path): no 'dataset:' key and no --dataset given; name the data set to classify (IDX or CIFAR-10 binary)")
        }
        return url.path
    }

    /// The metrics of the node `context` runs.
    /// Every series it will count into exists at zero from the start.
    public static func metrics(for context: NodeContext) -> NodeMetrics {
        let name = context.config.name
        let metrics = NodeMetrics(node: name, role: context.config.role.rawValue, model: context.model.spec.name,
                                  fingerprint: String(context.fingerprint.hex.prefix(16)),
                                  exitNames: context.model.network.stages.map(\.exitName), replica: context.replica)
        let replicas: [String]
        switch context.upstream?.replicas {
        case .listed(let listed): replicas = listed.indices.map(String.init)
        case .resolved: replicas = []  // labelled by address, known only once resolved
        case nil: replicas = context.upstream == nil ? [] : ["0"]
        }
        metrics.prepare(upstreamLink: context.upstream.map { "\(name)->\($0.name)" }, replicas: replicas,
                        childLinks: context.children.map { "\($0.name)->\(name)" })
        if let expiry = TLSLayer.certificateExpiry(context.config.tls) { metrics.setCertificateExpiry(node: name, unixSeconds: expiry) }
        return metrics
    }

    /// Serves an edge or cloud node until SIGINT or SIGTERM, then drains and returns. With
    /// `replica`, it runs that listed replica of the node. SIGHUP re-reads the topology.
    ///
    /// One `ServiceGroup` runs the upstream link, the metrics endpoint, the reload on SIGHUP and the
    /// server; on SIGTERM or SIGINT the server drains first, then the others stop.
    ///
    /// `frontDoor`, given the model's input shape, says where the node also serves applications (nil:
    /// it does not); only a node hosting the model's first stage can.
    public static func serve(topology: String, node: String, role: BranchyTopology.NodeRole, logLevel: String, logFormat: LogFormat = .text,
                             drainSeconds: Double, replica: Int? = nil,
                             frontDoor: (([Int]) throws -> FrontDoorConfiguration?)? = nil) async throws {
        let logger = logger(node: replica.map { "\(node)#\($0)" } ?? node, level: logLevel, format: logFormat)
        let ctx = try context(topology: topology, node: node, role: role, replica: replica)
        let door = try frontDoor?(ctx.model.spec.input)
        if door != nil, ctx.stageIndices.first != 0 {
            let first = ctx.model.network.stages[0].name
            throw NodeError("\(topology): node '\(node)' starts at stage \(ctx.stageIndices[0]) ('\(ctx.config.stages.first ?? "")'); applications send the model's "
                + "input, which only a node hosting the first stage ('\(first)') takes: serve them from that node (branchy-device serve for a device)")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        do {
            try await serve(ctx, topology: topology, group: group, pool: pool, logger: logger, drainSeconds: drainSeconds, frontDoor: door)
        } catch {
            try? await pool.shutdownGracefully()
            try? await group.shutdownGracefully()
            throw error
        }
        try? await pool.shutdownGracefully()
        try? await group.shutdownGracefully()
    }

    private static func serve(_ ctx: NodeContext, topology: String, group: MultiThreadedEventLoopGroup, pool: NIOThreadPool, logger: Logger,
                              drainSeconds: Double, frontDoor: FrontDoorConfiguration?) async throws {
        let metrics = ctx.config.metrics.map { _ in Self.metrics(for: ctx) }
        let acceptBackoff = AcceptBackoff(logger: logger)
        let server = try InferenceServer(context: ctx, group: group, pool: pool, logger: logger, drainSeconds: drainSeconds, metrics: metrics,
                                         acceptBackoff: acceptBackoff)
        // Bound before the group runs, so that a busy port stops the node with its error.
        try await server.start()
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let link = server.link { services.append(.init(service: UpstreamService(pool: link))) }
        if let endpoint = ctx.config.metrics, let metrics {
            services.append(.init(service: MetricsService(endpoint: endpoint, metrics: metrics, group: group, logger: logger,
                                                          acceptBackoff: acceptBackoff) { await server.notReadyBecause() }))
        }
        services.append(.init(service: ReloadService {
            do {
                let changes = try server.reload(topologyPath: topology)
                logger.notice("SIGHUP: reloaded \(topology): \(changes)")
            } catch {
                logger.error("SIGHUP: \(topology) not applied, the running configuration stays: \(error)")
            }
        }))
        services.append(.init(service: server))
        // Applications' requests: this node's stages, in process, as a device computes its own, with
        // a link upward of their own; the front door stops first on shutdown (last in the list).
        let compute = frontDoor == nil ? nil : MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            if let frontDoor, let compute {
                let runner = try DeviceRunner(context: ctx, group: group, logger: logger)
                if let link = runner.link { services.insert(.init(service: UpstreamService(pool: link)), at: 0) }
                services.append(.init(service: try await startFrontDoor(runner, frontDoor, metrics: metrics, group: group, computeLoop: compute.next(),
                                                                        logger: logger)))
            }
            try await ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
        } catch {
            try? await compute?.shutdownGracefully()
            throw error
        }
        try? await compute?.shutdownGracefully()
    }

    /// Runs a device node: the upstream link, the metrics endpoint (when it has one) and `job` (its
    /// run over the data set) in one `ServiceGroup`; when the job is done, or on SIGTERM or SIGINT
    /// (which cancel the job: samples in flight are answered, no new ones start), the others stop.
    public static func runDevice(_ device: DeviceRunner, metricsAt endpoint: Endpoint?, group: any EventLoopGroup, logger: Logger,
                                 job: @escaping @Sendable () async throws -> Void) async throws {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let link = device.link { services.append(.init(service: UpstreamService(pool: link))) }
        if let endpoint, let metrics = device.metrics {
            services.append(.init(service: MetricsService(endpoint: endpoint, metrics: metrics, group: group, logger: logger,
                                                          acceptBackoff: AcceptBackoff(logger: logger)) { await device.notReadyBecause() }))
        }
        services.append(.init(service: JobService(job), successTerminationBehavior: .gracefullyShutdownGroup))
        try await ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
    }

    /// Serves a device's front door (HTTP and gRPC, as `frontDoor` says) until SIGTERM or SIGINT:
    /// applications' requests are batched on a compute thread of their own and each sample goes
    /// upward when the device is not sure, as in a batch run. The link, the metrics endpoint and the
    /// front door run in one `ServiceGroup`; on shutdown the front door stops taking requests first.
    public static func serveDevice(_ device: DeviceRunner, frontDoor: FrontDoorConfiguration, metricsAt endpoint: Endpoint?,
                                   group: any EventLoopGroup, computeLoop: any EventLoop, logger: Logger) async throws {
        let door = try await startFrontDoor(device, frontDoor, metrics: device.metrics, group: group, computeLoop: computeLoop, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // Until the link is up, /v2/health/ready answers 503 with the reason.
        if let link = device.link { services.append(.init(service: UpstreamService(pool: link))) }
        if let endpoint, let metrics = device.metrics {
            services.append(.init(service: MetricsService(endpoint: endpoint, metrics: metrics, group: group, logger: logger,
                                                          acceptBackoff: AcceptBackoff(logger: logger)) { await device.notReadyBecause() }))
        }
        services.append(.init(service: door))
        try await ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
    }

    /// Binds the front door of `device` (HTTP, then gRPC) and gives the service that closes it on shutdown.
    static func startFrontDoor(_ device: DeviceRunner, _ config: FrontDoorConfiguration, metrics: NodeMetrics?, group: any EventLoopGroup,
                               computeLoop: any EventLoop, logger: Logger) async throws -> FrontDoorService {
        let backend = DeviceInferenceBackend(device: device, computeLoop: computeLoop, name: config.modelName, policy: config.policy)
        var server: FrontDoorServer? = nil
        if let http = config.http {
            do {
                server = try await FrontDoorServer.start(host: http.host, port: http.port, backend: backend, group: group, limits: config.limits,
                                                         readTimeout: .milliseconds(Int64(config.readTimeoutSeconds * 1000)), observer: { status, infer, nanos in
                    metrics?.frontDoor(protocol: "http", infer: infer, code: String(status), nanos: nanos)
                }, tls: try config.tls?.serverContext())
            } catch let error as FrontDoorTLSError {
                throw error
            } catch {
                throw NodeError("could not serve HTTP at \(http): \(error)")
            }
        }
        var grpcServer: FrontDoorGRPCServer? = nil
        if let grpc = config.grpc {
            do {
                grpcServer = try await FrontDoorGRPCServer.start(host: grpc.host, port: grpc.port, backend: backend, limits: config.limits, observer: { status, infer, nanos in
                    metrics?.frontDoor(protocol: "grpc", infer: infer, code: String(status), nanos: nanos)
                }, tls: config.tls)
            } catch {
                await server?.close()
                throw NodeError("could not serve gRPC at \(grpc): \(error)")
            }
        }
        let secure = config.tls == nil ? "" : config.tls?.clientCA == nil ? " (TLS)" : " (mutual TLS)"
        let at = [config.http.map { "\(config.tls == nil ? "http" : "https")://\($0)" }, config.grpc.map { "grpc://\($0)" }].compactMap { $0 }
        logger.notice("serving model '\(backend.metadata.name)' over the Open Inference Protocol at \(at.joined(separator: " and "))\(secure)")
        return FrontDoorService(server: server, grpc: grpcServer, logger: logger)
    }
}
