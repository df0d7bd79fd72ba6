import ArgumentParser
import BranchyNode
import BranchyNodeOptions
import BranchyObservability
import BranchyTopology
import NIOPosix

/// Serves the device's slice to applications over the Open Inference Protocol (HTTP/REST and gRPC).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve",
        abstract: "Serve applications' requests over the Open Inference Protocol (KServe v2) over HTTP and gRPC; samples the device is not sure of go upward.",
        discussion: """
            Endpoints: GET /v2/health/live, /v2/health/ready, /v2/models/NAME, /v2/models/NAME/ready, /v2/models/NAME/config; \
            POST /v2/models/NAME/infer (JSON tensors, or Triton's binary tensor data). Input 'input': FP32 as the model takes it, \
            or UINT8 pixels prepared as the model card says. Outputs 'class' and 'probabilities' of the exit that answered. \
            Request parameters 'deadline_ms' and 'device_only'. gRPC: Triton's inference.GRPCInferenceService (ServerLive, ServerReady, \
            ModelReady, ModelMetadata, ModelConfig, ModelInfer, ModelStreamInfer).
            """)

    @Option(help: "Topology file.") var topology: String
    @Option(help: "Name of this node in the topology.") var node: String
    @OptionGroup var frontDoor: FrontDoorOptions
    @Option(help: "Log level.") var logLevel = "info"
    @Option(help: "Log format: text or json.") var logFormat: LogFormat = .text
    @Option(help: "Serve /metrics, /healthz and /readyz here (HOST:PORT; default: the node's 'metrics:' in the topology, if any).")
    var metrics: String?

    func validate() throws {
        if let metrics { do { _ = try Endpoint(parsing: metrics) } catch { throw ValidationError("--metrics: \(error)") } }
    }

    func run() async throws {
        let logger = NodeMain.logger(node: node, level: logLevel, format: logFormat)
        let ctx = try NodeMain.context(topology: topology, node: node, role: .device)
        guard let config = try frontDoor.configuration(defaultHTTP: "127.0.0.1:8000", defaultGRPC: "127.0.0.1:8001", input: ctx.model.spec.input) else {
            throw ValidationError("--http off and --grpc off: nothing to serve")
        }
        let metricsAddress = try self.metrics.map { try Endpoint(parsing: $0) } ?? ctx.config.metrics
        // One loop for the link and the HTTP connections, one to compute batches on.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let compute = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let device = try DeviceRunner(context: ctx, group: group, logger: logger, metrics: metricsAddress.map { _ in NodeMain.metrics(for: ctx) })
        do {
            try await NodeMain.serveDevice(device, frontDoor: config, metricsAt: metricsAddress, group: group, computeLoop: compute.next(), logger: logger)
        } catch {
            try? await compute.shutdownGracefully()
            try? await group.shutdownGracefully()
            throw error
        }
        try? await compute.shutdownGracefully()
        try? await group.shutdownGracefully()
    }
}
