import BranchyData
import BranchyTopology
import Foundation
import Logging
import NIOCore
import NIOPosix

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

    /// Serves an edge or cloud node until SIGINT or SIGTERM, then drains and returns.
    public static func serve(topology: String, node: String, role: BranchyTopology.NodeRole, logLevel: String, drainSeconds: Double) throws {
        let logger = logger(node: node, level: logLevel)
        let ctx = try context(topology: topology, node: node, role: role)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        let server = try InferenceServer(context: ctx, group: group, pool: pool, logger: logger)
        try server.start()
        let stop = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { stop.signal() }
            s.resume()
            sources.append(s)
        }
        stop.wait()
        server.drain(graceSeconds: drainSeconds)
        try? pool.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
        _ = sources
    }
}
