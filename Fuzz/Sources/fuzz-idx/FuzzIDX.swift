import BranchyData
import Foundation

/// The input is a big-endian UInt32 n, then an images file of n bytes (or what is left),
/// then a labels file (the rest); either may be gzip-compressed. They are loaded by
/// `IDXDataset.load(images:labels:)` from scratch files, its entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size >= 4, let data else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let n = bytes.prefix(4).reduce(0) { $0 << 8 | Int($1) }
    let split = 4 + min(n, size - 4)
    do {
        try put(bytes[4..<split], at: files.images)
        try put(bytes[split...], at: files.labels)
        _ = try IDXDataset.load(images: files.images, labels: files.labels)
    } catch {
        _ = "\(error)"
    }
    return 0
}

/// Writes `bytes` to `url`, or removes the file when `bytes` is empty: Foundation on Linux
/// leaks a buffer whenever it reads an empty file (see Fuzz/lsan.supp), and the leak check
/// that libFuzzer runs after each such input slows fuzzing down tenfold.
func put(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, at url: URL) throws {
    if bytes.isEmpty {
        try? FileManager.default.removeItem(at: url)
    } else {
        try Data(bytes).write(to: url)
    }
}

/// Two files in a folder of this process's own, in memory when /dev/shm exists.
let files: (images: URL, labels: URL) = {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    let dir = URL(fileURLWithPath: base).appendingPathComponent("branchy-fuzz-idx-\(getpid())")
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(at: files.images.deletingLastPathComponent()) }
    return (dir.appendingPathComponent("fuzz-images-idx3-ubyte"), dir.appendingPathComponent("fuzz-labels-idx1-ubyte"))
}()
