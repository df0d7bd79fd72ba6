import BranchyTensor
import Foundation
import Testing
@testable import BranchyModel

@Suite struct SafeTensorsTests {
    typealias F = SafeTensorsFixture

    @Test func roundTripThroughFile() throws {
        let dir = try F.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.safetensors")
        let tensors: [String: Tensor] = [
            "conv1.weight": Tensor(shape: [4, 1, 3, 3], data: (0..<36).map { Float($0) * 0.25 - 3 }),
            "conv1.bias": Tensor(shape: [4], data: [1, -2, 3.5, -0.0]),
            "scalar": Tensor(shape: [], data: [42]),
            "empty": Tensor(shape: [0, 3], data: []),
            "big": Tensor(shape: [100, 100], data: (0..<10_000).map { sin(Float($0)) }),
            "special": Tensor(shape: [5], data: [.infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, -0.0]),
        ]
        let metadata = ["format": "pt", "note": "quote \" backslash \\ newline \n tab \t ctrl \u{1} é ✓"]
        try SafeTensors.write(tensors, metadata: metadata, to: url)
        let (read, readMetadata) = try SafeTensors.read(contentsOf: url)
        #expect(read == tensors)
        #expect(readMetadata == metadata)
        // Bit-exact, including the sign of zero.
        #expect(read["conv1.bias"]!.data.map(\.bitPattern) == tensors["conv1.bias"]!.data.map(\.bitPattern))
    }

    @Test func nanSurvivesBitExact() throws {
        let nan = Float(bitPattern: 0x7fc0_1234)
        let (read, _) = try SafeTensors.decode(SafeTensors.encode(["n": Tensor(shape: [2], data: [nan, -.nan])]))
        #expect(read["n"]!.data.map(\.bitPattern) == [nan.bitPattern, (-Float.nan).bitPattern])
    }

    @Test func emptyFile() throws {
        let data = SafeTensors.encode([:])
        #expect(Array(data) == Array(F.file(header: "{}      ")))
        let (tensors, metadata) = try SafeTensors.decode(data)
        #expect(tensors.isEmpty && metadata.isEmpty)
    }

    /// The bytes the reference implementation (`safetensors.torch.save_file`) produces for
    /// `{"attn.0": torch.arange(6.).reshape(1, 2, 3)}`: compact JSON with keys in the order
    /// dtype, shape, data_offsets (64 bytes, already a multiple of 8, so no padding), then
    /// the raw little-endian floats.
    @Test func byteExactSingleTensor() throws {
        let header = #"{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}"#
        #expect(header.utf8.count == 64)
        let expected: [UInt8] = [64, 0, 0, 0, 0, 0, 0, 0] + Array(header.utf8)
            + [0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64]
        let tensor = Tensor(shape: [1, 2, 3], data: [0, 1, 2, 3, 4, 5])
        #expect(Array(SafeTensors.encode(["attn.0": tensor])) == expected)
        let (read, metadata) = try SafeTensors.decode(Data(expected))
        #expect(read == ["attn.0": tensor])
        #expect(metadata.isEmpty)
    }

    /// A 60-byte header is padded with four spaces to 64, as in the reference library's own
    /// serialisation test for `{"test": zeros((2, 2))}` (there int32; here float32).
    @Test func byteExactPadding() throws {
        let header = #"{"test":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#
        #expect(header.utf8.count == 60)
        let expected: [UInt8] = [64, 0, 0, 0, 0, 0, 0, 0] + Array(header.utf8) + [0x20, 0x20, 0x20, 0x20]
            + [UInt8](repeating: 0, count: 12) + [0, 0, 0x80, 0x3f]
        let tensor = Tensor(shape: [2, 2], data: [0, 0, 0, 1])
        #expect(Array(SafeTensors.encode(["test": tensor])) == expected)
        #expect(try SafeTensors.decode(Data(expected)).tensors == ["test": tensor])
    }

