import BranchyTensor
import Foundation
import Testing
@testable import BranchyModel

@Suite struct SafeTensorsErrorTests {
    typealias F = SafeTensorsFixture
    let file = "test.safetensors"

    /// A valid two-tensor file: "a" [2] at 0..<8, "b" [3] at 8..<20.
    var valid: Data {
        SafeTensors.encode(["a": Tensor(shape: [2], data: [1, 2]), "b": Tensor(shape: [3], data: [3, 4, 5])])
    }

    /// One-entry header around `entry` for tensor "w", with `data` bytes after it.
    func single(_ entry: String, data: [UInt8] = [UInt8](repeating: 0, count: 16)) -> Data {
        F.file(header: #"{"w":"# + entry + "}", data: data)
    }

    @Test func missingFile() throws {
        let dir = try F.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("absent.safetensors")
        #expect(throws: SafeTensorsError.fileMissing(file: url.path)) { try SafeTensors.read(contentsOf: url) }
        #expect(throws: SafeTensorsError.fileMissing(file: dir.path)) { try SafeTensors.read(contentsOf: dir) }
        #expect(SafeTensorsError.fileMissing(file: url.path).description == "\(url.path): no such file")
    }

    @Test func errorsFromDiskNameThePath() throws {
        let dir = try F.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("short.safetensors")
        try Data([1, 2, 3]).write(to: url)
        #expect(throws: SafeTensorsError.tooShort(file: url.path, size: 3)) { try SafeTensors.read(contentsOf: url) }
    }

    @Test func writeIntoMissingDirectory() throws {
        let dir = try F.scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("no/such/dir/model.safetensors")
        do {
            try SafeTensors.write([:], to: url)
            Issue.record("write succeeded")
        } catch let error as SafeTensorsError {
            guard case .writeFailed(let name, _) = error else { Issue.record("got \(error)"); return }
            #expect(name == url.path)
            #expect(error.description.hasPrefix("\(url.path): cannot write"))
        }
    }

    @Test(arguments: [0, 1, 7])
    func shorterThanLengthField(length: Int) {
        #expect(F.error(valid.prefix(length)) == .tooShort(file: file, size: length))
    }

    @Test func truncatedAtEveryPoint() {
        let data = valid
        let headerLength = Int(data[0])  // < 256 here
        let dataStart = 8 + headerLength
        for cut in 8..<data.count {
            let error = F.error(data.prefix(cut), file: file)
            if cut < dataStart {
                #expect(error == .headerBeyondFile(file: file, headerLength: UInt64(headerLength), fileSize: cut), "cut \(cut)")
            } else if cut < dataStart + 8 {
                #expect(error == .offsetsOutOfRange(file: file, tensor: "a", begin: 0, end: 8, dataSize: cut - dataStart), "cut \(cut)")
            } else {
                #expect(error == .offsetsOutOfRange(file: file, tensor: "b", begin: 8, end: 20, dataSize: cut - dataStart), "cut \(cut)")
            }
        }
        #expect(F.error(data) == nil)
    }

    @Test func headerLengthPastEnd() {
        var data = valid
        data[0] = 200
        let error = F.error(data)
        #expect(error == .headerBeyondFile(file: file, headerLength: 200, fileSize: data.count))
        #expect(error?.description.hasPrefix("test.safetensors: header length 200 runs past the end of the file") == true)
    }

    @Test func absurdHeaderLength() {
        var data = valid
        data.replaceSubrange(0..<8, with: [0, 0, 0, 0, 0, 0, 0, 0x80])
        #expect(F.error(data) == .headerTooLarge(file: file, headerLength: 1 << 63, limit: SafeTensors.maxHeaderLength))
        data.replaceSubrange(0..<8, with: [0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0])  // 100,000,001
        #expect(F.error(data) == .headerTooLarge(file: file, headerLength: 100_000_001, limit: 100_000_000))
    }

    @Test func headerNotUTF8() {
        #expect(F.error(F.file(header: "{\"\u{FFFD}\":1}").replacing(Data([0xef, 0xbf, 0xbd]), with: Data([0xff, 0xfe, 0xfd])))
            == .headerNotUTF8(file: file))
    }

