import BranchyFrontDoor
import BranchyServing
import BranchyTopology

/// Where and how a node serves applications (the Open Inference Protocol): its HTTP and gRPC
/// addresses, what a request may ask, the request limits and TLS.
public struct FrontDoorConfiguration: Sendable {
    /// HTTP/REST (nil: not served).
    public var http: Endpoint?
    /// gRPC (nil: not served).
    public var grpc: Endpoint?
    /// The model's name in the protocol (nil: its directory's name).
    public var modelName: String?
    public var policy: DeviceInferenceBackend.Policy
    public var limits: InferenceRequest.Limits
    /// Seconds a client may stall mid-request before it is answered 408.
    public var readTimeoutSeconds: Double
    public var tls: FrontDoorTLS?

    public init(http: Endpoint?, grpc: Endpoint?, modelName: String? = nil, policy: DeviceInferenceBackend.Policy = .init(),
                limits: InferenceRequest.Limits = .init(), readTimeoutSeconds: Double = 30, tls: FrontDoorTLS? = nil) {
        self.http = http; self.grpc = grpc; self.modelName = modelName; self.policy = policy; self.limits = limits
        self.readTimeoutSeconds = readTimeoutSeconds; self.tls = tls
    }
}
