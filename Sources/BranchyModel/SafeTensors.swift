import BranchyTensor
import Foundation

/// Reading and writing the safetensors weight format.
///
/// Layout: an 8-byte little-endian `UInt64` header length `N`; `N` bytes of UTF-8 JSON,
/// `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
/// "__metadata__": {"key": "value"}}`, with offsets relative to the start of the data
/// section; then the raw little-endian tensor data.
///
/// Reading accepts `F32`, `F16`, `BF16` and `F64` tensors and converts them to `Float`, and
/// requires the tensors to fill the data section exactly, in any order.
/// Writing produces `F32` only, byte-for-byte as the reference implementation does.
public enum SafeTensors {
    /// Largest header accepted by `read`, in bytes.
    public static let maxHeaderLength = 100_000_000

    /// Most elements `read` accepts in one tensor: no model has a larger one (see ``ModelLimits``).
    public static let maxTensorElements = ModelLimits.maxTensorElements

    /// Reads all tensors and the `__metadata__` strings of a safetensors file.
    public static func read(contentsOf url: URL) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let file = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw SafeTensorsError.fileMissing(file: file)
        }
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw SafeTensorsError.unreadable(file: file, reason: "\(error)")
        }
        return try decode(data, file: file)
    }

    /// Decodes safetensors bytes held in memory.
    /// - Parameter file: Name used in errors.
    public static func decode(_ data: Data, file: String = "<memory>") throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        try data.withUnsafeBytes { try decode($0, file: file) }
    }

    private static func decode(_ bytes: UnsafeRawBufferPointer, file: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard bytes.count >= 8 else { throw SafeTensorsError.tooShort(file: file, size: bytes.count) }
        let headerLength = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(maxHeaderLength) else {
            throw SafeTensorsError.headerTooLarge(file: file, headerLength: headerLength, limit: maxHeaderLength)
        }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw SafeTensorsError.headerBeyondFile(file: file, headerLength: headerLength, fileSize: bytes.count)
        }
        let dataStart = 8 + Int(headerLength)
        let header = try SafeTensorsHeader.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart]), file: file)
        let dataSize = bytes.count - dataStart

        // Validate every entry's byte range before converting anything.
        var spans: [(name: String, range: Range<Int>)] = []
        for entry in header.entries {
            let (begin, end) = (entry.begin, entry.end)
            guard begin <= end else {
                throw SafeTensorsError.offsetsReversed(file: file, tensor: entry.name, begin: begin, end: end)
            }
            guard begin >= 0, end <= dataSize else {
                throw SafeTensorsError.offsetsOutOfRange(file: file, tensor: entry.name, begin: begin, end: end, dataSize: dataSize)
            }
            guard end - begin == entry.byteCount else {
                throw SafeTensorsError.sizeMismatch(file: file, tensor: entry.name, dtype: entry.dtype.rawValue,
                                                    shape: entry.shape, expectedBytes: entry.byteCount, actualBytes: end - begin)
            }
            if begin < end { spans.append((entry.name, begin..<end)) }
        }
        spans.sort { ($0.range.lowerBound, $0.name) < ($1.range.lowerBound, $1.name) }
        for (previous, next) in zip(spans, spans.dropFirst()) where next.range.lowerBound < previous.range.upperBound {
            throw SafeTensorsError.overlap(file: file, tensor: next.name, other: previous.name)
        }
        // Tensors lie back to back from the start of the data section (as the reference
        // implementation requires): no byte belongs to no tensor.
        var covered = 0
        for span in spans + [("", dataSize..<dataSize)] {
            guard span.range.lowerBound == covered else {
                throw SafeTensorsError.unusedBytes(file: file, begin: covered, end: span.range.lowerBound, dataSize: dataSize)
            }
            covered = span.range.upperBound
        }

        var tensors: [String: Tensor] = [:]
        tensors.reserveCapacity(header.entries.count)
        let base = bytes.baseAddress! + dataStart
        for entry in header.entries {
            let values = entry.dtype.decode(base + entry.begin, count: entry.elementCount)
            tensors[entry.name] = Tensor(shape: entry.shape, data: values)
        }
        return (tensors, header.metadata)
    }

    /// Serialises `tensors` as `F32` in safetensors layout.
    ///
    /// Tensors are laid out contiguously in ascending byte order of their names; the header is
    /// compact JSON (`__metadata__` first when `metadata` is non-empty, its keys sorted) padded
    /// with spaces to a multiple of 8 bytes — the same bytes the reference `safetensors`
    /// library writes for float32 tensors.
    ///
    /// - Precondition: no tensor is named `__metadata__`.
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:]) -> Data {
        precondition(tensors["__metadata__"] == nil, "a tensor may not be named __metadata__")
        let names = tensors.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }

        var json = "{"
        var separator = ""
        if !metadata.isEmpty {
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            json += "\"__metadata__\":{"
            json += keys.map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
            json += "}"
            separator = ","
        }
        var offset = 0
        for name in names {
            let tensor = tensors[name]!
            let end = offset + tensor.count * 4
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            json += "\(separator)\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}"
            separator = ","
            offset = end
        }
        json += "}"
        var header = Array(json.utf8)
        header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)

        var out = [UInt8]()
        out.reserveCapacity(8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out += $0 }
        out += header
        for name in names {
            tensors[name]!.data.withUnsafeBufferPointer { values in
                #if _endian(little)
                out += UnsafeRawBufferPointer(values)
                #else
                for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
                #endif
            }
        }
        return Data(out)
    }

    /// Writes `tensors` to `url` as an `F32` safetensors file (see ``encode(_:metadata:)``),
    /// replacing any existing file atomically.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        let data = encode(tensors, metadata: metadata)
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw SafeTensorsError.writeFailed(file: url.path, reason: "\(error)")
        }
    }

    /// A JSON string literal escaped as serde_json does: quote, backslash and control
    /// characters only; everything else, including non-ASCII, verbatim.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
