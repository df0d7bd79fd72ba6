import NIOCore

/// The tier a node plays in the split network.
public enum NodeRole: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// Captures samples and runs the first stage.
    case device = 1
    /// Runs middle stages close to the devices.
    case edge = 2
    /// Runs the final stages.
    case cloud = 3

    /// Parses `"device"`, `"edge"` or `"cloud"`.
    public init?(_ name: String) {
        switch name.lowercased() {
        case "device": self = .device
        case "edge": self = .edge
        case "cloud": self = .cloud
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .device: return "device"
        case .edge: return "edge"
        case .cloud: return "cloud"
        }
    }
}

/// A 32-byte digest identifying the exact model (architecture, split points and
/// weights). Peers with different fingerprints must not exchange features.
public struct ModelFingerprint: Hashable, Sendable, CustomStringConvertible {
    /// Length of a fingerprint in bytes.
    public static let byteCount = 32

    /// The raw digest bytes, exactly ``byteCount`` of them.
    public let bytes: [UInt8]

    /// Creates a fingerprint from exactly 32 bytes, or returns nil.
    public init?<Bytes: Sequence>(bytes: Bytes) where Bytes.Element == UInt8 {
        let array = Array(bytes)
        guard array.count == ModelFingerprint.byteCount else { return nil }
        self.bytes = array
    }

    /// Parses 64 hexadecimal digits (either case), or returns nil.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 2 * ModelFingerprint.byteCount else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(ModelFingerprint.byteCount)
        var i = 0
        while i < digits.count {
            guard let hi = hexValue(digits[i]), let lo = hexValue(digits[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        self.bytes = out
    }

    /// The all-zero fingerprint, for tests.
    public static let zero = ModelFingerprint(bytes: [UInt8](repeating: 0, count: byteCount))!

    /// Lower-case hexadecimal, 64 digits.
    public var hex: String {
        let table = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(table[Int(b >> 4)])
            out.append(table[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { hex }
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// The payload of `hello` (client → server) and `helloAck` (server → client).
///
/// Layout: protocolVersion `UInt16`, role `UInt8`, nodeName (`UInt16` length + UTF-8,
/// at most 255 bytes), fingerprint (32 raw bytes); in version 2 then a name count `UInt8` and
/// that many names (`UInt8` length + UTF-8): the server's ``NameTable`` (empty from a client).
public struct Hello: Hashable, Sendable {
    /// The version a `Hello` is created with unless told otherwise.
    public static let currentProtocolVersion: UInt16 = 1
    /// The newest version this implementation speaks.
    public static let latestProtocolVersion = UInt16(FrameDialect.latestVersion)

    /// Application protocol version of the sender.
    public var protocolVersion: UInt16
    /// The sender's tier.
    public var role: NodeRole
    /// The sender's node name, as in the topology (at most 255 UTF-8 bytes).
    public var nodeName: String
    /// Fingerprint of the model the sender runs.
    public var fingerprint: ModelFingerprint
    /// Version 2: the names results on this connection refer to by index (sent by the server).
    public var names: NameTable

    /// Creates a hello.
    public init(protocolVersion: UInt16 = Hello.currentProtocolVersion, role: NodeRole,
                nodeName: String, fingerprint: ModelFingerprint, names: NameTable = .empty) {
        self.protocolVersion = protocolVersion
        self.role = role
        self.nodeName = nodeName
        self.fingerprint = fingerprint
        self.names = names
    }

    /// Payload size in the layout of `version` (the names travel in version 2 only).
    func payloadSize(version: UInt8) -> Int {
        2 + 1 + wireStringSize(nodeName) + ModelFingerprint.byteCount
            + (version >= 2 ? 1 + names.names.reduce(0) { $0 + 1 + $1.utf8.count } : 0)
    }

    func validate(as message: MessageType) throws {
        try checkLength(nodeName, max: WireLimits.maxNameBytes, message: message, field: "nodeName")
    }
}

extension PayloadReader {
    mutating func readHello(frameVersion: UInt8 = 1) throws -> Hello {
        let version = try integer("protocolVersion", as: UInt16.self)
        // A version this peer speaks must match the frame's; others are left to the handshake,
        // which answers unsupportedVersion.
        if FrameDialect.supportedVersions.contains(UInt8(clamping: version)) && version != UInt16(frameVersion) {
            throw invalid("protocolVersion", value: "\(version)", expected: "\(frameVersion), the version of the frame header")
        }
        let rawRole = try integer("role", as: UInt8.self)
        guard let role = NodeRole(rawValue: rawRole) else {
            throw invalid("role", value: "\(rawRole)", expected: "1 (device), 2 (edge) or 3 (cloud)")
        }
        let name = try string("nodeName", maxBytes: WireLimits.maxNameBytes)
        let digest = try bytes("fingerprint", count: ModelFingerprint.byteCount)
        var names: [String] = []
        if frameVersion >= 2 {
            let count = Int(try integer("names.count", as: UInt8.self))
            for i in 0..<count {
                let length = Int(try integer("names[\(i)].length", as: UInt8.self))
                let raw = try bytes("names[\(i)]", count: length)
                guard let name = String(validating: raw, as: UTF8.self) else {
                    throw invalid("names[\(i)]", value: "\(length) bytes", expected: "valid UTF-8")
                }
                guard !names.contains(name) else { throw invalid("names[\(i)]", value: "a repeated name", expected: "distinct names") }
                names.append(name)
            }
        }
        return Hello(protocolVersion: version, role: role, nodeName: name,
                     fingerprint: ModelFingerprint(bytes: digest)!, names: NameTable(names))
    }
}

extension ByteBuffer {
    @discardableResult
    mutating func writeHello(_ hello: Hello, version: UInt8 = 1) -> Int {
        var written = 0
        written += writeInteger(hello.protocolVersion)
        written += writeInteger(hello.role.rawValue)
        written += writeWireString(hello.nodeName)
        written += writeBytes(hello.fingerprint.bytes)
        if version >= 2 {
            written += writeInteger(UInt8(hello.names.names.count))
            for n in hello.names.names {
                written += writeInteger(UInt8(n.utf8.count)) + writeString(n)
            }
        }
        return written
    }
}
