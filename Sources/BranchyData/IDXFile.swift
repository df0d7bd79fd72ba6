import Foundation

/// The two IDX layouts used by MNIST-style data sets.
enum IDXKind {
    /// Unsigned bytes, three dimensions: count × rows × cols.
    case images
    /// Unsigned bytes, one dimension: count.
    case labels

    /// Expected magic number: type code 0x08 (unsigned byte) and the number of dimensions.
    var magic: UInt32 { self == .images ? 0x0000_0803 : 0x0000_0801 }

    /// Names of the header dimensions, in file order.
    var fields: [String] { self == .images ? ["count", "rows", "cols"] : ["count"] }

    /// Header size in bytes: magic plus one 32-bit big-endian word per dimension.
    var headerSize: Int { 4 + 4 * fields.count }
}

/// A parsed IDX file: its header dimensions and the raw payload bytes.
struct IDXFile {
    var dimensions: [Int]
    var payload: ArraySlice<UInt8>

    /// Reads `url`, inflating it if it starts with the gzip magic, and checks the
    /// header and payload size against `kind`.
    static func read(_ url: URL, kind: IDXKind) throws -> IDXFile {
        let file = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw IDXError.fileMissing(file: file)
        }
        let raw: Data
        do {
            raw = try Data(contentsOf: url)
        } catch {
            throw IDXError.unreadable(file: file, reason: "\(error)")
        }
        if Gzip.isGzip(raw) { return try inflate(raw, kind: kind, file: file) }
        return try parse([UInt8](raw), kind: kind, file: file)
    }

    /// Inflates a gzip-compressed IDX file: first its header, then exactly the payload the
    /// header announces. Inflated data beyond that is an error, found without inflating it.
    static func inflate(_ compressed: Data, kind: IDXKind, file: String) throws -> IDXFile {
        let reader = try Gzip(compressed, file: file)
        var bytes = try reader.read(kind.headerSize)
        let (dimensions, expected) = try header(bytes, kind: kind, file: file)
        bytes += try reader.read(expected - bytes.count)
        guard bytes.count == expected else { throw IDXError.truncated(file: file, expected: expected, got: bytes.count) }
        guard try reader.isAtEnd() else { throw IDXError.inflatesBeyondHeader(file: file, expected: expected) }
        return IDXFile(dimensions: dimensions, payload: bytes[kind.headerSize...])
    }

    /// Checks magic, dimensions and size of decompressed IDX bytes.
    static func parse(_ bytes: [UInt8], kind: IDXKind, file: String) throws -> IDXFile {
        let (dimensions, expected) = try header(bytes, kind: kind, file: file)
        guard bytes.count >= expected else {
            throw IDXError.truncated(file: file, expected: expected, got: bytes.count)
        }
        guard bytes.count == expected else {
            throw IDXError.trailingData(file: file, expected: expected, got: bytes.count)
        }
        return IDXFile(dimensions: dimensions, payload: bytes[kind.headerSize...])
    }

    /// Checks the header at the start of `bytes` (which may hold only the header) and returns
    /// its dimensions and the size of the whole file it announces, header included.
    static func header(_ bytes: [UInt8], kind: IDXKind, file: String) throws -> (dimensions: [Int], fileSize: Int) {
        func word(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
        }
        guard bytes.count >= 4 else {
            throw IDXError.truncated(file: file, expected: kind.headerSize, got: bytes.count)
        }
        let magic = word(0)
        guard magic == kind.magic else {
            throw IDXError.badMagic(file: file, expected: kind.magic, found: magic)
        }
        guard bytes.count >= kind.headerSize else {
            throw IDXError.truncated(file: file, expected: kind.headerSize, got: bytes.count)
        }
        var dimensions = [Int]()
        var payloadSize = 1
        var overflow = false
        for (i, field) in kind.fields.enumerated() {
            let value = Int(word(4 + 4 * i))
            guard value > 0 else { throw IDXError.zeroDimension(file: file, field: field) }
            dimensions.append(value)
            let product = payloadSize.multipliedReportingOverflow(by: value)
            payloadSize = product.partialValue
            overflow = overflow || product.overflow
        }
        guard !overflow else { throw IDXError.dimensionsTooLarge(file: file, dimensions: dimensions) }
        guard payloadSize <= IDXDataset.maxPayloadBytes else {
            throw IDXError.payloadTooLarge(file: file, dimensions: dimensions, bytes: payloadSize, limit: IDXDataset.maxPayloadBytes)
        }
        return (dimensions, kind.headerSize + payloadSize)
    }
}
