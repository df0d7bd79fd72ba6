import ArgumentParser
import BranchyFrontDoor
import BranchyNode
import BranchyNodeOptions
import BranchyObservability
import BranchyServing
import BranchyTopology
import NIOPosix

/// Serves the device's slice to applications over the Open Inference Protocol (HTTP/REST).
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
    @Option(help: "Serve HTTP here (HOST:PORT).") var http = "127.0.0.1:8000"
    @Option(help: "Serve gRPC here (HOST:PORT), or 'off'.") var grpc = "127.0.0.1:8001"
    @Option(help: "The model's name in the protocol (default: its directory's name).") var modelName: String?
    @Option(help: "Most samples one request may carry.") var maxRequestSamples = 64
    @Option(help: "Most samples taken at once (waiting, computing or upstream); past it, requests are refused with 503.") var maxQueue = 256
    @Option(help: "Largest 'deadline_ms' a request may set.") var maxDeadlineMs = 60_000
    @Flag(inversion: .prefixedNo, help: "Whether requests may ask for 'device_only' answers.") var deviceOnly = true
    @Option(help: "Serve over TLS with this certificate chain (PEM); needed to serve beyond loopback.") var tlsCert: String?
    @Option(help: "The private key of --tls-cert (PEM).") var tlsKey: String?
    @Option(help: "Require clients to present a certificate signed by this CA (PEM): mutual TLS.") var tlsClientCa: String?
    @Flag(help: "Serve beyond loopback without TLS (anyone on the network can read and send requests).") var allowPlaintext = false
    @Option(help: "Most bytes of a request body.") var maxBodyBytes = 16 << 20
    @Option(help: "Seconds a client may stall mid-request before it is answered 408.") var readTimeout = 30.0
    @Option(help: "Log level.") var logLevel = "info"
    @Option(help: "Log format: text or json.") var logFormat: LogFormat = .text
    @Option(help: "Serve /metrics, /healthz and /readyz here (HOST:PORT; default: the node's 'metrics:' in the topology, if any).")
    var metrics: String?

    func validate() throws {
        do { _ = try Endpoint(parsing: http) } catch { throw ValidationError("--http: \(error)") }
        if grpc != "off" { do { _ = try Endpoint(parsing: grpc) } catch { throw ValidationError("--grpc: \(error)") } }
        if let metrics { do { _ = try Endpoint(parsing: metrics) } catch { throw ValidationError("--metrics: \(error)") } }
        if !(1...4096).contains(maxRequestSamples) { throw ValidationError("--max-request-samples must be from 1 to 4096") }
        if !(1...1_000_000).contains(maxQueue) { throw ValidationError("--max-queue must be from 1 to 1000000") }
        if !(1...3_600_000).contains(maxDeadlineMs) { throw ValidationError("--max-deadline-ms must be from 1 to 3600000") }
        if !(1024...(1 << 30)).contains(maxBodyBytes) { throw ValidationError("--max-body-bytes must be from 1024 to 1073741824") }
        if !(readTimeout > 0 && readTimeout <= 3600) { throw ValidationError("--read-timeout must be from 0 to 3600 seconds") }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if tlsClientCa != nil, tlsCert == nil { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key") }
        if tlsCert == nil, !allowPlaintext {
            for (flag, address) in [("--http", http), ("--grpc", grpc)] where address != "off" {
                if let e = try? Endpoint(parsing: address), !FrontDoorTLS.isLoopback(e.host) {
                    throw ValidationError("\(flag) \(address) is beyond loopback: give --tls-cert and --tls-key (and --tls-client-ca to require "
                        + "client certificates), or --allow-plaintext")
                }
            }
        }
    }

    func run() async throws {
        let logger = NodeMain.logger(node: node, level: logLevel, format: logFormat)
        let ctx = try NodeMain.context(topology: topology, node: node, role: .device)
        let http = try Endpoint(parsing: self.http)
        let grpc = self.grpc == "off" ? nil : try Endpoint(parsing: self.grpc)
        let metricsAddress = try self.metrics.map { try Endpoint(parsing: $0) } ?? ctx.config.metrics
        // One loop for the link and the HTTP connections, one to compute batches on.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let compute = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let device = try DeviceRunner(context: ctx, group: group, logger: logger, metrics: metricsAddress.map { _ in NodeMain.metrics(for: ctx) })
        let policy = DeviceInferenceBackend.Policy(maxSamplesPerRequest: maxRequestSamples, maxQueued: maxQueue, maxDeadlineMillis: maxDeadlineMs,
                                                   allowDeviceOnly: deviceOnly)
        var limits = InferenceRequest.Limits(maxBodyBytes: maxBodyBytes)
        limits.maxElements = max(limits.maxElements, maxRequestSamples * ctx.model.spec.input.reduce(1, *))
        do {
            try await NodeMain.serveDevice(device, http: http, grpc: grpc, modelName: modelName, policy: policy, limits: limits, readTimeoutSeconds: readTimeout,
                                           tls: tlsCert.map { FrontDoorTLS(certificate: $0, privateKey: tlsKey ?? "", clientCA: tlsClientCa) },
                                           metricsAt: metricsAddress, group: group, computeLoop: compute.next(), logger: logger)
        } catch {
            try? await compute.shutdownGracefully()
            try? await group.shutdownGracefully()
            throw error
        }
        try? await compute.shutdownGracefully()
        try? await group.shutdownGracefully()
    }
}
