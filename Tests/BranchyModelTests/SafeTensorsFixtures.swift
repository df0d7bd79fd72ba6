import Foundation
@testable import BranchyModel

/// Helpers for the safetensors tests.
enum SafeTensorsFixture {
    /// A safetensors file made by hand: length prefix, `header` verbatim, then `data`.
    static func file(header: String, data: [UInt8] = []) -> Data {
        let json = Array(header.utf8)
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out += $0 }
        return Data(out + json + data)
    }

    /// Little-endian bytes of float32 values.
    static func f32(_ values: [Float]) -> [UInt8] {
        values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
    }

    /// A fresh scratch directory; remove it with `FileManager.default.removeItem`.
    static func scratchDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("branchy-safetensors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Decodes `data`, expecting a `SafeTensorsError`; returns nil (and the caller's
    /// expectation fails) when decoding succeeds or throws something else.
    static func error(_ data: Data, file: String = "test.safetensors") -> SafeTensorsError? {
        do {
            _ = try SafeTensors.decode(data, file: file)
            return nil
        } catch {
            return error as? SafeTensorsError
        }
    }
}
