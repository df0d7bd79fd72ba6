import CZlib
import Foundation

/// gzip detection and streaming decompression through zlib.
enum Gzip {
    /// Whether `data` starts with the gzip magic bytes `1f 8b`.
    static func isGzip(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1f && data[data.startIndex + 1] == 0x8b
    }

    /// Inflates a gzip (or zlib) stream of unknown decompressed size in fixed-size chunks.
    /// Concatenated gzip members are decoded one after another, as `gzip -d` does.
    /// - Parameter file: Name used in errors.
    static func inflate(_ data: Data, file: String) throws -> [UInt8] {
        var stream = z_stream()
        // 15 + 32: maximum window, automatic gzip/zlib header detection.
        var rc = inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { throw IDXError.badGzip(file: file, reason: "inflateInit2 failed (\(rc))") }
        defer { inflateEnd(&stream) }

        let chunkSize = 1 << 16
        var output = [UInt8]()
        output.reserveCapacity(data.count * 2)
        var chunk = [UInt8](repeating: 0, count: chunkSize)

        try data.withUnsafeBytes { (input: UnsafeRawBufferPointer) in
            guard let base = input.bindMemory(to: Bytef.self).baseAddress else {
                throw IDXError.badGzip(file: file, reason: "empty input")
            }
            var consumed = 0
            // avail_in is 32-bit: feed the input in slices of at most 1 GiB.
            func refill() {
                let take = min(input.count - consumed, 1 << 30)
                stream.next_in = UnsafeMutablePointer(mutating: base + consumed)
                stream.avail_in = uInt(take)
                consumed += take
            }
            refill()
            while true {
                if stream.avail_in == 0 && consumed < input.count { refill() }
                let produced: Int = chunk.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    rc = CZlib.inflate(&stream, Z_NO_FLUSH)
                    return out.count - Int(stream.avail_out)
                }
                output.append(contentsOf: chunk[0..<produced])
                switch rc {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    let remaining = Int(stream.avail_in) + (input.count - consumed)
                    if remaining == 0 { return }
                    // Another gzip member may follow; anything else is garbage.
                    let next = input.count - remaining
                    guard remaining >= 2, input[next] == 0x1f, input[next + 1] == 0x8b else {
                        throw IDXError.badGzip(file: file, reason: "\(remaining) bytes of trailing garbage after the compressed stream")
                    }
                    inflateReset(&stream)
                case Z_BUF_ERROR where stream.avail_in == 0 && consumed == input.count:
                    throw IDXError.badGzip(file: file, reason: "compressed stream is truncated (after \(output.count) decompressed bytes)")
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                    throw IDXError.badGzip(file: file, reason: message)
                }
            }
        }
        return output
    }
}
