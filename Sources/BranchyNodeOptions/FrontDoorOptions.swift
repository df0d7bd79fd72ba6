import ArgumentParser
import BranchyFrontDoor
import BranchyNode
import BranchyServing
import BranchyTopology

/// The front door's options, shared by `branchy-device serve` and the server executables (which
/// serve applications only when given `--http` or `--grpc`, and only from a node hosting the first stage).
public struct FrontDoorOptions: ParsableArguments {
    @Option(help: "Serve the Open Inference Protocol over HTTP here (HOST:PORT, or 'off'; branchy-device serve: 127.0.0.1:8000).")
    public var http: String?
    @Option(help: "Serve it over gRPC here (HOST:PORT, or 'off'; branchy-device serve: 127.0.0.1:8001).") public var grpc: String?
    @Option(help: "The model's name in the protocol (default: its directory's name).") public var modelName: String?
    @Option(help: "Most samples one request may carry.") public var maxRequestSamples = 64
    @Option(help: "Most samples taken at once (waiting, computing or upstream); past it, requests are refused with 503.") public var maxQueue = 256
    @Option(help: "Largest 'deadline_ms' a request may set.") public var maxDeadlineMs = 60_000
    @Flag(inversion: .prefixedNo, help: "Whether requests may ask for 'device_only' answers.") public var deviceOnly = true
    @Option(help: "The entropy thresholds a request's 'thresholds' parameter may set (LOW:HIGH, 'any', or 'off').")
    public var thresholdRange = "any"
    @Option(help: "Serve over TLS with this certificate chain (PEM); needed to serve beyond loopback.") public var tlsCert: String?
    @Option(help: "The private key of --tls-cert (PEM).") public var tlsKey: String?
    @Option(help: "Require clients to present a certificate signed by this CA (PEM): mutual TLS.") public var tlsClientCa: String?
    @Flag(help: "Serve beyond loopback without TLS (anyone on the network can read and send requests).") public var allowPlaintext = false
    @Option(help: "Most bytes of a request body.") public var maxBodyBytes = 16 << 20
    @Option(help: "Seconds a client may stall mid-request before it is answered 408.") public var readTimeout = 30.0

    public init() {}

    public func validate() throws {
        for (flag, address) in [("--http", http), ("--grpc", grpc)] {
            if let address, address != "off" { do { _ = try Endpoint(parsing: address) } catch { throw ValidationError("\(flag): \(error)") } }
        }
        if !(1...4096).contains(maxRequestSamples) { throw ValidationError("--max-request-samples must be from 1 to 4096") }
        if !(1...1_000_000).contains(maxQueue) { throw ValidationError("--max-queue must be from 1 to 1000000") }
        if !(1...3_600_000).contains(maxDeadlineMs) { throw ValidationError("--max-deadline-ms must be from 1 to 3600000") }
        if !(1024...(1 << 30)).contains(maxBodyBytes) { throw ValidationError("--max-body-bytes must be from 1024 to 1073741824") }
        if !(readTimeout > 0 && readTimeout <= 3600) { throw ValidationError("--read-timeout must be from 0 to 3600 seconds") }
        _ = try parsedThresholdRange()
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if tlsClientCa != nil, tlsCert == nil { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key") }
    }

    /// `--threshold-range` as a range (nil: `off`).
    func parsedThresholdRange() throws -> ClosedRange<Float>? {
        switch thresholdRange {
        case "off": return nil
        case "any": return DeviceInferenceBackend.Policy.anyThreshold
        default:
            let parts = thresholdRange.split(separator: ":", omittingEmptySubsequences: false)
            let any = DeviceInferenceBackend.Policy.anyThreshold
            guard parts.count == 2, let low = Float(parts[0]), let high = Float(parts[1]), low >= any.lowerBound, high <= any.upperBound, low <= high else {
                throw ValidationError("--threshold-range '\(thresholdRange)': expected LOW:HIGH (two entropies, 0 <= LOW <= HIGH <= 1048576), 'any' or 'off'")
            }
            return low...high
        }
    }

    /// The configuration, with `defaultHTTP` and `defaultGRPC` where `--http` and `--grpc` are not
    /// given; nil when neither is served. Refuses to serve beyond loopback without TLS unless
    /// `--allow-plaintext`. `input` is one sample's shape, which sizes the element limit.
    public func configuration(defaultHTTP: String?, defaultGRPC: String?, input: [Int]) throws -> FrontDoorConfiguration? {
        func endpoint(_ given: String?, _ fallback: String?) throws -> Endpoint? {
            guard let address = given ?? fallback, address != "off" else { return nil }
            return try Endpoint(parsing: address)
        }
        let httpEndpoint = try endpoint(http, defaultHTTP), grpcEndpoint = try endpoint(grpc, defaultGRPC)
        guard httpEndpoint != nil || grpcEndpoint != nil else { return nil }
        if tlsCert == nil, !allowPlaintext {
            for (flag, e) in [("--http", httpEndpoint), ("--grpc", grpcEndpoint)] {
                if let e, !FrontDoorTLS.isLoopback(e.host) {
                    throw ValidationError("\(flag) \(e) is beyond loopback: give --tls-cert and --tls-key (and --tls-client-ca to require "
                        + "client certificates), or --allow-plaintext")
                }
            }
        }
        var limits = InferenceRequest.Limits(maxBodyBytes: maxBodyBytes)
        limits.maxElements = max(limits.maxElements, maxRequestSamples * input.reduce(1, *))
        return FrontDoorConfiguration(
            http: httpEndpoint, grpc: grpcEndpoint, modelName: modelName,
            policy: .init(maxSamplesPerRequest: maxRequestSamples, maxQueued: maxQueue, maxDeadlineMillis: maxDeadlineMs, allowDeviceOnly: deviceOnly,
                          thresholdRange: try parsedThresholdRange()),
            limits: limits, readTimeoutSeconds: readTimeout,
            tls: tlsCert.map { FrontDoorTLS(certificate: $0, privateKey: tlsKey ?? "", clientCA: tlsClientCa) })
    }
}
