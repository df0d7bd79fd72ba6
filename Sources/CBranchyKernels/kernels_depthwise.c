// Depthwise 3×3 convolution (one input and one output channel per group: MobileNet's blocks),
// one image at a time. At stride 1 or 2 vectorised along each plane (BK_DEPTHWISE_PLANES below);
// otherwise vectorised across channels: The image is copied into a zero-bordered
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
        /* Both transposes element by element: vectorized, they would gather or scatter. */ \
        for (int ch = 0; ch < c; ch++) \
            for (int i = 0; i < g->height; i++) { \
                const float *xr = x + ((size_t)ch * g->height + i) * g->width; \
                float *d = in + ((size_t)(i + g->pad) * wp + g->pad) * cp + ch; \
                _Pragma("clang loop vectorize(disable)") \
                for (int j = 0; j < g->width; j++) d[(size_t)j * cp] = xr[j]; \
            } \
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
        for (int ch = 0; ch < c; ch++) { \
            float *yc = y + (size_t)ch * plane; \
            _Pragma("clang loop vectorize(disable)") \
            for (int p = 0; p < plane; p++) yc[p] = out[(size_t)p * cp + ch]; \
        } \
    }

// Stride 1 or 2, planes as they lie (CHW): each channel is copied into a zero-bordered plane,
// and the outputs of stride 1 are computed in the plane's width (output (oy, ox) at oy · wp + ox,
// so every tap of a vector of outputs is one contiguous load), then compacted (at stride 2,
// every other row and column: four times the sums needed, still cheaper on small maps than the
// transposes). The same operations per
// output as above (bias, then each tap's product added in order), so the same bits, without
// the transposes into and out of channels-last.
static size_t bk_depthwise_wide(const bk_depthwise_geometry *g, int lanes, size_t *plane_floats)
{
    const size_t wp = (size_t)g->width + 2 * g->pad, hp = (size_t)g->height + 2 * g->pad;
    const size_t wide = (size_t)(g->out_height - 1) * g->stride * wp + (size_t)(g->out_width - 1) * g->stride + 1;
    const size_t vectors = (wide + lanes - 1) / lanes;
    const size_t reach = vectors * lanes + 2 * (size_t)g->dilation * (wp + 1);
    *plane_floats = (hp * wp > reach ? hp * wp : reach);
    return vectors;
}

#define BK_DEPTHWISE_PLANES(V, S, ATTRIBUTES) \
    ATTRIBUTES static void bk_depthwise3x3_planes_##S(const bk_depthwise_geometry *g, const float *x, const float *w, \
                                                      const float *bias, float *scratch, float *y) \
    { \
        enum { L = sizeof(V) / sizeof(float) }; \
        size_t plane_floats; \
        const size_t vectors = bk_depthwise_wide(g, L, &plane_floats); \
        const int cp = g->padded_channels, wp = g->width + 2 * g->pad, oh = g->out_height, ow = g->out_width; \
        const size_t row = (size_t)g->dilation * wp, col = (size_t)g->dilation; \
        float *plane = scratch, *out = scratch + plane_floats; \
        memset(plane, 0, sizeof(float) * plane_floats); \
        for (int ch = 0; ch < g->channels; ch++) { \
            for (int i = 0; i < g->height; i++) \
                memcpy(plane + (size_t)(i + g->pad) * wp + g->pad, x + ((size_t)ch * g->height + i) * g->width, \
                       sizeof(float) * (size_t)g->width); \
            V taps[9]; \
            for (int k = 0; k < 9; k++) taps[k] = (V){0} + w[(size_t)k * cp + ch]; \
            const V b = (V){0} + bias[ch]; \
            for (size_t q = 0; q < vectors; q++) { \
                const float *base = plane + q * L; \
                V acc = b, v; \
                for (int ky = 0; ky < 3; ky++) \
                    for (int kx = 0; kx < 3; kx++) { \
                        memcpy(&v, base + ky * row + kx * col, sizeof v); \
                        acc = acc + taps[ky * 3 + kx] * v; \
                    } \
                memcpy(out + q * L, &acc, sizeof acc); \
            } \
            float *yc = y + (size_t)ch * oh * ow; \
            if (g->stride == 1) { \
                for (int oy = 0; oy < oh; oy++) memcpy(yc + (size_t)oy * ow, out + (size_t)oy * wp, sizeof(float) * (size_t)ow); \
            } else { \
                const int st = g->stride; \
                for (int oy = 0; oy < oh; oy++) \
                    for (int ox = 0; ox < ow; ox++) yc[(size_t)oy * ow + ox] = out[(size_t)oy * st * wp + (size_t)ox * st]; \
            } \
        } \
    }

BK_DEPTHWISE_PATH(bk_f32x4, baseline, )
BK_DEPTHWISE_PLANES(bk_f32x4, baseline, )
#if defined(__x86_64__)
BK_DEPTHWISE_PATH(bk_f32x8, avx2, __attribute__((target("avx2"))))
BK_DEPTHWISE_PATH(bk_f32x16, avx512, __attribute__((target("avx512f,avx2"))))
BK_DEPTHWISE_PLANES(bk_f32x8, avx2, __attribute__((target("avx2"))))
BK_DEPTHWISE_PLANES(bk_f32x16, avx512, __attribute__((target("avx512f,avx2"))))
#endif

size_t bk_depthwise3x3_scratch(const bk_depthwise_geometry *g)
{
    size_t plane_floats;
    const size_t vectors = bk_depthwise_wide(g, 16, &plane_floats);
    const size_t channels_last = (size_t)g->padded_channels * ((size_t)(g->height + 2 * g->pad) * (g->width + 2 * g->pad) + (size_t)g->out_height * g->out_width);
    const size_t planes = plane_floats + vectors * 16;
    return channels_last > planes ? channels_last : planes;
}

void bk_depthwise3x3(int isa, const bk_depthwise_geometry *g, const float *x, const float *w, const float *bias, float *scratch, float *y)
{
    if (g->stride <= 2) {
        switch (isa) {
#if defined(__x86_64__)
        case BK_ISA_AVX512: bk_depthwise3x3_planes_avx512(g, x, w, bias, scratch, y); return;
        case BK_ISA_AVX2: bk_depthwise3x3_planes_avx2(g, x, w, bias, scratch, y); return;
#endif
        default: bk_depthwise3x3_planes_baseline(g, x, w, bias, scratch, y); return;
        }
    }
    switch (isa) {
#if defined(__x86_64__)
    case BK_ISA_AVX512: bk_depthwise3x3_avx512(g, x, w, bias, scratch, y); break;
    case BK_ISA_AVX2: bk_depthwise3x3_avx2(g, x, w, bias, scratch, y); break;
#endif
    default: bk_depthwise3x3_baseline(g, x, w, bias, scratch, y); break;
    }
}
