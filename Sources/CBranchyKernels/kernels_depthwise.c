// Depthwise 3×3 convolution (one input and one output channel per group: MobileNet's blocks),
// one image at a time, vectorised across channels. The image is copied into a zero-bordered
// HWC buffer with the channels padded to whole vectors, every output position then sums the
// bias and its nine taps in order (ky, then kx) on whole vectors of channels, and the result is
// copied back to CHW. A multiply and an add per tap, never fused, so every path gives the same
// values as GroupedConv2D.depthwise3x3, its Swift twin in Sources/BranchyTensor, except that a
// tap in the zero border adds w · 0 where the twin skips it, which can only turn a −0 sum into +0.
#include "kernels_elementwise.h"

#pragma clang fp contract(off)

#define BK_DEPTHWISE_PATH(V, S, ATTRIBUTES) \
    ATTRIBUTES static void bk_depthwise3x3_##S(const bk_depthwise_geometry *g, const float *x, const float *w, const float *bias, \
                                               float *scratch, float *y) \
    { \
        enum { L = sizeof(V) / sizeof(float) }; \
        const int c = g->channels, cp = g->padded_channels, hp = g->height + 2 * g->pad, wp = g->width + 2 * g->pad; \
        float *in = scratch, *out = scratch + (size_t)hp * wp * cp; \
        memset(in, 0, sizeof(float) * (size_t)hp * wp * cp); \
        for (int ch = 0; ch < c; ch++) \
            for (int i = 0; i < g->height; i++) \
                for (int j = 0; j < g->width; j++) \
                    in[((size_t)(i + g->pad) * wp + j + g->pad) * cp + ch] = x[((size_t)ch * g->height + i) * g->width + j]; \
        const size_t row = (size_t)g->dilation * wp * cp, col = (size_t)g->dilation * cp; \
        for (int oy = 0; oy < g->out_height; oy++) \
            for (int ox = 0; ox < g->out_width; ox++) { \
                const float *base = in + ((size_t)oy * g->stride * wp + (size_t)ox * g->stride) * cp; \
                float *o = out + ((size_t)oy * g->out_width + ox) * cp; \
                for (int k = 0; k < cp; k += L) { \
                    V acc, t, v; \
                    memcpy(&acc, bias + k, sizeof acc); \
                    for (int ky = 0; ky < 3; ky++) \
                        for (int kx = 0; kx < 3; kx++) { \
                            memcpy(&t, w + (size_t)(ky * 3 + kx) * cp + k, sizeof t); \
                            memcpy(&v, base + ky * row + kx * col + k, sizeof v); \
                            acc = acc + t * v; \
                        } \
                    memcpy(o + k, &acc, sizeof acc); \
                } \
            } \
        const int plane = g->out_height * g->out_width; \
        for (int p = 0; p < plane; p++) \
            for (int ch = 0; ch < c; ch++) y[(size_t)ch * plane + p] = out[(size_t)p * cp + ch]; \
    }

BK_DEPTHWISE_PATH(bk_f32x4, baseline, )
#if defined(__x86_64__)
BK_DEPTHWISE_PATH(bk_f32x8, avx2, __attribute__((target("avx2"))))
BK_DEPTHWISE_PATH(bk_f32x16, avx512, __attribute__((target("avx512f,avx2"))))
#endif

size_t bk_depthwise3x3_scratch(const bk_depthwise_geometry *g)
{
    return (size_t)g->padded_channels * ((size_t)(g->height + 2 * g->pad) * (g->width + 2 * g->pad) + (size_t)g->out_height * g->out_width);
}

void bk_depthwise3x3(int isa, const bk_depthwise_geometry *g, const float *x, const float *w, const float *bias, float *scratch, float *y)
{
    switch (isa) {
#if defined(__x86_64__)
    case BK_ISA_AVX512: bk_depthwise3x3_avx512(g, x, w, bias, scratch, y); break;
    case BK_ISA_AVX2: bk_depthwise3x3_avx2(g, x, w, bias, scratch, y); break;
#endif
    default: bk_depthwise3x3_baseline(g, x, w, bias, scratch, y); break;
    }
}
