import BranchyTopology
import Foundation
import NIOCore
import NIOSSL

/// Mutual TLS 1.3 between nodes: every node presents a certificate from the cluster CA, and
/// every peer's certificate must name the node the topology expects on that link.
public enum TLSLayer {
    /// Server side: requires a client certificate signed by the CA.
    public static func serverContext(_ files: TLSFiles, node: String) throws -> NIOSSLContext {
        let (chain, key, ca) = try load(files, node: node)
        var c = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key), trustRoots: .certificates(ca))
        c.minimumTLSVersion = .tlsv13
        return try NIOSSLContext(configuration: c)
    }

    /// Client side: presents this node's certificate and verifies the server's chain and name.
    public static func clientContext(_ files: TLSFiles, node: String) throws -> NIOSSLContext {
        let (chain, key, ca) = try load(files, node: node)
        var c = TLSConfiguration.makeClientConfiguration()
        c.certificateChain = chain.map { .certificate($0) }
        c.privateKey = .privateKey(key)
        c.trustRoots = .certificates(ca)
        c.certificateVerification = .fullVerification
        c.minimumTLSVersion = .tlsv13
        return try NIOSSLContext(configuration: c)
    }

    private static func load(_ files: TLSFiles, node: String) throws -> ([NIOSSLCertificate], NIOSSLPrivateKey, [NIOSSLCertificate]) {
        func read<T>(_ url: URL, _ what: String, _ body: (String) throws -> T) throws -> T {
            do { return try body(url.path) } catch {
                throw NodeError("node '\(node)': cannot load \(what) \(url.path): \(error)")
            }
        }
        let chain = try read(files.cert, "certificate") { try NIOSSLCertificate.fromPEMFile($0) }
        let key = try read(files.key, "private key") { try NIOSSLPrivateKey(file: $0, format: .pem) }
        let ca = try read(files.ca, "CA certificate") { try NIOSSLCertificate.fromPEMFile($0) }
        guard !chain.isEmpty else { throw NodeError("node '\(node)': no certificate in \(files.cert.path)") }
        guard !ca.isEmpty else { throw NodeError("node '\(node)': no CA certificate in \(files.ca.path)") }
        return (chain, key, ca)
    }

    /// DNS names (subject alternative names) of a certificate.
    public static func dnsNames(of cert: NIOSSLCertificate) -> [String] {
        cert._subjectAlternativeNames().compactMap { san in
            san.nameType == .dnsName ? String(decoding: Array(san.contents), as: UTF8.self) : nil
        }
    }

    /// Whether the TLS peer of `pipeline` holds a certificate for `name`. Call on the event loop.
    public static func peer(of pipeline: ChannelPipeline, isNamed name: String) -> Bool {
        guard let cert = try? pipeline.syncOperations.nioSSL_peerCertificate() else { return false }
        return dnsNames(of: cert).contains(name)
    }
}
