import CBranchyCompression

/// A lossless compressor applied to a tensor's element bytes after its codec, where it makes them
/// smaller. The libraries are loaded when first used (`liblz4.so.1`, `libzstd.so.1`, Debian's
/// `liblz4-1` and `libzstd1`), so a node that never compresses never needs them.
public enum LosslessCompression: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// No compression.
    case none = 0
    /// LZ4 block format.
    case lz4 = 1
    /// One Zstandard frame that states its content size.
    case zstd = 2

    /// Parses `none`, `lz4` or `zstd`.
    public init?(_ name: String) {
        switch name.lowercased() {
        case "none": self = .none
        case "lz4": self = .lz4
        case "zstd": self = .zstd
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .none: return "none"
        case .lz4: return "lz4"
        case .zstd: return "zstd"
        }
    }

    public var description: String { name }

    /// The compression level used for `zstd`.
    public static let zstdLevel: Int32 = 19

    /// Whether the library can be loaded on this machine (always true for `.none`).
    public var isAvailable: Bool { self == .none || bc_available(Int32(rawValue)) != 0 }

    /// The shared library this compressor needs.
    public var libraryName: String { self == .none ? "" : String(cString: bc_library_name(Int32(rawValue))) }

    /// Compresses `bytes`.
    public func compress(_ bytes: [UInt8]) throws -> [UInt8] {
        guard self != .none else { return bytes }
        guard isAvailable else { throw CompressionError.unavailable(self, library: libraryName) }
        let capacity = bytes.count + bytes.count / 16 + 128
        var out = [UInt8](repeating: 0, count: capacity)
        let written = out.withUnsafeMutableBytes { dst in
            bytes.withUnsafeBytes { src in
                bc_compress(Int32(rawValue), dst.baseAddress, capacity, src.baseAddress, bytes.count, Int32(LosslessCompression.zstdLevel))
            }
        }
        guard written > 0 else { throw CompressionError.failed(self, bytes: bytes.count) }
        out.removeLast(capacity - written)
        return out
    }

    /// Decompresses `bytes`, which must give exactly `expected` bytes; never writes more.
    public func decompress(_ bytes: [UInt8], expected: Int) throws -> [UInt8] {
        guard self != .none else { return bytes }
        guard expected > 0 else { throw CompressionError.corrupt(self, expected: expected) }
        var out = [UInt8](repeating: 0, count: expected)
        let status = out.withUnsafeMutableBytes { dst in
            bytes.withUnsafeBytes { src in bc_decompress(Int32(rawValue), dst.baseAddress, expected, src.baseAddress, bytes.count) }
        }
        switch status {
        case 0: return out
        case -1: throw CompressionError.unavailable(self, library: libraryName)
        default: throw CompressionError.corrupt(self, expected: expected)
        }
    }
}

/// Why compressing or decompressing failed.
public enum CompressionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The compressor's shared library could not be loaded.
    case unavailable(LosslessCompression, library: String)
    /// The compressor reported an error.
    case failed(LosslessCompression, bytes: Int)
    /// The data is not a valid stream that decompresses to exactly the expected size.
    case corrupt(LosslessCompression, expected: Int)

    public var description: String {
        switch self {
        case .unavailable(let m, let lib):
            return "\(m) compression needs the shared library \(lib) (Debian: apt-get install \(m == .zstd ? "libzstd1" : "liblz4-1")), which could not be loaded"
        case .failed(let m, let n): return "\(m) could not compress \(n) bytes"
        case .corrupt(let m, let n): return "\(m) data does not decompress to exactly the expected \(n) bytes"
        }
    }
}

/// A feature codec for one link: a codec kind, optionally followed by lossless compression.
/// Written `KIND` or `KIND+COMPRESSOR`, e.g. `int8`, `int4+zstd`, `sign+lz4`.
public struct FeatureCodec: Sendable, Hashable, CustomStringConvertible {
    public var kind: FeatureCodecKind
    public var compression: LosslessCompression

    public init(_ kind: FeatureCodecKind, compression: LosslessCompression = .none) {
        self.kind = kind
        self.compression = compression
    }

    /// Parses `KIND` or `KIND+COMPRESSOR`.
    public init?(_ name: String) {
        let parts = name.split(separator: "+", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(parts.count), let kind = FeatureCodecKind(parts[0]) else { return nil }
        var compression = LosslessCompression.none
        if parts.count == 2 {
            guard let c = LosslessCompression(parts[1]), c != .none else { return nil }
            compression = c
        }
        self.init(kind, compression: compression)
    }

    /// Every name ``init(_:)`` accepts, for messages.
    public static var namesHelp: String {
        FeatureCodecKind.allCases.map(\.name).joined(separator: ", ") + ", each optionally +lz4 or +zstd"
    }

    public var name: String { compression == .none ? kind.name : "\(kind.name)+\(compression.name)" }
    public var description: String { name }

    /// Encodes `tensor`, compressing its data when that helps.
    public func encode(_ tensor: Tensor) throws -> EncodedTensor {
        try kind.encode(tensor).compressed(with: compression)
    }

    /// The floats a receiver sees (compression is lossless, so the kind alone decides).
    public func roundTrip(_ tensor: Tensor) -> Tensor { kind.roundTrip(tensor) }
}
