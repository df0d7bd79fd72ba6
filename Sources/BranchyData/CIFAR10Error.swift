/// A failure while reading CIFAR-10 binary batches. Every case names the file (or directory) involved.
public enum CIFAR10Error: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file does not exist.
    case fileMissing(file: String)
    /// None of the split's files exists in the directory.
    case notFoundInDirectory(directory: String, split: ImageDataset.Split, expected: [String])
    /// The file exists but could not be read.
    case unreadable(file: String, reason: String)
    /// The file holds no byte.
    case empty(file: String)
    /// The file's size is not a whole number of 3,073-byte records.
    case partialRecord(file: String, size: Int, remainder: Int)
    /// The file holds more than ``ImageDataset/maxPayloadBytes`` (or what is left of it for a split).
    case tooLarge(file: String, bytes: Int, limit: Int)
    /// The files of a split together hold more than ``ImageDataset/maxPayloadBytes``.
    case splitTooLarge(files: [String], bytes: Int, limit: Int)
    /// A record's label byte is not a class index in `0...9`.
    case labelOutOfRange(file: String, record: Int, value: UInt8)

    public var description: String {
        switch self {
        case .fileMissing(let file):
            return "\(file): no such file"
        case .notFoundInDirectory(let directory, let split, let expected):
            let what = split == .train ? "no CIFAR-10 training batch" : "no CIFAR-10 test batch"
            let some = expected.count > 1 ? "; at least one" : ""
            return "\(directory): \(what) found (expected \(expected.joined(separator: ", "))\(some))"
        case .unreadable(let file, let reason):
            return "\(file): cannot read: \(reason)"
        case .empty(let file):
            return "\(file): empty; a CIFAR-10 batch holds records of \(CIFAR10.recordSize) bytes (a label byte and 3×32×32 pixel bytes)"
        case .partialRecord(let file, let size, let remainder):
            return "\(file): \(size) bytes is not a whole number of \(CIFAR10.recordSize)-byte CIFAR-10 records "
                + "(\(size / CIFAR10.recordSize) records and \(remainder) bytes left over): truncated, or not a CIFAR-10 binary batch"
        case .tooLarge(let file, let bytes, let limit):
            return "\(file): \(bytes) bytes, more than the limit of \(limit) for a data set"
        case .splitTooLarge(let files, let bytes, let limit):
            return "\(files.joined(separator: ", ")): \(bytes) bytes together, more than the limit of \(limit) for a data set"
        case .labelOutOfRange(let file, let record, let value):
            return "\(file): label \(value) of record \(record) is out of range 0...9"
        }
    }
}
