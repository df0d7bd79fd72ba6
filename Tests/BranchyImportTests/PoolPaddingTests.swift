import Testing
@testable import BranchyImport

/// ONNX pooling padding read as Branchy's window: equal padding as is, the exports' ceil-mode
/// form (more at the bottom and right) as ceil mode, anything else refused.
@Suite struct PoolPaddingTests {
    @Test func equalPaddingIsKept() {
        #expect(PoolPadding.window(pads: [1, 1, 1, 1], ceilMode: true, kernel: 3, stride: 2, height: 9, width: 9)! == (1, true))
        #expect(PoolPadding.window(pads: [0, 0, 0, 0], ceilMode: false, kernel: 2, stride: 2, height: 9, width: 9)! == (0, false))
    }

    /// The windows the exports write for ceil mode: 9 × 9 by 2 × 2 windows to 5 × 5; by 3 × 3
    /// windows with padding 1 to 4 × 4; extra padding no window reaches is floor mode.
    @Test func exportsCeilModeIsCeilMode() {
        #expect(PoolPadding.window(pads: [0, 0, 1, 1], ceilMode: false, kernel: 2, stride: 2, height: 9, width: 9)! == (0, true))
        #expect(PoolPadding.window(pads: [1, 1, 2, 2], ceilMode: false, kernel: 3, stride: 3, height: 9, width: 9)! == (1, true))
        #expect(PoolPadding.window(pads: [0, 0, 1, 1], ceilMode: false, kernel: 2, stride: 2, height: 8, width: 8)! == (0, false))
        #expect(PoolPadding.window(pads: [0, 0, 0, 1], ceilMode: false, kernel: 2, stride: 2, height: 8, width: 9)! == (0, true))
    }

    @Test func otherPaddingIsRefused() {
        #expect(PoolPadding.window(pads: [1, 0, 1, 0], ceilMode: false, kernel: 3, stride: 1, height: 9, width: 9) == nil)
        #expect(PoolPadding.window(pads: [1, 1, 0, 0], ceilMode: false, kernel: 3, stride: 1, height: 9, width: 9) == nil)
        #expect(PoolPadding.window(pads: [0, 0, 1, 1], ceilMode: true, kernel: 2, stride: 2, height: 9, width: 9) == nil)
        // A last window that would start in the padding (4 wide, 2 × 2 windows, 3 more at the end).
        #expect(PoolPadding.window(pads: [0, 0, 3, 3], ceilMode: false, kernel: 2, stride: 2, height: 4, width: 4) == nil)
    }
}
