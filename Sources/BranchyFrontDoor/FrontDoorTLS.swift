import Foundation
import NIOSSL

/// TLS for a front door serving beyond loopback: the server's certificate chain and key (PEM
/// files), and optionally a CA whose certificates clients must present (mutual TLS).
public struct FrontDoorTLS: Sendable, Equatable {
    /// The server's certificate chain, leaf first (PEM).
    public var certificate: String
    /// The leaf certificate's private key (PEM).
    public var privateKey: String
    /// When set, a client must present a certificate signed by this CA (PEM).
    public var clientCA: String?

    public init(certificate: String, privateKey: String, clientCA: String? = nil) {
        self.certificate = certificate; self.privateKey = privateKey; self.clientCA = clientCA
    }

    /// The HTTP side's context (TLS 1.2 or later; client certificates verified against `clientCA`
    /// when set, without a host name check). Throws a ``FrontDoorTLSError`` naming the file that
    /// cannot be read or does not fit.
    public func serverContext() throws -> NIOSSLContext {
        func read<T>(_ path: String, _ what: String, _ load: (String) throws -> T) throws -> T {
            guard FileManager.default.isReadableFile(atPath: path) else { throw FrontDoorTLSError("\(what) \(path): no such readable file") }
            do { return try load(path) } catch { throw FrontDoorTLSError("\(what) \(path): not usable PEM: \(error)") }
        }
        let chain = try read(certificate, "--tls-cert") { try NIOSSLCertificate.fromPEMFile($0) }
        guard !chain.isEmpty else { throw FrontDoorTLSError("--tls-cert \(certificate): no certificate in the file") }
        let key = try read(privateKey, "--tls-key") { try NIOSSLPrivateKey(file: $0, format: .pem) }
        var c = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        if let clientCA {
            let roots = try read(clientCA, "--tls-client-ca") { try NIOSSLCertificate.fromPEMFile($0) }
            c.trustRoots = .certificates(roots)
            c.certificateVerification = .noHostnameVerification
        }
        do { return try NIOSSLContext(configuration: c) } catch {
            throw FrontDoorTLSError("--tls-cert \(certificate) and --tls-key \(privateKey) do not make a TLS server (does the key belong to the certificate?): \(error)")
        }
    }

    /// Whether `host` is a loopback address, where serving without TLS is allowed.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// Why the front door's TLS files cannot be used.
public struct FrontDoorTLSError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
