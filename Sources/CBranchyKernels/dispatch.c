// Run-time choice of the kernel path, and the ISA-independent helpers.
#include "branchy_kernels.h"
#include "kernels_internal.h"
#include <string.h>

int bk_isa_supported(int isa)
{
    switch (isa) {
    case BK_ISA_BASELINE: return 1;
#if defined(__x86_64__)
    case BK_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case BK_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    default: return 0;
    }
}

int bk_isa_best(void)
{
    for (int isa = BK_ISA_COUNT - 1; isa > 0; isa--)
        if (bk_isa_supported(isa)) return isa;
    return BK_ISA_BASELINE;
}

const char *bk_isa_name(int isa)
{
    switch (isa) {
    case BK_ISA_AVX2: return "avx2";
    case BK_ISA_AVX512: return "avx512";
    default: return "baseline";
    }
}

int bk_isa_mr(int isa) { return isa == BK_ISA_AVX512 ? 12 : isa == BK_ISA_AVX2 ? 6 : 4; }
int bk_isa_nr(int isa) { return isa == BK_ISA_AVX512 ? 32 : isa == BK_ISA_AVX2 ? 16 : 8; }

#if defined(__x86_64__)
#define BK_DISPATCH(isa, call) \
    do { \
        switch (isa) { \
        case BK_ISA_AVX512: call(avx512); break; \
        case BK_ISA_AVX2: call(avx2); break; \
        default: call(baseline); break; \
        } \
    } while (0)
#define BK_DISPATCH_RETURN(isa, call) \
    switch (isa) { \
    case BK_ISA_AVX512: return call(avx512); \
    case BK_ISA_AVX2: return call(avx2); \
    default: return call(baseline); \
    }
#else
#define BK_DISPATCH(isa, call) do { (void)(isa); call(baseline); } while (0)
#define BK_DISPATCH_RETURN(isa, call) (void)(isa); return call(baseline);
#endif

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

size_t bk_pack_a_size(int isa, int m, int k) { return round_up((size_t)m, (size_t)bk_isa_mr(isa)) * (size_t)k; }
size_t bk_pack_b_size(int isa, int k, int n) { return round_up((size_t)n, (size_t)bk_isa_nr(isa)) * (size_t)k; }

void bk_pack_a(int isa, int m, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
#define CALL(S) bk_pack_a_##S(m, k, a, rs, cs, dst)
    BK_DISPATCH(isa, CALL);
#undef CALL
}

void bk_pack_b(int isa, int k, int n, const float *b, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
#define CALL(S) bk_pack_b_##S(k, n, b, rs, cs, dst)
    BK_DISPATCH(isa, CALL);
#undef CALL
}

int bk_conv_columns(int isa, int columns)
{
    int nr = bk_isa_nr(isa), vw = nr / 2;
    int full = columns / nr, rest = columns - full * nr;
    if (rest > vw) return (full + 1) * nr;
    return full * nr + (rest > 0 ? vw : 0);
}

void bk_conv_tiles(int isa, int m, int k, const float *packed_w, const float *bias,
                   const float *bbase, const int32_t *off, int columns,
                   float *map, ptrdiff_t map_stride, int relu)
{
#define CALL(S) bk_conv_tiles_##S(m, k, packed_w, bias, bbase, off, columns, map, map_stride, relu)
    BK_DISPATCH(isa, CALL);
#undef CALL
}

size_t bk_linear_scratch_size(int isa, int n, int k)
{
#define CALL(S) bk_linear_scratch_size_##S(n, k)
    BK_DISPATCH_RETURN(isa, CALL)
#undef CALL
}

void bk_linear(int isa, int n, int k, int o, const float *x, ptrdiff_t ldx,
               const float *packed_wt, const float *bias, float *y, ptrdiff_t ldy, int relu, float *scratch)
{
#define CALL(S) bk_linear_##S(n, k, o, x, ldx, packed_wt, bias, y, ldy, relu, scratch)
    BK_DISPATCH(isa, CALL);
#undef CALL
}

size_t bk_sgemm_scratch_size(int isa, int m, int n, int k)
{
#define CALL(S) bk_sgemm_scratch_size_##S(m, n, k)
    BK_DISPATCH_RETURN(isa, CALL)
#undef CALL
}

