import Foundation
import Testing
@testable import BranchyModel

@Suite struct SHA256Tests {
    private func hex(_ message: String) -> String { SHA256.hex(SHA256.hash(Array(message.utf8))) }

    /// Bytes `(i * 7 + 3) % 256` for `i` in `0..<count`.
    private func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(($0 * 7 + 3) % 256) } }

    @Test func nistShortMessages() {
        #expect(hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func nist448BitMessage() {
        #expect(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func nist896BitMessage() {
        #expect(hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")
            == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
    }

    @Test func nistOneMillionA() {
        let expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        #expect(SHA256.hex(SHA256.hash(Data(repeating: UInt8(ascii: "a"), count: 1_000_000))) == expected)
        // The same message fed in uneven pieces.
        var hasher = SHA256()
        let piece = [UInt8](repeating: UInt8(ascii: "a"), count: 997)
        var left = 1_000_000
        while left > 0 {
            let n = min(left, piece.count)
            hasher.update(Array(piece[..<n]))
            left -= n
        }
        #expect(SHA256.hex(hasher.finalize()) == expected)
    }

    /// Lengths around the padding boundaries (55/56 bytes) and block boundaries (64 bytes).
    @Test(arguments: [
        (1, "084fed08b978af4d7d196a7446a86b58009e636b611db16211b65a9aadff29c5"),
        (55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"),
        (56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"),
        (57, "35df609437dcfea3279283ab79fd554e2bf78f8f7ae2de532d8ee300b09e8f73"),
        (63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"),
        (64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"),
        (65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"),
        (119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e"),
        (120, "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5"),
        (128, "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6"),
        (1000, "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868d2371"),
    ])
    func boundaryLengths(count: Int, expected: String) {
        let bytes = pattern(count)
        #expect(SHA256.hex(SHA256.hash(bytes)) == expected)
        // Every two-way split must give the same digest.
        for cut in 0...count {
            var hasher = SHA256()
            hasher.update(Array(bytes[..<cut]))
            hasher.update(Data(bytes[cut...]))
            #expect(SHA256.hex(hasher.finalize()) == expected, "split at \(cut)")
        }
    }

    @Test func rawBufferUpdate() {
        let bytes = pattern(1000)
        var hasher = SHA256()
        bytes.withUnsafeBytes { buffer in
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<300]))
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[300..<300]))
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[300...]))
        }
        #expect(hasher.finalize() == SHA256.hash(bytes))
    }

    @Test func finalizeLeavesHasherUsable() {
        var hasher = SHA256()
        hasher.update(Array("ab".utf8))
        #expect(SHA256.hex(hasher.finalize()) == SHA256.hex(SHA256.hash(Array("ab".utf8))))
        hasher.update(Array("c".utf8))
        #expect(SHA256.hex(hasher.finalize()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func digestIs32Bytes() {
        #expect(SHA256.hash(Data()).count == SHA256.digestCount)
        #expect(SHA256.hex([0x00, 0x0f, 0xa5, 0xff]) == "000fa5ff")
    }

    @Test func sixteenMegabytes() {
        let clock = ContinuousClock()
        var digest: [UInt8] = []
        let elapsed = clock.measure { digest = SHA256.hash(Data(count: 16 << 20)) }
        #expect(SHA256.hex(digest) == "080acf35a507ac9849cfcba47dc2ad83e01b75663a516279c8b9d243b719643e")
        // Generous bound that still catches per-byte work or allocation, even in debug builds.
        #expect(elapsed < .seconds(30), "hashing 16 MB took \(elapsed)")
    }
}
