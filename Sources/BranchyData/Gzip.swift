import CZlib
import Foundation

/// gzip detection and incremental decompression through zlib.
///
/// A reader inflates only as many bytes as it is asked for, so that a caller that knows how
/// much data to expect (an IDX header says so) never inflates more than that, however far a
/// small compressed file would expand. Concatenated gzip members are decoded one after
/// another, as `gzip -d` does.
final class Gzip {
    /// Whether `data` starts with the gzip magic bytes `1f 8b`.
    static func isGzip(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1f && data[data.startIndex + 1] == 0x8b
    }

    /// Bytes inflated per zlib call.
    private static let chunkSize = 1 << 16

    private let input: Data
    private let file: String
    private var stream = z_stream()
    /// Bytes of `input` zlib has consumed.
    private var consumed = 0
    /// Bytes inflated so far, for error messages.
    private(set) var produced = 0
    /// Whether the last member has ended with nothing after it.
    private var ended = false

    /// Starts inflating the gzip (or zlib) stream `data`.
    /// - Parameter file: Name used in errors.
    init(_ data: Data, file: String) throws {
        input = data
        self.file = file
        // 15 + 32: maximum window, automatic gzip/zlib header detection.
        let rc = inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { throw IDXError.badGzip(file: file, reason: "inflateInit2 failed (\(rc))") }
        guard !data.isEmpty else { throw IDXError.badGzip(file: file, reason: "empty input") }
    }

    deinit { inflateEnd(&stream) }

    /// Inflates the next `count` bytes, or fewer when the stream ends before them.
    func read(_ count: Int) throws -> [UInt8] {
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: Gzip.chunkSize)
        while output.count < count && !ended {
            let made = try step(into: &chunk, limit: min(chunk.count, count - output.count))
            output.append(contentsOf: chunk[0..<made])
        }
        return output
    }

    /// Whether the stream ends here. Inflates at most one more byte, which is lost.
    func isAtEnd() throws -> Bool {
        try read(1).isEmpty
    }

    /// One zlib call writing at most `limit` bytes into `chunk`; returns how many it wrote.
    private func step(into chunk: inout [UInt8], limit: Int) throws -> Int {
        try input.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let base = raw.bindMemory(to: Bytef.self).baseAddress!
            // avail_in is 32-bit: offer the input in slices of at most 1 GiB.
            let offered = min(raw.count - consumed, 1 << 30)
            stream.next_in = UnsafeMutablePointer(mutating: base + consumed)
            stream.avail_in = uInt(offered)
            var rc: Int32 = Z_OK
            let made: Int = chunk.withUnsafeMutableBufferPointer { out in
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(limit)
                rc = CZlib.inflate(&stream, Z_NO_FLUSH)
                return limit - Int(stream.avail_out)
            }
            consumed += offered - Int(stream.avail_in)
            produced += made
            let remaining = raw.count - consumed
            switch rc {
            case Z_OK:
                break
            case Z_STREAM_END:
                if remaining == 0 { ended = true; break }
                // Another gzip member may follow; anything else is garbage.
                guard remaining >= 2, raw[consumed] == 0x1f, raw[consumed + 1] == 0x8b else {
                    throw IDXError.badGzip(file: file, reason: "\(remaining) bytes of trailing garbage after the compressed stream")
                }
                inflateReset(&stream)
            case Z_BUF_ERROR where remaining == 0:
                throw IDXError.badGzip(file: file, reason: "compressed stream is truncated (after \(produced) decompressed bytes)")
            default:
                let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                throw IDXError.badGzip(file: file, reason: message)
            }
            return made
        }
    }
}
