// Clipping (ONNX Clip, ReLU6): y = NaN where x is NaN, else min(max(x, lo), hi) as Swift's max
// and min take them (max(a, b) = b >= a ? b : a, min(a, b) = b < a ? b : a), so that a −0
// clipped at a lower bound of +0 gives +0, exactly as ClipLayer.value, its scalar twin. Only
// comparisons and selections: every path gives the same bits.
#include "kernels_elementwise.h"

// Whole vectors of V (x and y may be the same array, so no aliasing check is needed), then
// the rest one at a time with the same comparisons.
#define BK_CLIP_PATH(V, S, ATTRIBUTES) \
    ATTRIBUTES static void bk_clip_##S(size_t count, const float *x, float *y, float lo, float hi) \
    { \
        enum { W = sizeof(V) / sizeof(float) }; \
        const V vlo = BK_SPLAT(V, lo), vhi = BK_SPLAT(V, hi); \
        size_t i = 0; \
        for (; i + W <= count; i += W) { \
            V v; \
            memcpy(&v, x + i, sizeof v); \
            V m = BK_SELECT(vlo >= v, vlo, v); \
            V r = BK_SELECT(vhi < m, vhi, m); \
            r = BK_SELECT(v != v, v, r); \
            memcpy(y + i, &r, sizeof r); \
        } \
        for (; i < count; i++) { \
            float v = x[i]; \
            float m = lo >= v ? lo : v; \
            float r = hi < m ? hi : m; \
            y[i] = v != v ? v : r; \
        } \
    }

BK_CLIP_PATH(bk_f32x4, baseline, )
#if defined(__x86_64__)
BK_CLIP_PATH(bk_f32x8, avx2, __attribute__((target("avx2"))))
BK_CLIP_PATH(bk_f32x16, avx512, __attribute__((target("avx512f,avx2"))))
#endif

void bk_clip(int isa, size_t count, const float *x, float *y, float lo, float hi)
{
    switch (isa) {
#if defined(__x86_64__)
    case BK_ISA_AVX512: bk_clip_avx512(count, x, y, lo, hi); break;
    case BK_ISA_AVX2: bk_clip_avx2(count, x, y, lo, hi); break;
#endif
    default: bk_clip_baseline(count, x, y, lo, hi); break;
    }
}