void bk_sgemm(int isa, int m, int n, int k,
              const float *a, ptrdiff_t ars, ptrdiff_t acs,
              const float *b, ptrdiff_t brs, ptrdiff_t bcs,
              float *c, ptrdiff_t ldc, int accumulate, float *scratch)
{
#define CALL(S) bk_sgemm_##S(m, n, k, a, ars, acs, b, brs, bcs, c, ldc, accumulate, scratch)
    BK_DISPATCH(isa, CALL);
#undef CALL
}

void bk_copy_planes(int c, int h, int w, const float *src, ptrdiff_t src_cs, ptrdiff_t src_rs,
                    float *dst, ptrdiff_t dst_cs, ptrdiff_t dst_rs, int relu)
{
    for (int ch = 0; ch < c; ch++) {
        for (int y = 0; y < h; y++) {
            const float *s = src + ch * src_cs + y * src_rs;
            float *d = dst + ch * dst_cs + y * dst_rs;
            if (relu) { for (int x = 0; x < w; x++) d[x] = s[x] > 0 ? s[x] : 0; }
            else memcpy(d, s, (size_t)w * sizeof(float));
        }
    }
}

void bk_maxpool(int isa, int c, int h, int w, const float *src, ptrdiff_t src_cs, ptrdiff_t src_rs,
                int kernel, int stride, int pad, int oh, int ow,
                float *dst, ptrdiff_t dst_cs, ptrdiff_t dst_rs, int relu)
{
#define CALL(S) bk_maxpool_##S(c, h, w, src, src_cs, src_rs, kernel, stride, pad, oh, ow, dst, dst_cs, dst_rs, relu)
    BK_DISPATCH(isa, CALL);
#undef CALL
}

void bk_im2col(int c, int h, int w, int kh, int kw, int stride, int pad, int oh, int ow,
               const float *x, float *col, ptrdiff_t ld)
{
    ptrdiff_t row = 0;

    for (int ch = 0; ch < c; ch++) {
        const float *xc = x + (ptrdiff_t)ch * h * w;
        for (int ki = 0; ki < kh; ki++) {
            for (int kj = 0; kj < kw; kj++, row++) {
                float *dst = col + row * ld;
                for (int oy = 0; oy < oh; oy++) {
                    int iy = oy * stride - pad + ki;
                    float *d = dst + oy * ow;
                    if (iy < 0 || iy >= h) { memset(d, 0, (size_t)ow * sizeof(float)); continue; }
                    const float *xr = xc + (ptrdiff_t)iy * w;
                    for (int ox = 0; ox < ow; ox++) {
                        int ix = ox * stride - pad + kj;
                        d[ox] = (ix >= 0 && ix < w) ? xr[ix] : 0;
                    }
                }
            }
        }
    }
}

void bk_im2col_padded(int isa, int c, int hp, int wp, int kh, int kw, int oh, int ow,
                      const float *padded, float *col, ptrdiff_t ld)
{
#define CALL(S) bk_im2col_padded_##S(c, hp, wp, kh, kw, oh, ow, padded, col, ld)
    BK_DISPATCH(isa, CALL);
#undef CALL
}

void bk_winograd_input(int isa, int c, int h, int w, const float *x, float *padded, float *v)
{
#define CALL(S) bk_winograd_input_##S(c, h, w, x, padded, v)
    BK_DISPATCH(isa, CALL);
#undef CALL
}

void bk_winograd_output(int isa, int o, int th, int tw, const float *m, const float *bias,
                        float *map, ptrdiff_t map_cs, int relu)
{
#define CALL(S) bk_winograd_output_##S(o, th, tw, m, bias, map, map_cs, relu)
    BK_DISPATCH(isa, CALL);
#undef CALL
}

void bk_gemm_rows(int isa, int n, int k, int o, const float *x, ptrdiff_t ldx, const float *packed_b, float *y, ptrdiff_t ldy)
{
#define CALL(S) bk_gemm_rows_##S(n, k, o, x, ldx, packed_b, y, ldy)
    BK_DISPATCH(isa, CALL);
#undef CALL
}

void bk_conv_rows(int isa, int m, int k, const float *packed_w, const float *bias,
                  const float *bbase, const int32_t *off, int columns,
                  float *y, ptrdiff_t ldy, int relu, float *scratch)
{
#define CALL(S) bk_conv_rows_##S(m, k, packed_w, bias, bbase, off, columns, y, ldy, relu, scratch)
    BK_DISPATCH(isa, CALL);
#undef CALL
}