    /// With metadata the reference writer puts `__metadata__` first, then the tensors sorted
    /// by name, each placed right after the previous one.
    @Test func byteExactWithMetadataAndSortedTensors() throws {
        let header = #"{"__metadata__":{"format":"pt"},"#
            + #""a.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
            + #""a.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},"#
            + #""b":{"dtype":"F32","shape":[1],"data_offsets":[24,28]}}"#
        let padding = (8 - header.utf8.count % 8) % 8
        let data = F.f32([0.5, -0.5]) + F.f32([1, 2, 3, 4]) + F.f32([7])
        let expected = F.file(header: header + String(repeating: " ", count: padding), data: data)
        let tensors = [
            "b": Tensor(shape: [1], data: [7]),
            "a.weight": Tensor(shape: [2, 2], data: [1, 2, 3, 4]),
            "a.bias": Tensor(shape: [2], data: [0.5, -0.5]),
        ]
        let encoded = SafeTensors.encode(tensors, metadata: ["format": "pt"])
        #expect(Array(encoded) == Array(expected))
        #expect((encoded.count - 8 - data.count) % 8 == 0)
        let (read, metadata) = try SafeTensors.decode(expected)
        #expect(read == tensors)
        #expect(metadata == ["format": "pt"])
    }

    @Test func namesSortByUTF8Bytes() {
        // "B" (0x42) < "a" (0x61) < "é" (0xc3 0xa9), as a byte-wise sort orders them.
        let one = Tensor(shape: [1], data: [1])
        let header = String(decoding: SafeTensors.encode(["é": one, "a": one, "B": one]).dropFirst(8), as: UTF8.self)
        let b = header.range(of: "\"B\"")!.lowerBound, a = header.range(of: "\"a\"")!.lowerBound
        let e = header.range(of: "\"é\"")!.lowerBound
        #expect(b < a && a < e)
    }

    @Test func readsForeignLayout() throws {
        // Whitespace, reordered keys, tensors stored out of name order. (A gap or trailing
        // bytes are errors, as in the reference implementation: see SafeTensorsErrorTests.)
        let header = """
         { "z" : { "data_offsets" : [ 0 , 8 ] , "shape" : [ 2 ] , "dtype" : "F32" } ,
           "a" : { "shape" : [ 1 ] , "dtype" : "F32" , "data_offsets" : [ 8 , 12 ] } }\t\r\n
        """
        let data = F.f32([1, 2]) + F.f32([3])
        let (read, metadata) = try SafeTensors.decode(F.file(header: header, data: data))
        #expect(read == ["z": Tensor(shape: [2], data: [1, 2]), "a": Tensor(shape: [1], data: [3])])
        #expect(metadata.isEmpty)
    }

    @Test func readsHalfPrecisionTypes() throws {
        let header = #"{"h":{"dtype":"F16","shape":[8],"data_offsets":[0,16]},"#
            + #""b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},"#
            + #""d":{"dtype":"F64","shape":[2],"data_offsets":[22,38]}}"#
        let halves: [UInt16] = [0x3c00, 0xc000, 0x0000, 0x8000, 0x7bff, 0x0001, 0x7c00, 0x3555]
        let bfloats: [UInt16] = [0x3f80, 0xc0a0, 0x4049]
        let doubles: [Double] = [0.1, -1e300]
        var data: [UInt8] = []
        for h in halves + bfloats { withUnsafeBytes(of: h.littleEndian) { data += $0 } }
        for d in doubles { withUnsafeBytes(of: d.bitPattern.littleEndian) { data += $0 } }
        let (read, _) = try SafeTensors.decode(F.file(header: header, data: data))
        #expect(read["h"]!.data == [1, -2, 0, -0.0, 65504, 0x1p-24, .infinity, 0.333251953125])
        #expect(read["h"]!.data[3].sign == .minus)
        #expect(read["b"]!.data == [1, -5, 3.140625])
        #expect(read["d"]!.data == [Float(0.1), -.infinity])
        #expect(read["d"]!.shape == [2])
    }

    @Test func halfConversionIsExactForEveryPattern() {
        #if !(os(macOS) && arch(x86_64))
        for bits in UInt16.min...UInt16.max {
            let expected = Float(Float16(bitPattern: bits))
            let got = halfToFloat(bits)
            if expected.isNaN {
                #expect(got.isNaN, "pattern \(bits)")
            } else if got.bitPattern != expected.bitPattern {
                Issue.record("pattern \(String(bits, radix: 16)): got \(got), expected \(expected)")
                return
            }
        }
        #endif
    }
}
