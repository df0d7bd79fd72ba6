/// A failure while reading or writing a safetensors file. Every case names the file
/// (`"<memory>"` when decoding bytes that did not come from a file) and, where one is
/// involved, the tensor.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file does not exist (or is a directory).
    case fileMissing(file: String)
    /// The file exists but could not be read.
    case unreadable(file: String, reason: String)
    /// The file is too short to hold the 8-byte header length.
    case tooShort(file: String, size: Int)
    /// The header length exceeds the sanity limit.
    case headerTooLarge(file: String, headerLength: UInt64, limit: Int)
    /// The header length runs past the end of the file.
    case headerBeyondFile(file: String, headerLength: UInt64, fileSize: Int)
    /// The header bytes are not valid UTF-8.
    case headerNotUTF8(file: String)
    /// The header is not valid JSON.
    case headerNotJSON(file: String, reason: String)
    /// The header is valid JSON but not an object.
    case headerNotObject(file: String)
    /// `__metadata__` is not an object of strings.
    case badMetadata(file: String, reason: String)
    /// A tensor entry is not a JSON object.
    case entryNotObject(file: String, tensor: String)
    /// A tensor entry lacks `dtype`, `shape` or `data_offsets`.
    case missingField(file: String, tensor: String, field: String)
    /// A tensor entry field has the wrong JSON type.
    case wrongType(file: String, tensor: String, field: String, expected: String)
    /// The dtype is not one this reader converts to `Float`.
    case unsupportedDType(file: String, tensor: String, dtype: String)
    /// A dimension is negative.
    case negativeDimension(file: String, tensor: String, shape: [Int])
    /// The shape's element count (or its byte size) overflows.
    case shapeTooLarge(file: String, tensor: String, shape: [Int])
    /// The shape has more elements than ``SafeTensors/maxTensorElements``.
    case tensorTooLarge(file: String, tensor: String, shape: [Int], limit: Int)
    /// `data_offsets` has `begin > end`.
    case offsetsReversed(file: String, tensor: String, begin: Int, end: Int)
    /// `data_offsets` lies (partly) outside the data section.
    case offsetsOutOfRange(file: String, tensor: String, begin: Int, end: Int, dataSize: Int)
    /// The byte range does not match shape × dtype size.
    case sizeMismatch(file: String, tensor: String, dtype: String, shape: [Int], expectedBytes: Int, actualBytes: Int)
    /// Two tensors' byte ranges overlap.
    case overlap(file: String, tensor: String, other: String)
    /// Bytes `begin..<end` of the data section belong to no tensor.
    case unusedBytes(file: String, begin: Int, end: Int, dataSize: Int)
    /// Writing the file failed.
    case writeFailed(file: String, reason: String)

    public var description: String {
        switch self {
        case .fileMissing(let file):
            return "\(file): no such file"
        case .unreadable(let file, let reason):
            return "\(file): cannot read: \(reason)"
        case .tooShort(let file, let size):
            return "\(file): \(size) bytes is too short for a safetensors file (needs at least the 8-byte header length)"
        case .headerTooLarge(let file, let length, let limit):
            return "\(file): header length \(length) exceeds the limit of \(limit) bytes"
        case .headerBeyondFile(let file, let length, let size):
            return "\(file): header length \(length) runs past the end of the file (\(size) bytes, \(max(0, size - 8)) after the length field)"
        case .headerNotUTF8(let file):
            return "\(file): header is not valid UTF-8"
        case .headerNotJSON(let file, let reason):
            return "\(file): header is not valid JSON: \(reason)"
        case .headerNotObject(let file):
            return "\(file): header JSON is not an object"
        case .badMetadata(let file, let reason):
            return "\(file): bad __metadata__: \(reason)"
        case .entryNotObject(let file, let tensor):
            return "\(file): tensor '\(tensor)': entry is not a JSON object"
        case .missingField(let file, let tensor, let field):
            return "\(file): tensor '\(tensor)': missing field '\(field)'"
        case .wrongType(let file, let tensor, let field, let expected):
            return "\(file): tensor '\(tensor)': field '\(field)' must be \(expected)"
        case .unsupportedDType(let file, let tensor, let dtype):
            return "\(file): tensor '\(tensor)': unsupported dtype '\(dtype)' (supported: \(SafeTensors.supportedDTypes.joined(separator: ", ")))"
        case .negativeDimension(let file, let tensor, let shape):
            return "\(file): tensor '\(tensor)': negative dimension in shape \(shape)"
        case .shapeTooLarge(let file, let tensor, let shape):
            return "\(file): tensor '\(tensor)': shape \(shape) is too large"
        case .tensorTooLarge(let file, let tensor, let shape, let limit):
            return "\(file): tensor '\(tensor)': shape \(shape) has more than the limit of \(limit) elements"
        case .offsetsReversed(let file, let tensor, let begin, let end):
            return "\(file): tensor '\(tensor)': data_offsets [\(begin), \(end)] begin after end"
        case .offsetsOutOfRange(let file, let tensor, let begin, let end, let dataSize):
            return "\(file): tensor '\(tensor)': data_offsets [\(begin), \(end)] outside the \(dataSize)-byte data section"
        case .sizeMismatch(let file, let tensor, let dtype, let shape, let expected, let actual):
            return "\(file): tensor '\(tensor)': \(dtype) shape \(shape) needs \(expected) bytes, data_offsets span \(actual)"
        case .overlap(let file, let tensor, let other):
            return "\(file): tensor '\(tensor)' overlaps tensor '\(other)'"
        case .unusedBytes(let file, let begin, let end, let dataSize):
            return "\(file): bytes \(begin)..<\(end) of the \(dataSize)-byte data section belong to no tensor"
        case .writeFailed(let file, let reason):
            return "\(file): cannot write: \(reason)"
        }
    }
}
