import BranchyData
import Foundation
import Testing

/// `.npy` arrays: written and read back, NumPy's own headers, and bad files named.
@Suite struct NPYArrayTests {
    @Test func roundTrips() throws {
        let a = NPYArray(shape: [2, 3], values: [1, -2, 3.5, 0, .infinity, -0])
        let bytes = a.encoded()
        #expect((bytes.count - 6 - 4) % 16 == 0 || bytes.count > 64)
        #expect(try NPYArray.decode(bytes, file: "a.npy") == a)
        let one = NPYArray(shape: [4], values: [1, 2, 3, 4])
        #expect(try NPYArray.decode(one.encoded(), file: "b.npy") == one)
    }

    /// A uint8 header as NumPy writes it (format 1.0).
    @Test func readsNumPyHeaders() throws {
        var header = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let bytes: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8) + [0, 1, 128, 255]
        let a = try NPYArray.decode(bytes, file: "u.npy")
        #expect(a.shape == [2, 2] && a.values == [0, 1, 128, 255])
    }

    @Test func namesBadFiles() {
        func error(_ bytes: [UInt8]) -> String {
            do { _ = try NPYArray.decode(bytes, file: "x.npy"); return "" } catch { return "\(error)" }
        }
        #expect(error(Array("hello".utf8)).contains("not a .npy file"))
        var good = NPYArray(shape: [3], values: [1, 2, 3]).encoded()
        good.removeLast()
        #expect(error(good).contains("holds 11 bytes of data, 12 expected"))
        var header = "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let fortran: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8) + [0, 0, 128, 63]
        #expect(error(fortran).contains("Fortran"))
    }
}

/// `.npz` archives and array data sets: a stored zip written here, images in either layout,
/// bytes scaled as pixels, and bad archives and arrays named.
@Suite struct ArrayDatasetTests {
    /// A zip archive of `members` (name, bytes), stored (method 0), as `numpy.savez` writes it.
    static func storedZip(_ members: [(String, [UInt8])]) -> [UInt8] {
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func le32(_ v: Int) -> [UInt8] { le16(v & 0xFFFF) + le16(v >> 16 & 0xFFFF) }
        var out: [UInt8] = [], central: [UInt8] = []
        for (name, bytes) in members {
            let offset = out.count, n = Array(name.utf8)
            out += le32(0x0403_4B50) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(bytes.count) + le32(bytes.count)
                + le16(n.count) + le16(0) + n + bytes
            central += le32(0x0201_4B50) + le16(20) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(bytes.count)
                + le32(bytes.count) + le16(n.count) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(offset) + n
        }
        let start = out.count
        return out + central + le32(0x0605_4B50) + le16(0) + le16(0) + le16(members.count) + le16(members.count)
            + le32(central.count) + le32(start) + le16(0)
    }

    /// A `.npy` file of bytes (`|u1`).
    static func bytesNPY(_ shape: [Int], _ values: [UInt8]) -> [UInt8] {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '|u1', 'fortran_order': False, 'shape': (\(dims)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8) + values
    }

    @Test func readsAStoredArchiveInEitherLayout() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("npz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // Two 2×2 RGB images, channels last, and their labels.
        let pixels: [UInt8] = (0..<24).map { UInt8($0 * 10) }
        let zip = Self.storedZip([("x.npy", Self.bytesNPY([2, 2, 2, 3], pixels)), ("y.npy", Self.bytesNPY([2], [7, 3]))])
        let file = dir.appendingPathComponent("set.npz")
        try Data(zip).write(to: file)
        let d = try ImageDataset.load(path: file.path)
        #expect(d.shape == [3, 2, 2] && d.count == 2 && d.labels == [7, 3])
        // Channel 1 of image 0 is pixels 1, 4, 7, 10 (channels last), divided by 255.
        #expect(Array(d.images[4..<8]) == [10, 40, 70, 100].map { Float($0) / 255 })
        let renamed = Self.storedZip([("images.npy", Self.bytesNPY([2, 2, 2, 3], pixels)), ("labels.npy", Self.bytesNPY([2], [7, 3]))])
        try Data(renamed).write(to: file)
        #expect(try ImageDataset.load(path: file.path + ":images,labels").images == d.images)
        #expect(throws: NPYArray.Error.self) { try ImageDataset.load(path: file.path) }  // no 'x'

        let x = NPYArray(shape: [2, 1, 2, 2], values: [0.5, -1, 2, 3, 4, 5, 6, 7])
        try Data(x.encoded()).write(to: dir.appendingPathComponent("x.npy"))
        try Data(Self.bytesNPY([2], [0, 9])).write(to: dir.appendingPathComponent("y.npy"))
        let pair = try ImageDataset.load(path: dir.appendingPathComponent("x.npy").path + "," + dir.appendingPathComponent("y.npy").path)
        #expect(pair.shape == [1, 2, 2] && pair.images == x.values && pair.labels == [0, 9])
    }

    @Test func namesBadArchivesAndArrays() throws {
        func error(_ body: () throws -> Any) -> String { do { _ = try body(); return "" } catch { return "\(error)" } }
        let images = NPYArray(shape: [3, 1, 2, 2], values: [Float](repeating: 0.5, count: 12))
        #expect(error { try ImageDataset.fromArrays(x: images, y: NPYArray(shape: [2], values: [0, 1]), file: "f") }.contains("3 images but 2 labels"))
        #expect(error { try ImageDataset.fromArrays(x: images, y: NPYArray(shape: [3], values: [0, 1.5, 2]), file: "f") }.contains("label 1 is 1.5"))
        #expect(error { try ImageDataset.fromArrays(x: NPYArray(shape: [12], values: images.values), y: NPYArray(shape: [12], values: [Float](repeating: 0, count: 12)), file: "f") }
            .contains("must have shape"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("npz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("bad.npz")
        let zip = Self.storedZip([("x.npy", Self.bytesNPY([1, 2, 2], [1, 2, 3, 4])), ("y.npy", Self.bytesNPY([1], [1]))])
        try Data(zip.prefix(zip.count - 10)).write(to: file)
        #expect(error { try ImageDataset.load(path: file.path) }.contains("end-of-central-directory"))
        try Data("not a zip at all, just text".utf8).write(to: file)
        #expect(error { try ImageDataset.load(path: file.path) }.contains("no zip signature"))
        #expect(error { try ImageDataset.load(path: dir.appendingPathComponent("x.npy").path) }.contains("IMAGES.npy,LABELS.npy"))
    }
}
