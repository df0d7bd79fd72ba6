import BranchyTensor
import Testing
@testable import BranchyTraining

@Suite struct AugmentTests {
    /// `n` distinct 2-channel 5×4 images (height 5, width 4) with pixel values 1…
    func images(_ n: Int) -> Tensor {
        Tensor(shape: [n, 2, 5, 4], data: (0..<(n * 40)).map { Float($0 + 1) })
    }

    func pixel(_ t: Tensor, _ s: Int, _ c: Int, _ y: Int, _ x: Int) -> Float {
        t.data[((s * t.shape[1] + c) * t.shape[2] + y) * t.shape[3] + x]
    }

    @Test func flipTwiceRestores() {
        let original = images(16)
        var x = original
        var rng = SeededRandom(seed: 7)
        Augment.apply(&x, flip: true, shift: 0, rng: &rng)
        #expect(x != original)
        // The same seed flips the same images again.
        var again = SeededRandom(seed: 7)
        Augment.apply(&x, flip: true, shift: 0, rng: &again)
        #expect(x == original)
    }

    @Test func flipMirrorsRowsOfChosenImages() {
        let original = images(16)
        var x = original
        var rng = SeededRandom(seed: 3)
        var predictor = SeededRandom(seed: 3)
        Augment.apply(&x, flip: true, shift: 0, rng: &rng)
        var flipped = 0
        for s in 0..<16 {
            let doFlip = predictor.next() & 1 == 1
            if doFlip { flipped += 1 }
            for c in 0..<2 { for yy in 0..<5 { for xx in 0..<4 {
                let source = doFlip ? 3 - xx : xx
                #expect(pixel(x, s, c, yy, xx) == pixel(original, s, c, yy, source))
            } } }
        }
        #expect(flipped > 0 && flipped < 16)
    }

    @Test func shiftMovesPixelsAndZeroFills() {
        let original = images(32)
        var x = original
        var rng = SeededRandom(seed: 11)
        var predictor = SeededRandom(seed: 11)
        Augment.apply(&x, flip: false, shift: 2, rng: &rng)
        var shifts = Set<[Int]>()
        for s in 0..<32 {
            // Without flips the generator gives dy then dx per image, each in −2…2.
            let dy = Int(predictor.next() % 5) - 2
            let dx = Int(predictor.next() % 5) - 2
            shifts.insert([dy, dx])
            for c in 0..<2 { for yy in 0..<5 { for xx in 0..<4 {
                let sy = yy - dy, sx = xx - dx
                let inside = sy >= 0 && sy < 5 && sx >= 0 && sx < 4
                #expect(pixel(x, s, c, yy, xx) == (inside ? pixel(original, s, c, sy, sx) : 0))
            } } }
        }
        #expect(shifts.count > 5)
        // Pixel mass only shrinks: shifted-out pixels are dropped, nothing is invented.
        #expect(x.data.reduce(0, +) < original.data.reduce(0, +))
    }

    @Test func shiftOfOneRowDown() {
        // Find a seed whose first draw shifts image 0 by (1, 0) and check it by hand.
        var seed: UInt64 = 0
        while true {
            var r = SeededRandom(seed: seed)
            if Int(r.next() % 3) - 1 == 1, Int(r.next() % 3) - 1 == 0 { break }
            seed += 1
        }
        var x = Tensor(shape: [1, 1, 3, 3], data: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        var rng = SeededRandom(seed: seed)
        Augment.apply(&x, flip: false, shift: 1, rng: &rng)
        #expect(x.data == [0, 0, 0, 1, 2, 3, 4, 5, 6])
    }

    @Test func noAugmentationLeavesImagesAlone() {
        let original = images(4)
        var x = original
        var rng = SeededRandom(seed: 1)
        let before = rng
        Augment.apply(&x, flip: false, shift: 0, rng: &rng)
        #expect(x == original)
        var a = rng, b = before
        #expect(a.next() == b.next()) // no random numbers were drawn
    }
}
