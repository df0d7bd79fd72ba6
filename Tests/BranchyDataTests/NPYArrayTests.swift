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
