import ArgumentParser
import CZlib
import Foundation

/// Writes DIR/t10k-images-idx3-ubyte.gz (header: 10 images of 28x28) inflating to BYTES bytes, and
/// DIR/t10k-labels-idx1-ubyte.gz with 10 labels.
///
/// The deflate stream is one compressed block of zeros repeated: compressing 1 GiB at run time would
/// take longer than the check itself.
struct GzipBomb: Check {
    static let configuration = CommandConfiguration(abstract: "Writes a gzip IDX file of 10 images inflating to BYTES bytes.")
    @Argument var directory: String
    @Argument var bytes: Int

    func check() async throws {
        let block = 8 << 20
        let blocks = max(1, bytes / block), total = blocks * block
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let header = bigEndian([0x803, 10, 28, 28])
        let zeros = [UInt8](repeating: 0, count: block)
        let raw = try Deflater(windowBits: -15)   // raw deflate; the gzip wrapper is written here
        let firstBlock = header + zeros.dropFirst(header.count)
        let first = raw.deflate(firstBlock, flush: Z_FULL_FLUSH)
        let repeated = raw.deflate(zeros, flush: Z_FULL_FLUSH)
        try require(repeated == raw.deflate(zeros, flush: Z_FULL_FLUSH), "zlib does not compress equal blocks after a full flush to equal bytes")
        let last = raw.deflate([], flush: Z_FINISH)
        let zeroCRC = crc32(0, zeros, uInt(block))
        var crc = crc32(0, firstBlock, uInt(block))
        for _ in 1..<blocks { crc = crc32_combine(crc, zeroCRC, off_t(block)) }
        var file = Data([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0xff] + first)
        for _ in 1..<blocks { file.append(contentsOf: repeated) }
        file.append(contentsOf: last + littleEndian([UInt32(truncatingIfNeeded: crc), UInt32(truncatingIfNeeded: total)]))
        let images = URL(fileURLWithPath: directory).appendingPathComponent("t10k-images-idx3-ubyte.gz")
        try file.write(to: images)
        let labels = try Deflater(windowBits: 31).deflate(bigEndian([0x801, 10]) + Array(0..<10), flush: Z_FINISH)
        try Data(labels).write(to: URL(fileURLWithPath: directory).appendingPathComponent("t10k-labels-idx1-ubyte.gz"))
        note("gzip bomb: \(images.path): \(file.count) bytes inflating to \(total) bytes; header: 10 images of 28x28")
        print("\(file.count) bytes inflating to \(total >> 20) MiB")
    }

    private func bigEndian(_ values: [UInt32]) -> [UInt8] { values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } } }
    private func littleEndian(_ values: [UInt32]) -> [UInt8] { values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } } }
}

/// A zlib deflate stream at level 9.
final class Deflater {
    private var stream = z_stream()

    /// `windowBits` as zlib takes it: -15 for raw deflate, 31 for gzip.
    init(windowBits: Int32) throws {
        let rc = deflateInit2_(&stream, 9, Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        try require(rc == Z_OK, "deflateInit2 failed with code \(rc)")
    }

    deinit { deflateEnd(&stream) }

    /// Compresses `input` and flushes with `flush`; returns what the stream wrote.
    func deflate(_ input: [UInt8], flush: Int32) -> [UInt8] {
        var input = input, out: [UInt8] = [], chunk = [UInt8](repeating: 0, count: 1 << 16)
        input.withUnsafeMutableBufferPointer { source in
            stream.next_in = source.baseAddress
            stream.avail_in = uInt(source.count)
            repeat {
                chunk.withUnsafeMutableBufferPointer { target in
                    stream.next_out = target.baseAddress
                    stream.avail_out = uInt(target.count)
                    _ = CZlib.deflate(&stream, flush)
                    out += target.prefix(target.count - Int(stream.avail_out))
                }
            } while stream.avail_out == 0
        }
        return out
    }
}

/// Copies the model folder SRC to DST and makes model.json announce a huge size: VARIANT `width` sets the first
/// conv layer's `out` to 2^40, `input` sets `input` to [2^31, 2^31, 2^31].
struct ModelBomb: Check {
    static let configuration = CommandConfiguration(abstract: "Copies a model and makes its model.json announce a huge size.")
    @Argument var source: String
    @Argument var destination: String
    @Argument var variant: Variant

    /// The size model.json announces.
    enum Variant: String, ExpressibleByArgument { case width, input }

    func check() async throws {
        if FileManager.default.fileExists(atPath: destination) { try FileManager.default.removeItem(atPath: destination) }
        try FileManager.default.copyItem(atPath: source, toPath: destination)
        let path = URL(fileURLWithPath: destination).appendingPathComponent("model.json")
        var spec = try JSONSerialization.jsonObject(with: Data(contentsOf: path)) as? [String: Any] ?? [:]
        var stages = spec["stages"] as? [[String: Any]] ?? [], trunk = stages.first?["trunk"] as? [[String: Any]] ?? []
        switch variant {
        case .width:
            guard let i = trunk.firstIndex(where: { $0["op"] as? String == "conv" }) else {
                throw CheckFailed("\(path.path) has no conv layer in the trunk of its first stage")
            }
            trunk[i]["out"] = 1 << 40
            stages[0]["trunk"] = trunk
            spec["stages"] = stages
        case .input: spec["input"] = [1 << 31, 1 << 31, 1 << 31]
        }
        try JSONSerialization.data(withJSONObject: spec, options: [.prettyPrinted, .sortedKeys]).write(to: path)
        print(destination)
    }
}
