import Foundation
import Testing
@testable import BranchyData

/// Compressed IDX files are inflated only as far as their header says: a small file that
/// inflates to far more than that fails early, with little memory, and names the file.
@Suite struct GzipTests {
    let labels = labelsIDX([1, 2, 3, 4, 5, 6, 7, 8, 9, 0])

    @Test func bombStopsAtTheAnnouncedSize() throws {
        let dir = try TempDirectory()
        // The header announces 10 images of 28 × 28 (7,856 bytes with the header); 64 MiB of zeros follow.
        let announced = imagesIDX(count: 10, rows: 28, cols: 28)
        let bomb = try gzip(announced + [UInt8](repeating: 0, count: 64 << 20))
        #expect(bomb.count < 1 << 20)
        let file = try dir.write("bomb-images-idx3-ubyte.gz", bomb)
        let error = idxError { try IDXDataset.load(images: file, labels: dir.write("lbl", labels)) }
        #expect(error?.description == "\(file.path): inflates to more than the 7856 bytes its header announces")
    }

    @Test func oneByteTooManyIsAnError() throws {
        let dir = try TempDirectory()
        let file = try dir.write("img.gz", gzip(imagesIDX(count: 10, rows: 28, cols: 28) + [0]))
        let error = idxError { try IDXDataset.load(images: file, labels: dir.write("lbl", labels)) }
        #expect(error?.description == "\(file.path): inflates to more than the 7856 bytes its header announces")
    }

    @Test func trailingMemberWithDataIsAnError() throws {
        // A second gzip member after the announced bytes is more data, even if it starts a new member.
        let dir = try TempDirectory()
        let file = try dir.write("img.gz", gzip(imagesIDX(count: 10, rows: 28, cols: 28)) + gzip([1, 2, 3]))
        let error = idxError { try IDXDataset.load(images: file, labels: dir.write("lbl", labels)) }
        #expect(error?.description == "\(file.path): inflates to more than the 7856 bytes its header announces")
    }

    @Test func trailingEmptyMemberIsFine() throws {
        let dir = try TempDirectory()
        let file = try dir.write("img.gz", gzip(imagesIDX(count: 10, rows: 28, cols: 28)) + gzip([]))
        let data = try IDXDataset.load(images: file, labels: dir.write("lbl", labels))
        #expect(data.count == 10)
    }

    @Test func headerAnnouncingMoreThanTheLimit() throws {
        // 2,000,000 images of 28 × 28 is 1.57 GB, more than a data set may hold; nothing is inflated past the header.
        let dir = try TempDirectory()
        let header = be32(0x803) + be32(2_000_000) + be32(28) + be32(28)
        for (name, bytes) in [("img", header), ("img.gz", try gzip(header + [UInt8](repeating: 0, count: 1 << 20)))] {
            let file = try dir.write(name, bytes)
            let error = idxError { try IDXDataset.load(images: file, labels: dir.write("lbl", labels)) }
            #expect(error?.description == "\(file.path): header dimensions [2000000, 28, 28] announce 1568000000 bytes of data, more than the limit of 1073741824")
        }
    }

    @Test func headerSplitOverMembers() throws {
        // The header itself may straddle two gzip members.
        let dir = try TempDirectory()
        let images = imagesIDX(count: 10, rows: 28, cols: 28)
        let file = try dir.write("img.gz", gzip(Array(images[..<6])) + gzip(Array(images[6...])))
        let data = try IDXDataset.load(images: file, labels: dir.write("lbl", labels))
        #expect(data.count == 10 && data.rows == 28 && data.cols == 28)
    }
}
