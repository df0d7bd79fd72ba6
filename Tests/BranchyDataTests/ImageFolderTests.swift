import BranchyData
import Foundation
import Testing

/// Image folders: PNG files written here (stored deflate blocks), read through libpng in class
/// order, greyscale or colour; bad files and mixed sizes named.
@Suite struct ImageFolderTests {
    /// A PNG of 8-bit greyscale (colour type 0) or RGB (2) pixels, rows top to bottom.
    static func png(width: Int, height: Int, rgb: Bool, pixels: [UInt8]) -> [UInt8] {
        func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        func crc(_ bytes: [UInt8]) -> Int {
            var c: UInt32 = 0xFFFF_FFFF
            for b in bytes {
                c ^= UInt32(b)
                for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            }
            return Int(c ^ 0xFFFF_FFFF)
        }
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] { be32(data.count) + Array(type.utf8) + data + be32(crc(Array(type.utf8) + data)) }
        let channels = rgb ? 3 : 1
        var raw: [UInt8] = []
        for y in 0..<height { raw += [0] + pixels[(y * width * channels)..<((y + 1) * width * channels)] }
        // zlib: header, one stored block, Adler-32.
        var a = 1, b = 0
        for v in raw { a = (a + Int(v)) % 65521; b = (b + a) % 65521 }
        let n = raw.count
        let zlib: [UInt8] = [0x78, 0x01, 1, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8(~n >> 8 & 0xFF)] + raw + be32(b << 16 | a)
        let header = be32(width) + be32(height) + [8, rgb ? 2 : 0, 0, 0, 0]
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header) + chunk("IDAT", zlib) + chunk("IEND", [])
    }

    static func folder(_ files: [(String, [UInt8])]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("images-\(UUID().uuidString)")
        for (path, bytes) in files {
            let url = dir.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        }
        return dir
    }

    @Test func readsClassesInNameOrder() throws {
        let dir = try Self.folder([
            ("cat/b.png", Self.png(width: 3, height: 2, rgb: false, pixels: [0, 51, 102, 153, 204, 255])),
            ("cat/a.PNG", Self.png(width: 3, height: 2, rgb: false, pixels: [1, 2, 3, 4, 5, 6])),
            ("ant/z.png", Self.png(width: 3, height: 2, rgb: false, pixels: [9, 9, 9, 9, 9, 9])),
            ("ant/notes.txt", Array("skipped".utf8)),
        ])
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try DatasetFormat.detect(directory: dir) == .imageFolder)
        let d = try ImageDataset.load(path: dir.path)
        #expect(d.shape == [1, 2, 3] && d.labels == [0, 1, 1])  // ant, then cat's a before b
        #expect(Array(d.images[6..<12]) == [1, 2, 3, 4, 5, 6].map { Float($0) / 255 })
        #expect(Array(d.images[12..<18]) == [0, 51, 102, 153, 204, 255].map { Float($0) / 255 })
    }

    @Test func colourWhenAnyImageIsColour() throws {
        let rgb: [UInt8] = [10, 20, 30, 40, 50, 60]
        let dir = try Self.folder([
            ("test/a/1.png", Self.png(width: 2, height: 1, rgb: true, pixels: rgb)),
            ("test/b/1.png", Self.png(width: 2, height: 1, rgb: false, pixels: [7, 8])),
        ])
        defer { try? FileManager.default.removeItem(at: dir) }
        let d = try ImageDataset.load(directory: dir, split: .test)
        #expect(d.shape == [3, 1, 2] && d.labels == [0, 1])
        #expect(Array(d.images[0..<6]) == [10, 40, 20, 50, 30, 60].map { Float($0) / 255 })  // planes R, G, B
        #expect(Array(d.images[6..<12]) == [7, 8, 7, 8, 7, 8].map { Float($0) / 255 })      // grey spread to all three
    }

    @Test func namesBadImages() throws {
        func error(_ files: [(String, [UInt8])]) throws -> String {
            let dir = try Self.folder(files)
            defer { try? FileManager.default.removeItem(at: dir) }
            do { _ = try ImageDataset.load(path: dir.path); return "" } catch { return "\(error)" }
        }
        let good = Self.png(width: 2, height: 2, rgb: false, pixels: [1, 2, 3, 4])
        #expect(try error([("a/1.png", good), ("a/2.png", Array(good.prefix(20)))]).contains("2.png: not a valid PNG image"))
        #expect(try error([("a/1.png", good), ("b/2.png", Self.png(width: 3, height: 2, rgb: false, pixels: [1, 2, 3, 4, 5, 6]))])
            .contains("is 3×2 but"))
        #expect(try error([("a/1.jpg", Array("not a jpeg".utf8))]).contains("1.jpg"))
    }
}