    @Test(arguments: [
        "", "{", #"{"a":"#, #"{"a":{"dtype":"F32"}"#, #"{"a":1,}"#, "{} x", #"{'a':1}"#, "nul", #"{"a":01}"#,
        #"{"a":"\x"}"#, #"{"a":"\ud800"}"#, String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
    ])
    func headerNotJSON(header: String) {
        guard case .headerNotJSON(let name, let reason) = F.error(F.file(header: header)) else {
            Issue.record("accepted or wrong error for \(header.debugDescription)")
            return
        }
        #expect(name == file)
        #expect(reason.contains("at byte"))
    }

    @Test func duplicateKeysAreRejected() {
        let error = F.error(F.file(header: #"{"a":{},"a":{}}"#))
        #expect(error == .headerNotJSON(file: file, reason: #"duplicate key "a" at byte 8"#))
    }

    @Test(arguments: ["[]", "[1,2]", "\"w\"", "3", "null", "true"])
    func headerNotObject(header: String) {
        #expect(F.error(F.file(header: header)) == .headerNotObject(file: file))
    }

    @Test func badMetadata() {
        let notObject = F.error(F.file(header: #"{"__metadata__":["pt"]}"#))
        #expect(notObject == .badMetadata(file: file, reason: "expected an object of strings, found array"))
        let notString = F.error(F.file(header: #"{"__metadata__":{"epoch":3}}"#))
        #expect(notString == .badMetadata(file: file, reason: "value of 'epoch' is number, not string"))
        #expect(notString?.description == "test.safetensors: bad __metadata__: value of 'epoch' is number, not string")
    }

    @Test func entryNotObject() {
        let error = F.error(F.file(header: #"{"w":[1,2]}"#))
        #expect(error == .entryNotObject(file: file, tensor: "w"))
        #expect(error?.description == "test.safetensors: tensor 'w': entry is not a JSON object")
    }

    @Test(arguments: [
        ("dtype", #"{"shape":[2],"data_offsets":[0,8]}"#),
        ("shape", #"{"dtype":"F32","data_offsets":[0,8]}"#),
        ("data_offsets", #"{"dtype":"F32","shape":[2]}"#),
    ])
    func missingField(field: String, entry: String) {
        let error = F.error(single(entry))
        #expect(error == .missingField(file: file, tensor: "w", field: field))
        #expect(error?.description == "test.safetensors: tensor 'w': missing field '\(field)'")
    }

    @Test(arguments: [
        ("dtype", #"{"dtype":32,"shape":[2],"data_offsets":[0,8]}"#),
        ("shape", #"{"dtype":"F32","shape":"2","data_offsets":[0,8]}"#),
        ("shape", #"{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}"#),
        ("shape", #"{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}"#),
        ("shape", #"{"dtype":"F32","shape":[true],"data_offsets":[0,4]}"#),
        ("shape", #"{"dtype":"F32","shape":[null],"data_offsets":[0,4]}"#),
        ("data_offsets", #"{"dtype":"F32","shape":[2],"data_offsets":[0]}"#),
        ("data_offsets", #"{"dtype":"F32","shape":[2],"data_offsets":[0,8,16]}"#),
        ("data_offsets", #"{"dtype":"F32","shape":[2],"data_offsets":{"begin":0}}"#),
        ("data_offsets", #"{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}"#),
    ])
    func wrongFieldType(field: String, entry: String) {
        guard case .wrongType(let name, let tensor, let got, _) = F.error(single(entry)) else {
            Issue.record("accepted or wrong error for \(entry)")
            return
        }
        #expect(name == file && tensor == "w" && got == field)
    }

    @Test(arguments: ["I64", "U8", "F8_E4M3", "f32", ""])
    func unsupportedDType(dtype: String) {
        let error = F.error(single(#"{"dtype":"\#(dtype)","shape":[2],"data_offsets":[0,8]}"#))
        #expect(error == .unsupportedDType(file: file, tensor: "w", dtype: dtype))
        #expect(error?.description.contains("supported: F32, F16, BF16, F64") == true)
    }

    @Test func negativeDimension() {
        let error = F.error(single(#"{"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]}"#))
        #expect(error == .negativeDimension(file: file, tensor: "w", shape: [-1, 2]))
    }

    @Test func shapeTooLarge() {
        let error = F.error(single(#"{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}"#))
        #expect(error == .shapeTooLarge(file: file, tensor: "w", shape: [1 << 62, 4]))
        // Elements that fit Int but whose bytes would not are already over the element limit.
        let bytesOverflow = F.error(single(#"{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}"#))
        #expect(bytesOverflow == .tensorTooLarge(file: file, tensor: "w", shape: [1 << 62], limit: SafeTensors.maxTensorElements))
    }

    @Test func tensorAboveTheElementLimit() {
        // 2^25 + 1 BF16 elements: the bytes are there, but no model has a tensor this large.
        let count = (1 << 25) + 1
        let error = F.error(single(#"{"dtype":"BF16","shape":[\#(count)],"data_offsets":[0,\#(2 * count)]}"#,
                                   data: [UInt8](repeating: 0, count: 2 * count)))
        #expect(error?.description == "\(file): tensor 'w': shape [33554433] has more than the limit of 33554432 elements")
    }

    @Test func bytesThatBelongToNoTensor() {
        // Tensors lie back to back from the start of the data section, as the reference
        // implementation requires: a gap or a tail is an error, so a weights file cannot carry
        // bytes no tensor uses (which loading would still read, for the fingerprint).
        let header = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        let gap = F.error(F.file(header: header, data: [UInt8](repeating: 0, count: 12)))
        #expect(gap?.description == "\(file): bytes 4..<8 of the 12-byte data section belong to no tensor")
        let tail = F.error(valid + Data([0, 0, 0, 0]))
        #expect(tail?.description == "\(file): bytes 20..<24 of the 24-byte data section belong to no tensor")
        let leading = F.error(single(#"{"dtype":"F32","shape":[2],"data_offsets":[8,16]}"#))
        #expect(leading?.description == "\(file): bytes 0..<8 of the 16-byte data section belong to no tensor")
    }

    @Test func offsetsReversed() {
        let error = F.error(single(#"{"dtype":"F32","shape":[1],"data_offsets":[8,4]}"#))
        #expect(error == .offsetsReversed(file: file, tensor: "w", begin: 8, end: 4))
    }

    @Test func offsetsOutOfRange() {
        let past = F.error(single(#"{"dtype":"F32","shape":[1],"data_offsets":[16,20]}"#))
        #expect(past == .offsetsOutOfRange(file: file, tensor: "w", begin: 16, end: 20, dataSize: 16))
        #expect(past?.description == "test.safetensors: tensor 'w': data_offsets [16, 20] outside the 16-byte data section")
        let negative = F.error(single(#"{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}"#))
        #expect(negative == .offsetsOutOfRange(file: file, tensor: "w", begin: -4, end: 0, dataSize: 16))
    }

    @Test func sizeMismatch() {
        let error = F.error(single(#"{"dtype":"F32","shape":[3],"data_offsets":[0,8]}"#))
        #expect(error == .sizeMismatch(file: file, tensor: "w", dtype: "F32", shape: [3], expectedBytes: 12, actualBytes: 8))
        #expect(error?.description == "test.safetensors: tensor 'w': F32 shape [3] needs 12 bytes, data_offsets span 8")
        let half = F.error(single(#"{"dtype":"F16","shape":[2,2],"data_offsets":[0,16]}"#))
        #expect(half == .sizeMismatch(file: file, tensor: "w", dtype: "F16", shape: [2, 2], expectedBytes: 8, actualBytes: 16))
    }

    @Test func overlappingTensors() {
        let header = #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"#
            + #""b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}"#
        let error = F.error(F.file(header: header, data: [UInt8](repeating: 0, count: 20)))
        #expect(error == .overlap(file: file, tensor: "b", other: "a"))
        #expect(error?.description == "test.safetensors: tensor 'b' overlaps tensor 'a'")
        let same = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"#
            + #""b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        #expect(F.error(F.file(header: same, data: [0, 0, 0, 0])) == .overlap(file: file, tensor: "b", other: "a"))
    }

    @Test func emptyTensorsNeverOverlap() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
            + #""e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}"#
        let (tensors, _) = try SafeTensors.decode(F.file(header: header, data: F.f32([1, 2])))
        #expect(tensors["e"] == Tensor(shape: [0], data: []))
    }

    @Test func corruptedHeaderBytes() {
        // Flip each header byte of a valid file to '#': every result must be either a clean
        // SafeTensorsError or, when the JSON stays valid and consistent, a successful read.
        let data = valid
        let headerEnd = 8 + Int(data[0])
        for i in 8..<headerEnd {
            var corrupt = data
            corrupt[i] = UInt8(ascii: "#")
            do {
                _ = try SafeTensors.decode(corrupt, file: file)
            } catch let error as SafeTensorsError {
                #expect(error.description.hasPrefix(file))
            } catch {
                Issue.record("byte \(i): unexpected \(error)")
            }
        }
    }
}
