import BranchyFrontDoor
import BranchyServing
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NIOPosix

/// A gRPC listener (HTTP/2, plaintext or TLS) serving ``FrontDoorGRPCService`` for one backend.
public final class FrontDoorGRPCServer: Sendable {
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let serving: Task<Void, any Error>
    private let group: MultiThreadedEventLoopGroup
    /// The bound port (the one chosen when 0 was asked for).
    public let port: Int

    /// Binds `host`:`port` and serves until ``close()``. `limits.maxBodyBytes` caps a request message.
    /// With `tls`, calls are over TLS (mutual when it names a client CA).
    public static func start(host: String, port: Int, backend: any InferenceBackend, limits: InferenceRequest.Limits = .init(),
                             observer: FrontDoorObserver? = nil, tls: FrontDoorTLS? = nil) async throws -> FrontDoorGRPCServer {
        var config = HTTP2ServerTransport.Posix.Config.defaults
        config.rpc.maxRequestPayloadSize = limits.maxBodyBytes
        var security = HTTP2ServerTransport.Posix.TransportSecurity.plaintext
        if let tls {
            _ = try tls.serverContext()  // the files checked, with errors that name them
            let chain: [TLSConfig.CertificateSource] = [.file(path: tls.certificate, format: .pem)]
            let key = TLSConfig.PrivateKeySource.file(path: tls.privateKey, format: .pem)
            if let ca = tls.clientCA {
                security = .mTLS(certificateChain: chain, privateKey: key) { c in
                    c.trustRoots = .certificates([.file(path: ca, format: .pem)])
                    c.clientCertificateVerification = .noHostnameVerification
                }
            } else {
                security = .tls(certificateChain: chain, privateKey: key)
            }
        }
        // One thread reads the calls and runs their handlers (the task executor is inherited by the
        // server's tasks): a call answered at once takes no thread hop.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: host, port: port), transportSecurity: security, config: config,
                                                          eventLoopGroup: group),
                                services: [FrontDoorGRPCService(backend: backend, limits: limits, observer: observer)])
        let serving = Task(executorPreference: EventLoopTaskExecutor(loop: group.next())) { try await server.serve() }
        guard let address = try await server.listeningAddress else {
            serving.cancel()
            try? await group.shutdownGracefully()
            throw FrontDoorGRPCError("the gRPC server at \(host):\(port) did not start listening")
        }
        let bound = address.ipv4?.port ?? address.ipv6?.port ?? port
        return FrontDoorGRPCServer(server: server, serving: serving, group: group, port: bound)
    }

    private init(server: GRPCServer<HTTP2ServerTransport.Posix>, serving: Task<Void, any Error>, group: MultiThreadedEventLoopGroup, port: Int) {
        self.server = server
        self.serving = serving
        self.group = group
        self.port = port
    }

    /// Stops taking calls, lets those in progress finish, and returns when the server has stopped.
    public func close() async {
        server.beginGracefulShutdown()
        _ = try? await serving.value
        try? await group.shutdownGracefully()
    }
}

/// Why the gRPC front door could not start.
public struct FrontDoorGRPCError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
