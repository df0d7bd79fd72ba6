import BranchyModel
import Foundation

/// The input is a model.json: read and checked as `Model.load` does, by `Model.readSpec`
/// (from a scratch file, its only entry point) and building the `Network` it describes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzModelSpec(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    // An empty file is not valid JSON; reading one makes Foundation leak (see Fuzz/lsan.supp).
    guard size > 0, let data else { return 0 }
    let bytes = Data(bytes: data, count: size)
    do {
        try bytes.write(to: specFile)
        let spec = try Model.readSpec(specFile)
        _ = try Network(spec: spec, file: specFile.path)
    } catch {
        _ = "\(error)"
    }
    return 0
}

/// A file in a folder of this process's own, in memory when /dev/shm exists.
let specFile: URL = {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    let dir = URL(fileURLWithPath: base).appendingPathComponent("branchy-fuzz-model-spec-\(getpid())")
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(at: specFile.deletingLastPathComponent()) }
    return dir.appendingPathComponent(Model.specFileName)
}()
