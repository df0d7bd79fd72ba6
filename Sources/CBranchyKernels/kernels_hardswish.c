// HardSwish (MobileNetV3; ONNX HardSwish, PyTorch hardswish): y = x · (relu6(x + 3) / 6),
// relu6(t) = min(max(t, 0), 6). Rounded as written: x + 3, the clamp (exact), the division by
// 6, the product; no fused multiply-add, so every path gives the bits of HardSwish.value in
// Sources/BranchyTensor/HardSwish.swift, its scalar twin.
//
// The factor relu6(x + 3) / 6 is exactly 0 for x ≤ −3 and exactly 1 for x ≥ 3, so y is x itself
// there however large (no overflow of x · 6), and x · 0 below: −0 for finite x ≤ −3 and NaN for
// −∞ (−∞ · 0, as PyTorch and ONNX Runtime give). NaN gives NaN (the clamp makes the factor 0,
// the product keeps x's NaN).
#include "kernels_elementwise.h"

#pragma clang fp contract(off)

#define BK_HARDSWISH(V, x) \
    ((x) * (BK_VMIN(BK_VMAX((x) + BK_SPLAT(V, 3), BK_SPLAT(V, 0)), BK_SPLAT(V, 6)) / BK_SPLAT(V, 6)))

BK_ELEMENTWISE(hardswish, BK_HARDSWISH)
