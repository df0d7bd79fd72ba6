@testable import BranchyData
import Foundation
import Testing

/// Preprocessing: bilinear resizing at pixel centres, centre crops, channel order and values, the
/// checks against the model's input, and image folders resized while they are decoded.
@Suite struct PreprocessingTests {
    static func dataset(_ values: [Float], channels: Int, rows: Int, cols: Int, count: Int = 1) -> ImageDataset {
        ImageDataset(images: values, labels: [UInt8](repeating: 0, count: count), channels: channels, rows: rows, cols: cols)
    }

    @Test func standardLeavesPixelsAlone() throws {
        let d = Self.dataset([0, 0.5, 1, 0.25], channels: 1, rows: 2, cols: 2)
        let p = try Preprocessing.standard.prepare(d, input: [1, 2, 2], source: "d")
        #expect(p.images == d.images)
    }

    @Test func upscalingTwiceInterpolatesAtPixelCentres() throws {
        // A 1×2 row [0, 1] to 1×4: sources -0.25→0, 0.25, 0.75, 1.25→1 (clamped).
        let taps = Preprocessing.taps(input: 2, output: 4)
        #expect(taps.map(\.low) == [0, 0, 0, 1])
        #expect(taps.map(\.fraction) == [0, 0.25, 0.75, 0])
        let p = Preprocessing(resize: [1, 4])
        let out = try p.resample([0, 1][...], channels: 1, rows: 1, cols: 2)
        #expect(out.pixels == [0, 0.25, 0.75, 1])
    }

    @Test func halvingAveragesPairs() throws {
        let p = Preprocessing(resize: [2, 2])
        let out = try p.resample([0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3][...], channels: 1, rows: 4, cols: 4)
        // Sources at 0.5 and 2.5 on both axes: the mean of each 2×2 block.
        #expect(out.pixels == [1.5, 1.5, 1.5, 1.5])
    }

    @Test func shorterSideResizeKeepsTheAspectRatioThenCropsTheCentre() throws {
        let p = Preprocessing(resize: [4], centerCrop: [4, 4])
        #expect(p.resizedSize(rows: 8, cols: 10) == (4, 5))
        #expect(p.resizedSize(rows: 10, cols: 8) == (5, 4))
        #expect(try p.outputSize(rows: 8, cols: 10) == (4, 4))
        // A ramp along x: the crop from the resized 4×5 starts at column round(0.5) = 0 (ties to even, as Python's round).
        let ramp = (0..<80).map { Float($0 % 10) }
        let out = try p.resample(ramp[...], channels: 1, rows: 8, cols: 10)
        #expect(out.rows == 4 && out.cols == 4)
        #expect(out.pixels[0..<4] == [0.5, 2.5, 4.5, 6.5][...])
    }

    @Test func cropLargerThanTheImageIsRefused() {
        let p = Preprocessing(centerCrop: [5, 5])
        #expect(throws: PreprocessingError.self) { try p.outputSize(rows: 4, cols: 8) }
    }

    @Test func meanStdAndBGR() throws {
        // Two pixels, three channels: R = 1, G = 0.5, B = 0 (bytes 255, 127.5, 0).
        let d = Self.dataset([1, 1, 0.5, 0.5, 0, 0], channels: 3, rows: 1, cols: 2)
        let p = Preprocessing(mean: [0.5, 0.25, 0], std: [0.5, 0.25, 1], channelOrder: .bgr)
        let out = try p.prepare(d, input: [3, 1, 2], source: "d")
        // BGR: plane 0 is blue (0 → (0 − 0.5) / 0.5), plane 1 green ((0.5 − 0.25) / 0.25), plane 2 red ((1 − 0) / 1).
        #expect(zip(out.images, [-1, -1, 1, 1, 1, 1]).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    @Test func greyImagesAreRepeatedForAColourModel() throws {
        let d = Self.dataset([0.25, 0.75], channels: 1, rows: 1, cols: 2)
        let out = try Preprocessing.standard.prepare(d, input: [3, 1, 2], source: "d")
        #expect(out.channels == 3 && out.images == [0.25, 0.75, 0.25, 0.75, 0.25, 0.75])
    }

