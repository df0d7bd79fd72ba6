import Foundation

/// A scratch directory removed when the value is released.
final class TempDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("branchy-data-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// Writes `bytes` to `name` inside the directory and returns its URL.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> URL {
        let file = url.appendingPathComponent(name)
        try Data(bytes).write(to: file)
        return file
    }
}

/// Big-endian bytes of a 32-bit word.
func be32(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
}

/// An IDX images file (magic 0x803). `pixels` defaults to a deterministic pattern.
func imagesIDX(count: Int, rows: Int, cols: Int, pixels: [UInt8]? = nil) -> [UInt8] {
    let body = pixels ?? (0..<(count * rows * cols)).map { UInt8(($0 * 37 + 11) % 256) }
    return be32(0x803) + be32(UInt32(count)) + be32(UInt32(rows)) + be32(UInt32(cols)) + body
}

/// An IDX labels file (magic 0x801).
func labelsIDX(_ labels: [UInt8]) -> [UInt8] {
    be32(0x801) + be32(UInt32(labels.count)) + labels
}

/// Compresses `bytes` with the system gzip tool.
func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
    let dir = try TempDirectory()
    let input = try dir.write("input", bytes)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/gzip")
    process.arguments = ["-c", "-n", input.path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    precondition(process.terminationStatus == 0, "gzip failed with status \(process.terminationStatus)")
    return [UInt8](output)
}

/// Root of the package, found from this source file's location.
let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// CIFAR-10 binary records: for each label, the label byte then 3 × 32 × 32 pixel bytes,
/// `pixel(record, channel, y, x)` each (by default a pattern that differs in every one of them).
func cifarRecords(_ labels: [UInt8], pixel: (Int, Int, Int, Int) -> UInt8 = cifarPixel) -> [UInt8] {
    var out: [UInt8] = []
    for (r, label) in labels.enumerated() {
        out.append(label)
        for c in 0..<3 { for y in 0..<32 { for x in 0..<32 { out.append(pixel(r, c, y, x)) } } }
    }
    return out
}

/// The default pixel pattern of `cifarRecords`.
func cifarPixel(_ record: Int, _ channel: Int, _ y: Int, _ x: Int) -> UInt8 {
    UInt8((record * 7 + channel * 85 + y * 3 + x) % 256)
}
