import BranchyTopology
import Foundation
import NIOCore
import NIOEmbedded
import NIOSSL

/// Mutual TLS 1.3 between nodes: every node presents a certificate from the cluster CA, and
/// a peer's identity is the node name in its certificate's DNS names — never the address it
/// was reached at. Certificates carry no IP addresses and no `localhost`.
public enum TLSLayer {
    /// Server side: requires a client certificate signed by the CA.
    public static func serverContext(_ files: TLSFiles, node: String) throws -> NIOSSLContext {
        try serverContext(load(files, node: node))
    }

    private static func serverContext(_ material: Material) throws -> NIOSSLContext {
        let (chain, key, ca) = material
        var c = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key), trustRoots: .certificates(ca))
        c.minimumTLSVersion = .tlsv13
        return try NIOSSLContext(configuration: c)
    }

    /// Client side: presents this node's certificate and verifies the server's chain against the
    /// CA. The server's name is checked by ``peer(of:isNamed:)`` once the handshake is done:
    /// swift-nio-ssl's own hostname check would also accept a certificate naming the dialled IP.
    public static func clientContext(_ files: TLSFiles, node: String) throws -> NIOSSLContext {
        try clientContext(load(files, node: node))
    }

    private static func clientContext(_ material: Material) throws -> NIOSSLContext {
        let (chain, key, ca) = material
        var c = TLSConfiguration.makeClientConfiguration()
        c.certificateChain = chain.map { .certificate($0) }
        c.privateKey = .privateKey(key)
        c.trustRoots = .certificates(ca)
        c.certificateVerification = .noHostnameVerification
        c.minimumTLSVersion = .tlsv13
        return try NIOSSLContext(configuration: c)
    }

    /// Checks at start-up that this node's certificate names the node and is signed by the CA
    /// it trusts, by running a TLS handshake with itself in memory. Throws a `NodeError` naming
    /// the files otherwise.
    public static func selfCheck(_ files: TLSFiles, node: String) throws {
        let material = try load(files, node: node)
        let names = dnsNames(of: material.chain[0])
        guard names.contains(node) else {
            throw NodeError("node '\(node)': certificate \(files.cert.path) names \(names.isEmpty ? "no DNS name" : names.joined(separator: ", ")), "
                                + "not '\(node)' (scripts/gen-certs.sh makes one per node)")
        }
        let client = EmbeddedChannel()
        let server = EmbeddedChannel()
        /// Moves bytes between the two ends until neither has anything to send.
        func pump() throws {
            var moved = true
            while moved {
                moved = false
                while let bytes = try client.readOutbound(as: ByteBuffer.self) {
                    try server.writeInbound(bytes)
                    moved = true
                }
                while let bytes = try server.readOutbound(as: ByteBuffer.self) {
                    try client.writeInbound(bytes)
                    moved = true
                }
            }
        }
        do {
            try client.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: clientContext(material), serverHostname: nil))
            try server.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: serverContext(material)))
            client.pipeline.fireChannelActive()
            server.pipeline.fireChannelActive()
            try pump()
        } catch let error as NodeError {
            throw error
        } catch {
            throw NodeError("node '\(node)': certificate \(files.cert.path) is not accepted by the CA in \(files.ca.path) "
                                + "(is it signed by that CA?): \(error)")
        }
        // Close both ends with close_notify exchanged, so neither waits for the other.
        client.close(promise: nil)
        try? pump()
        server.close(promise: nil)
        try? pump()
        _ = try? client.finish(acceptAlreadyClosed: true)
        _ = try? server.finish(acceptAlreadyClosed: true)
    }

    /// A node's certificate chain, private key and trusted CA certificates.
    private typealias Material = (chain: [NIOSSLCertificate], key: NIOSSLPrivateKey, ca: [NIOSSLCertificate])

    private static func load(_ files: TLSFiles, node: String) throws -> Material {
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

    /// When the node's own certificate (the first of its chain) expires, in seconds since the Unix
    /// epoch; nil when it cannot be read.
    public static func certificateExpiry(_ files: TLSFiles) -> Double? {
        guard let cert = try? NIOSSLCertificate.fromPEMFile(files.cert.path).first else { return nil }
        return Double(cert.notValidAfter)
    }

    /// DNS names (subject alternative names) of a certificate.
    public static func dnsNames(of cert: NIOSSLCertificate) -> [String] {
        cert._subjectAlternativeNames().compactMap { san in
            san.nameType == .dnsName ? String(decoding: Array(san.contents), as: UTF8.self) : nil
        }
    }

    /// The DNS names of the TLS peer's certificate on `pipeline`; empty before the handshake.
    /// Call on the channel's event loop.
    public static func peerNames(of pipeline: ChannelPipeline) -> [String] {
        guard let cert = try? pipeline.syncOperations.nioSSL_peerCertificate() else { return [] }
        return dnsNames(of: cert)
    }

    /// Whether the TLS peer of `pipeline` holds a certificate for `name`. Call on the event loop.
    public static func peer(of pipeline: ChannelPipeline, isNamed name: String) -> Bool {
        peerNames(of: pipeline).contains(name)
    }
}