    @Test func mismatchesNameTheSourceAndBothShapes() {
        let colour = Self.dataset([Float](repeating: 0, count: 12), channels: 3, rows: 2, cols: 2)
        #expect { try Preprocessing.standard.prepare(colour, input: [1, 2, 2], source: "data.npz") } throws: {
            "\($0)".contains("data.npz") && "\($0)".contains("3 channels but the model takes 1")
        }
        let small = Self.dataset([Float](repeating: 0, count: 4), channels: 1, rows: 2, cols: 2)
        #expect { try Preprocessing.standard.prepare(small, input: [1, 3, 3], source: "imgs") } throws: {
            "\($0)".contains("1×2×2") && "\($0)".contains("records no resize") && "\($0)".contains("1×3×3")
        }
        var tensors = Self.dataset([Float](repeating: 0, count: 4), channels: 1, rows: 2, cols: 2)
        tensors.isTensor = true
        #expect { try Preprocessing(resize: [3, 3]).prepare(tensors, input: [1, 3, 3], source: "x.npy") } throws: {
            "\($0)".contains("float arrays are taken as prepared inputs")
        }
    }

    @Test func floatArraysAreTakenAsPrepared() throws {
        var tensors = Self.dataset([-3, 7, 0.5, 2], channels: 1, rows: 2, cols: 2)
        tensors.isTensor = true
        let out = try Preprocessing(mean: [0.5], std: [0.25]).prepare(tensors, input: [1, 2, 2], source: "x.npy")
        #expect(out.images == tensors.images)
    }

    @Test(arguments: [
        (Preprocessing(resize: [0]), "resize"), (Preprocessing(resize: [1, 2, 3]), "resize"), (Preprocessing(centerCrop: [4]), "center_crop"),
        (Preprocessing(scale: 0), "scale"), (Preprocessing(mean: [1, 2]), "mean has 2 values"), (Preprocessing(std: [0]), "std must be positive"),
        (Preprocessing(std: [.nan]), "std must be finite"),
    ])
    func unusableRecordsAreNamed(p: Preprocessing, expected: String) {
        #expect(p.problem(channels: 3)?.contains(expected) == true)
    }

    @Test func bgrNeedsThreeChannels() {
        #expect(Preprocessing(channelOrder: .bgr).problem(channels: 1) != nil)
        #expect(Preprocessing(channelOrder: .bgr).problem(channels: 3) == nil)
    }

    @Test func recordRoundTripsThroughJSON() throws {
        let p = Preprocessing(resize: [256], centerCrop: [224, 224], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], channelOrder: .bgr)
        let text = String(decoding: try JSONEncoder().encode(p), as: UTF8.self)
        #expect(text.contains("\"center_crop\"") && text.contains("\"channel_order\":\"bgr\"") && text.contains("\"NCHW\""))
        #expect(try JSONDecoder().decode(Preprocessing.self, from: Data(text.utf8)) == p)
        #expect(try JSONDecoder().decode(Preprocessing.self, from: Data("{}".utf8)) == .standard)
    }

    @Test func imageFolderOfMixedSizesIsResizedWhileDecoding() throws {
        // Two RGB images, 4×6 and 6×4, each to the shorter side 2 and the centre 2×2: one size in the end.
        let a = ImageFolderTests.png(width: 6, height: 4, rgb: true, pixels: [UInt8](repeating: 200, count: 72))
        let b = ImageFolderTests.png(width: 4, height: 6, rgb: true, pixels: [UInt8](repeating: 100, count: 72))
        let dir = try ImageFolderTests.folder([("cat/a.png", a), ("dog/b.png", b)])
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect { try ImageFolder.load(dir) } throws: { "\($0)".contains("every image must have one size") }
        let p = Preprocessing(resize: [2], centerCrop: [2, 2])
        let d = try ImageDataset.load(path: dir.path, for: [3, 2, 2], preprocessing: p)
        #expect(d.count == 2 && d.shape == [3, 2, 2] && d.labels == [0, 1])
        #expect(d.image(0).allSatisfy { abs($0 - 200 / 255) < 1e-6 } && d.image(1).allSatisfy { abs($0 - 100 / 255) < 1e-6 })
        // Without the crop the two end 2×3 and 3×2: named.
        #expect { try ImageDataset.load(path: dir.path, for: [3, 2, 3], preprocessing: Preprocessing(resize: [2])) } throws: {
            "\($0)".contains("after resizing and cropping")
        }
    }
}
