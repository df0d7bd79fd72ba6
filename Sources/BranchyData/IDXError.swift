/// A failure while reading an IDX data set. Every case names the file involved.
public enum IDXError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file does not exist.
    case fileMissing(file: String)
    /// None of the candidate names exists in the directory.
    case notFoundInDirectory(directory: String, candidates: [String])
    /// `load(path:)` was given a file whose name neither contains `images-idx3` (so the
    /// matching labels file cannot be derived from it) nor ends in `.bin` (a CIFAR-10 batch).
    case notAnImagesFile(file: String)
    /// The file exists but could not be read.
    case unreadable(file: String, reason: String)
    /// The file starts with the gzip magic but does not inflate.
    case badGzip(file: String, reason: String)
    /// The first four bytes are not the expected IDX magic number.
    case badMagic(file: String, expected: UInt32, found: UInt32)
    /// A dimension in the header is zero.
    case zeroDimension(file: String, field: String)
    /// The header dimensions multiply to more bytes than can be addressed.
    case dimensionsTooLarge(file: String, dimensions: [Int])
    /// The header dimensions announce more payload bytes than ``IDXDataset/maxPayloadBytes``.
    case payloadTooLarge(file: String, dimensions: [Int], bytes: Int, limit: Int)
    /// A gzip-compressed file inflates to more bytes than its header promises (the rest is not inflated).
    case inflatesBeyondHeader(file: String, expected: Int)
    /// The (decompressed) file holds fewer bytes than its header promises.
    case truncated(file: String, expected: Int, got: Int)
    /// The (decompressed) file holds more bytes than its header promises.
    case trailingData(file: String, expected: Int, got: Int)
    /// The images and labels files disagree on the number of items.
    case countMismatch(images: String, imageCount: Int, labels: String, labelCount: Int)
    /// A label is not a class index in `0...9`.
    case labelOutOfRange(file: String, index: Int, value: UInt8)

    public var description: String {
        switch self {
        case .fileMissing(let file):
            return "\(file): no such file"
        case .notFoundInDirectory(let directory, let candidates):
            return "\(directory): none of \(candidates.joined(separator: ", ")) found"
        case .notAnImagesFile(let file):
            return "\(file): not an IDX images file (name must contain 'images-idx3' so the labels file can be found), "
                + "not a CIFAR-10 batch (name must end in .bin), and not a directory"
        case .unreadable(let file, let reason):
            return "\(file): cannot read: \(reason)"
        case .badGzip(let file, let reason):
            return "\(file): bad gzip data: \(reason)"
        case .badMagic(let file, let expected, let found):
            var text = "\(file): bad magic number \(hex(found)), expected \(hex(expected))"
            if found == IDXKind.images.magic { text += " (this looks like an IDX images file)" }
            if found == IDXKind.labels.magic { text += " (this looks like an IDX labels file)" }
            return text
        case .zeroDimension(let file, let field):
            return "\(file): header field '\(field)' is zero"
        case .dimensionsTooLarge(let file, let dimensions):
            return "\(file): header dimensions \(dimensions) are too large"
        case .payloadTooLarge(let file, let dimensions, let bytes, let limit):
            return "\(file): header dimensions \(dimensions) announce \(bytes) bytes of data, more than the limit of \(limit)"
        case .inflatesBeyondHeader(let file, let expected):
            return "\(file): inflates to more than the \(expected) bytes its header announces"
        case .truncated(let file, let expected, let got):
            return "\(file): truncated: expected \(expected) bytes, got \(got)"
        case .trailingData(let file, let expected, let got):
            return "\(file): expected \(expected) bytes, got \(got) (\(got - expected) unexpected trailing bytes)"
        case .countMismatch(let images, let imageCount, let labels, let labelCount):
            return "\(images) holds \(imageCount) images but \(labels) holds \(labelCount) labels"
        case .labelOutOfRange(let file, let index, let value):
            return "\(file): label \(value) at index \(index) is out of range 0...9"
        }
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
