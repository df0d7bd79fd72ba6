import Foundation

/// A small, learnable stand-in for CIFAR-10, written in its binary format.
///
/// The full CIFAR-10 set is not in any Debian package, so tests and demonstrations use this
/// instead. Each class has its own colour and its own pattern (stripes of one orientation, a
/// checkerboard or a square), drawn with a random phase over a random dark background; each
/// image tints and dims its colour, and every byte gets uniform noise. A small network tells
/// the classes apart after a few epochs of a thousand samples, yet not all of them at its
/// first exit, and no two images are the same. Labels are balanced and shuffled; the same
/// seed always gives the same bytes.
public enum SyntheticCIFAR10 {
    /// Foreground colour of each class (red, green, blue).
    static let palette: [(Int, Int, Int)] = [
        (250, 60, 60), (60, 210, 60), (70, 100, 255), (245, 225, 50), (235, 70, 235),
        (50, 225, 235), (255, 150, 40), (150, 80, 215), (200, 200, 200), (150, 100, 50),
    ]

    /// Whether pixel (`y`, `x`) belongs to the pattern of class `label`, shifted by `phase`.
    static func inPattern(label: Int, y: Int, x: Int, phase: Int) -> Bool {
        switch label % 5 {
        case 0: return (y + phase) / 4 % 2 == 0                      // horizontal stripes
        case 1: return (x + phase) / 4 % 2 == 0                      // vertical stripes
        case 2: return ((y + phase) / 4 + (x + phase) / 4) % 2 == 0  // checkerboard
        case 3: return (x + y + phase) / 4 % 2 == 0                  // diagonal stripes
        default:                                                     // a square, off centre by the phase
            let c = 12 + phase % 8
            return abs(y - c) < 8 && abs(x - c) < 8
        }
    }

    /// `count` records (label byte, then the red, green and blue planes) from `seed`.
    public static func records(count: Int, seed: UInt64) -> [UInt8] {
        precondition(count >= 0, "record count \(count) must not be negative")
        var rng = SplitMix64(seed: seed)
        var labels = (0..<count).map { UInt8($0 % 10) }
        for i in stride(from: count - 1, to: 0, by: -1) { labels.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        var out = [UInt8]()
        out.reserveCapacity(count * CIFAR10.recordSize)
        for label in labels {
            out.append(label)
            let colour = palette[Int(label)]
            let strength = 50 + Int(rng.next() % 51)  // foreground at 50–100% of the class colour
            let tint = (0..<3).map { _ in Int(rng.next() % 81) - 40 }  // each channel off by up to ±40
            let background = (0..<3).map { _ in Int(rng.next() % 100) }
            let phase = Int(rng.next() % 8)
            for (channel, full) in [colour.0 + tint[0], colour.1 + tint[1], colour.2 + tint[2]].enumerated() {
                for y in 0..<32 {
                    for x in 0..<32 {
                        let base = inPattern(label: Int(label), y: y, x: x, phase: phase) ? full * strength / 100 : background[channel]
                        let noise = Int(rng.next() % 101) - 50
                        out.append(UInt8(clamping: base + noise))
                    }
                }
            }
        }
        return out
    }

    /// Writes `train` training records over `data_batch_1.bin` … (five files, or one per record
    /// when there are fewer), `test` records to `test_batch.bin`, and `batches.meta.txt`, into
    /// `directory` (created if missing). Training batches left from an earlier, larger set are
    /// removed. Returns the names of the files written.
    @discardableResult
    public static func write(to directory: URL, train: Int, test: Int, seed: UInt64) throws -> [String] {
        precondition(train >= 1 && test >= 1, "a synthetic set needs at least one training and one test record")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let files = min(CIFAR10.trainingFiles.count, train)
        let trainRecords = records(count: train, seed: seed)
        var written: [String] = []
        var start = 0
        for f in 0..<files {
            // As even as possible, the first files one record longer.
            let n = train / files + (f < train % files ? 1 : 0)
            let name = CIFAR10.trainingFiles[f]
            try Data(trainRecords[(start * CIFAR10.recordSize)..<((start + n) * CIFAR10.recordSize)])
                .write(to: directory.appendingPathComponent(name))
            written.append(name)
            start += n
        }
        for name in CIFAR10.trainingFiles[files...] {
            let url = directory.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
        }
        // Another seed for the test records, so that they are not copies of training records.
        try Data(records(count: test, seed: seed ^ 0x7E57_7E57_7E57_7E57)).write(to: directory.appendingPathComponent(CIFAR10.testFile))
        written.append(CIFAR10.testFile)
        try Data((CIFAR10.classNames.joined(separator: "\n") + "\n\n").utf8).write(to: directory.appendingPathComponent(CIFAR10.metaFile))
        written.append(CIFAR10.metaFile)
        return written
    }
}

/// Sebastiano Vigna's SplitMix64: a small seeded generator, the same on every platform.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
