import CZlib
import Foundation

/// A NumPy `.npz` file: a zip archive of `.npy` arrays (stored, or deflated by
/// `numpy.savez_compressed`; zip64 sizes read), each under its name plus `.npy`.
public struct NPZArchive: Sendable {
    /// The archive's file, named in errors.
    public let file: String
    private let data: Data
    /// Each member: where its data starts, its method, compressed and uncompressed sizes.
    private let members: [String: Member]

    private struct Member: Sendable { var offset: Int, method: Int, compressed: Int, size: Int }

    /// The largest member inflated: a data set file's limit.
    public static let maxMemberBytes = ImageDataset.maxPayloadBytes

    /// The array names it holds (without `.npy`), sorted.
    public var names: [String] { members.keys.sorted() }

    public init(contentsOf url: URL) throws {
        file = url.path
        guard let d = FileManager.default.contents(atPath: url.path) else { throw NPYArray.Error(file: url.path, reason: "cannot read the file") }
        data = d
        members = try Self.directory(d, file: url.path)
    }

    /// The array `name` (without `.npy`).
    public func array(_ name: String) throws -> NPYArray {
        guard let m = members[name] else {
            throw NPYArray.Error(file: file, reason: "no array '\(name)' (it holds \(names.map { "'\($0)'" }.joined(separator: ", ")))")
        }
        let where_ = "\(file) [\(name).npy]"
        guard m.offset >= 0, m.compressed >= 0, m.offset + m.compressed <= data.count else {
            throw NPYArray.Error(file: where_, reason: "member data lies beyond the end of the archive")
        }
        guard m.size <= Self.maxMemberBytes else {
            throw NPYArray.Error(file: where_, reason: "\(m.size) bytes, more than the limit of \(Self.maxMemberBytes)")
        }
        let raw = data.subdata(in: (data.startIndex + m.offset)..<(data.startIndex + m.offset + m.compressed))
        switch m.method {
        case 0:
            return try NPYArray.decode([UInt8](raw), file: where_)
        case 8:
            return try NPYArray.decode(try Self.inflate(raw, size: m.size, file: where_), file: where_)
        default:
            throw NPYArray.Error(file: where_, reason: "zip compression method \(m.method) is not supported (stored or deflate)")
        }
    }

    /// The members listed in the central directory, by name without `.npy`.
    private static func directory(_ d: Data, file: String) throws -> [String: Member] {
        let bytes = [UInt8](d)
        func u16(_ i: Int) -> Int { Int(bytes[i]) | Int(bytes[i + 1]) << 8 }
        func u32(_ i: Int) -> Int { u16(i) | u16(i + 2) << 16 }
        func u64(_ i: Int) -> Int { u32(i) | u32(i + 4) << 32 }
        func fail(_ reason: String) -> NPYArray.Error { NPYArray.Error(file: file, reason: reason) }
        guard bytes.count >= 22, bytes.prefix(4) == [0x50, 0x4B, 0x03, 0x04] || bytes.prefix(4) == [0x50, 0x4B, 0x05, 0x06] else {
            throw fail("not a .npz file (no zip signature)")
        }
        // The end-of-central-directory record, within the last 64 KiB + 22 bytes.
        var end = -1
        for i in stride(from: bytes.count - 22, through: max(0, bytes.count - 22 - 65535), by: -1)
        where bytes[i] == 0x50 && bytes[i + 1] == 0x4B && bytes[i + 2] == 0x05 && bytes[i + 3] == 0x06 { end = i; break }
        guard end >= 0 else { throw fail("no zip end-of-central-directory record (truncated?)") }
        var count = u16(end + 10), offset = u32(end + 16)
        if (count == 0xFFFF || offset == 0xFFFF_FFFF), end >= 20, u32(end - 20) == 0x0706_4B50 {
            let locator = u64(end - 12)
            guard locator >= 0, locator + 56 <= bytes.count, u32(locator) == 0x0606_4B50 else { throw fail("bad zip64 end record") }
            count = u64(locator + 32); offset = u64(locator + 48)
        }
        guard count <= 1 << 16 else { throw fail("\(count) members, more than the limit of 65536") }
        var members: [String: Member] = [:]
        var at = offset
        for _ in 0..<count {
            guard at >= 0, at + 46 <= bytes.count, u32(at) == 0x0201_4B50 else { throw fail("bad zip central directory entry at byte \(at)") }
            let method = u16(at + 10)
            var compressed = u32(at + 20), size = u32(at + 24), local = u32(at + 42)
            let nameLength = u16(at + 28), extraLength = u16(at + 30), commentLength = u16(at + 32)
            guard at + 46 + nameLength + extraLength <= bytes.count else { throw fail("zip central directory entry cut short") }
            let name = String(decoding: bytes[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self)
            // zip64: the sizes and offset that are 0xFFFFFFFF follow, in this order, in extra field 1.
            var e = at + 46 + nameLength
            while e + 4 <= at + 46 + nameLength + extraLength {
                let id = u16(e), length = u16(e + 2)
                if id == 1 {
                    var p = e + 4
                    if size == 0xFFFF_FFFF, p + 8 <= e + 4 + length { size = u64(p); p += 8 }
                    if compressed == 0xFFFF_FFFF, p + 8 <= e + 4 + length { compressed = u64(p); p += 8 }
                    if local == 0xFFFF_FFFF, p + 8 <= e + 4 + length { local = u64(p) }
                }
                e += 4 + length
            }
            guard local >= 0, local + 30 <= bytes.count, u32(local) == 0x0403_4B50 else { throw fail("bad zip local header for '\(name)'") }
            let start = local + 30 + u16(local + 26) + u16(local + 28)
            let key = name.hasSuffix(".npy") ? String(name.dropLast(4)) : name
            members[key] = Member(offset: start, method: method, compressed: compressed, size: size)
            at += 46 + nameLength + extraLength + commentLength
        }
        return members
    }

    /// Raw deflate data inflated to exactly `size` bytes.
    private static func inflate(_ raw: Data, size: Int, file: String) throws -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw NPYArray.Error(file: file, reason: "zlib could not start")
        }
        defer { inflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: max(1, size))
        let rc: Int32 = raw.withUnsafeBytes { input in
            out.withUnsafeMutableBufferPointer { output in
                stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress)
                stream.avail_in = uInt(input.count)
                stream.next_out = output.baseAddress
                stream.avail_out = uInt(size)
                return CZlib.inflate(&stream, Z_FINISH)
            }
        }
        guard rc == Z_STREAM_END, Int(stream.total_out) == size else {
            let message = stream.msg.map { String(cString: $0) } ?? "stopped after \(stream.total_out) of \(size) bytes"
            throw NPYArray.Error(file: file, reason: "deflated data does not inflate: \(message)")
        }
        return Array(out.prefix(size))
    }
}
