import Foundation
import Testing
@testable import BranchyData

/// The Fashion-MNIST test split committed under `data/fashion-mnist`.
@Suite struct FashionMNISTTests {
    let directory = packageRoot.appendingPathComponent("data/fashion-mnist")

    @Test func loadsCommittedTestSet() throws {
        let ds = try IDXDataset.load(directory: directory, split: .test)
        #expect(ds.count == 10_000)
        #expect(ds.rows == 28 && ds.cols == 28)
        #expect(ds.images.count == 10_000 * 28 * 28)
        #expect(ds.labels.allSatisfy { $0 <= 9 })
        // The test split is balanced: 1,000 images per class.
        var perClass = [Int](repeating: 0, count: 10)
        for label in ds.labels { perClass[Int(label)] += 1 }
        #expect(perClass == [Int](repeating: 1000, count: 10))
        #expect(Array(ds.labels.prefix(10)) == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
        #expect(ds.images.allSatisfy { $0 >= 0 && $0 <= 1 })
        #expect(ds.images.contains(1))
        // Pixel sum of the first image (an ankle boot) is 33,456 in byte units.
        let sum = ds.image(0).reduce(0) { $0 + Double($1) * 255 }
        #expect(abs(sum - 33_456) < 0.01)
    }

    @Test func loadPathOnCommittedDirectory() throws {
        let ds = try IDXDataset.load(path: directory.path)
        #expect(ds.count == 10_000)
    }
}
