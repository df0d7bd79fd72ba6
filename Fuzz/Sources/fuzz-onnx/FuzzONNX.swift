import BranchyImport
import Foundation

/// The input is an ONNX file, imported by `ONNXImporter.importModel(_:)` from a scratch file
/// (its entry point takes a path, for external data files beside it; the scratch folder holds
/// none, so external tensors fail to open).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzONNX(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size > 0, let data else { return 0 }
    do {
        try Data(bytes: data, count: size).write(to: file)
        let result = try ONNXImporter.importModel(file)
        _ = result.stages.map(\.name)
    } catch {
        _ = "\(error)"
    }
    return 0
}

/// A file in a folder of this process's own, in memory when /dev/shm exists.
let file: URL = {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    let dir = URL(fileURLWithPath: base).appendingPathComponent("branchy-fuzz-onnx-\(getpid())")
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(at: file.deletingLastPathComponent()) }
    return dir.appendingPathComponent("model.onnx")
}()
