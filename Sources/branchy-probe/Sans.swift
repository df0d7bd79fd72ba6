import ArgumentParser
import Foundation
import NIOSSL

/// Every node certificate in CERTS_DIR (`*.pem` but `ca.pem` and `*-key.pem`) names exactly
/// `DNS:<node>`: no IP address, no localhost.
struct Sans: Check {
    static let configuration = CommandConfiguration(abstract: "Checks that every node certificate names only DNS:<node>.")
    @Argument(help: "The folder of the node certificates.") var certs: String

    func check() async throws {
        var checked = 0
        let names = try FileManager.default.contentsOfDirectory(atPath: certs).sorted()
        for name in names where name.hasSuffix(".pem") && name != "ca.pem" && !name.hasSuffix("-key.pem") {
            let node = String(name.dropLast(4))
            let path = URL(fileURLWithPath: certs).appendingPathComponent(name).path
            guard let cert = try NIOSSLCertificate.fromPEMFile(path).first else { throw CheckFailed("no certificate in \(name)") }
            let values = cert._subjectAlternativeNames().map { san -> String in
                let bytes = Array(san.contents)
                switch san.nameType {
                case .dnsName: return "DNS:" + String(decoding: bytes, as: UTF8.self)
                case .ipAddress: return "IP Address:" + bytes.map { "\($0)" }.joined(separator: ".")
                default: return "other:" + String(decoding: bytes, as: UTF8.self)
                }
            }
            let all = values.isEmpty ? "nothing" : values.joined(separator: ", ")
            try require(!values.contains { $0.hasPrefix("IP") }, "\(name) names an IP address: \(all)")
            try require(!values.contains { $0.contains("localhost") }, "\(name) names localhost: \(all)")
            try require(values == ["DNS:\(node)"], "\(name) names \(all), not only DNS:\(node)")
            checked += 1
        }
        try require(checked > 0, "no node certificate in \(certs)")
        print("\(checked) certificates in \(URL(fileURLWithPath: certs).standardized.lastPathComponent)/ name only DNS:<node>")
    }
}
