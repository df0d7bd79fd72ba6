import NIOCore

/// What one link carried over its whole life, counted below TLS: the payload of `stats`
/// (version 2), with which a server reports its own upstream link to a client that asks
/// (`statsRequest`), so that a device's report can count every link's handshakes.
///
/// Layout of `stats`: a varint count, then per link: name (`UInt8` length + UTF-8), then
/// connections, handshakeBytes, bytesSent and bytesReceived as varints.
public struct LinkTotals: Hashable, Sendable, Codable {
    /// The link, e.g. `edge->cloud`.
    public var link: String
    /// Connections made (1 + reconnects).
    public var connections: UInt64
    /// TLS handshakes plus hello and acknowledgement, both directions, all connections.
    public var handshakeBytes: UInt64
    /// Bytes written to the socket, handshakes included.
    public var bytesSent: UInt64
    /// Bytes read from the socket, handshakes included.
    public var bytesReceived: UInt64

    public init(link: String, connections: UInt64, handshakeBytes: UInt64, bytesSent: UInt64, bytesReceived: UInt64) {
        self.link = link
        self.connections = connections
        self.handshakeBytes = handshakeBytes
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
    }

    /// Most entries a `stats` frame carries.
    public static let maxEntries = 255

    var payloadSize: Int {
        1 + min(link.utf8.count, WireLimits.maxNameBytes) + Varint.size(connections) + Varint.size(handshakeBytes)
            + Varint.size(bytesSent) + Varint.size(bytesReceived)
    }
}

extension PayloadReader {
    mutating func readStats() throws -> [LinkTotals] {
        let count = Int(try varint("links.count", max: UInt64(LinkTotals.maxEntries)))
        var out: [LinkTotals] = []
        for i in 0..<count {
            let length = Int(try integer("links[\(i)].link.length", as: UInt8.self))
            let raw = try bytes("links[\(i)].link", count: length)
            guard let name = String(validating: raw, as: UTF8.self) else {
                throw invalid("links[\(i)].link", value: "\(length) bytes", expected: "valid UTF-8")
            }
            out.append(LinkTotals(link: name, connections: try varint("links[\(i)].connections", max: WireLimits.maxLinkTotal),
                                  handshakeBytes: try varint("links[\(i)].handshakeBytes", max: WireLimits.maxLinkTotal),
                                  bytesSent: try varint("links[\(i)].bytesSent", max: WireLimits.maxLinkTotal), bytesReceived: try varint("links[\(i)].bytesReceived", max: WireLimits.maxLinkTotal)))
        }
        return out
    }
}

extension ByteBuffer {
    @discardableResult
    mutating func writeStats(_ links: [LinkTotals]) -> Int {
        let entries = links.prefix(LinkTotals.maxEntries)
        var written = writeVarint(UInt64(entries.count))
        for l in entries {
            let name = Array(l.link.utf8.prefix(WireLimits.maxNameBytes))
            written += writeInteger(UInt8(name.count)) + writeBytes(name)
            written += writeVarint(l.connections) + writeVarint(l.handshakeBytes) + writeVarint(l.bytesSent) + writeVarint(l.bytesReceived)
        }
        return written
    }
}
