import BranchyData
import BranchyTopology
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The bodies of the node executables, kept here so that the executables stay thin.
public enum NodeMain {
    /// Sends swift-log output to stderr at `level`, labelled with the node name.
    public static func logger(node: String, level: String) -> Logger {
        let lvl = Logger.Level(rawValue: level) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = lvl
            return h
        }
        return Logger(label: node)
    }

    /// Loads the node and checks it has the role the executable serves.
    public static func context(topology: String, node: String, role: BranchyTopology.NodeRole) throws -> NodeContext {
        let ctx = try NodeContext.load(topologyPath: topology, nodeName: node)
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
            throw NodeError("\(context.topology.fileURL.path): no 'dataset:' key and no --dataset given; name the IDX data set to classify")
        }
        return url.path
    }

    /// Serves an edge or cloud node until SIGINT or SIGTERM, then drains and returns.
    public static func serve(topology: String, node: String, role: BranchyTopology.NodeRole, logLevel: String, drainSeconds: Double) async throws {
        let logger = logger(node: node, level: logLevel)
        let ctx = try context(topology: topology, node: node, role: role)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        do {
            let server = try InferenceServer(context: ctx, group: group, pool: pool, logger: logger, drainSeconds: drainSeconds)
            try await server.start()
            let services = ServiceGroup(configuration: .init(
                services: [.init(service: server)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
            try await services.run()
        } catch {
            try? await pool.shutdownGracefully()
            try? await group.shutdownGracefully()
            throw error
        }
        try? await pool.shutdownGracefully()
        try? await group.shutdownGracefully()
    }
}
