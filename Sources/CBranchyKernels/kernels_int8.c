// Int8 convolution: unsigned 8-bit activations times signed 8-bit weights, summed exactly in
// 32-bit integers, then turned back into floats by one fused multiply-add per output.
//
// Layout. The input image is quantized into a zero-bordered, channels-in-fours layout
// (bk_quantize_image: [c4][hp][wp][4] bytes, the border and the padding channels holding the
// zero point), so that the four channels of one group at one pixel are one 32-bit word. The
// reduction index runs over groups g = tap · c4 + channel group (tap = ki · kw + kj), and B, the
// im2col matrix, holds one word per (g, column) (bk_im2col_words). Weights are packed in panels
// of BK_QMR output channels: for each g, the BK_QMR rows' four bytes each (bk_qpack_weights).
//
// Every path computes the same integer sums (integer addition is exact) and the same epilogue
// fmaf((float)(sum − correction[o]), scale[o], bias[o]), so every path gives the same bits.
#include "branchy_kernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// Word r of a packed weight group (four int8 weights), read without aliasing an int8_t array as int32_t.
static inline int32_t bk_weight_word(const int8_t *group, int r)
{
    int32_t w;
    memcpy(&w, group + (size_t)r * 4, sizeof w);
    return w;
}

int bk_qisa_supported(int qisa)
{
    switch (qisa) {
    case BK_QISA_BASELINE: return 1;
#if defined(__x86_64__)
    case BK_QISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case BK_QISA_VNNI:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f")
            && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    default: return 0;
    }
}

int bk_qisa_best(void)
{
    for (int q = BK_QISA_COUNT - 1; q > 0; q--)
        if (bk_qisa_supported(q)) return q;
    return BK_QISA_BASELINE;
}

const char *bk_qisa_name(int qisa)
{
    switch (qisa) {
    case BK_QISA_AVX2: return "avx2";
    case BK_QISA_VNNI: return "avx512-vnni";
    default: return "baseline";
    }
}

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

size_t bk_qpack_weights_size(int m, int k4) { return round_up((size_t)m, BK_QMR) * (size_t)k4 * 4; }

void bk_qpack_weights(int m, int c, int kh, int kw, const int8_t *w, int8_t *dst)
{
    const int c4 = (c + 3) / 4, taps = kh * kw, k4 = taps * c4;
    const int panels = (m + BK_QMR - 1) / BK_QMR;
    memset(dst, 0, bk_qpack_weights_size(m, k4));
    for (int pi = 0; pi < panels; pi++)
        for (int g = 0; g < k4; g++) {
            const int tap = g / c4, cg = g % c4;
            for (int r = 0; r < BK_QMR; r++) {
                const int o = pi * BK_QMR + r;
                if (o >= m) continue;
                for (int j = 0; j < 4; j++) {
                    const int ch = cg * 4 + j;
                    if (ch >= c) continue;
                    dst[(((size_t)pi * k4 + g) * BK_QMR + r) * 4 + j] = w[((size_t)o * c + ch) * taps + tap];
                }
            }
        }
}

// One float to its byte: t = x · inv_scale clamped to [−1024, 1024] (NaN to −1024, as SSE's max
// does), rounded half to even ((t + 1.5·2²³) − 1.5·2²³ is exact rounding for |t| < 2²²), plus the
// zero point, clamped to [0, 255]. The vector paths below do the same operations.
static inline uint8_t bk_quantize_one(float x, float inv_scale, int zero_point)
{
    float t = x * inv_scale;
    t = t > -1024.0f ? t : -1024.0f;
    t = t < 1024.0f ? t : 1024.0f;
    const float magic = 12582912.0f;
    const float r = (t + magic) - magic;
    const int q = (int)r + zero_point;
    return (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
}

static void bk_quantize_border(int c4, int hp, int wp, int pad, int h, int w, int zero_point, uint32_t *dst)
{
    const uint32_t z = (uint32_t)zero_point * 0x01010101u;
    for (int g = 0; g < c4; g++) {
        uint32_t *plane = dst + (size_t)g * hp * wp;
        for (int y = 0; y < hp; y++) {
            uint32_t *row = plane + (size_t)y * wp;
            if (y < pad || y >= pad + h) { for (int x = 0; x < wp; x++) row[x] = z; continue; }
            for (int x = 0; x < pad; x++) row[x] = z;
            for (int x = pad + w; x < wp; x++) row[x] = z;
        }
    }
}

// The four channels of group g at row y, columns from..<w, as words d[from..<w], channels past c
// holding the zero point.
static void bk_quantize_rows_baseline(int c, int g, int h, int w, int y, int from, const float *x, float inv_scale, int zero_point, uint32_t *d)
{
    for (int i = from; i < w; i++) {
        uint32_t word = 0;
        for (int j = 0; j < 4; j++) {
            const int ch = g * 4 + j;
            const uint8_t q = ch < c ? bk_quantize_one(x[((size_t)ch * h + y) * w + i], inv_scale, zero_point) : (uint8_t)zero_point;
            word |= (uint32_t)q << (8 * j);
        }
        d[i] = word;
    }
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx2,fma")))
static void bk_quantize_rows_avx512(int c, int g, int h, int w, int y, const float *x, float inv_scale, int zero_point, uint32_t *d)
{
    const __m512 inv = _mm512_set1_ps(inv_scale), lo = _mm512_set1_ps(-1024.0f), hi = _mm512_set1_ps(1024.0f);
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    const __m512i zp = _mm512_set1_epi32(zero_point), zero = _mm512_setzero_si512(), top = _mm512_set1_epi32(255);
    for (int i = 0; i < w; i += 16) {
        const int n = w - i < 16 ? w - i : 16;
        const __mmask16 m = (__mmask16)((1u << n) - 1u);
        __m512i word = _mm512_setzero_si512();
        for (int j = 0; j < 4; j++) {
            const int ch = g * 4 + j;
            __m512i q;
            if (ch < c) {
                __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + ((size_t)ch * h + y) * w + i), inv);
                t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
                t = _mm512_sub_ps(_mm512_add_ps(t, magic), magic);
                q = _mm512_add_epi32(_mm512_cvttps_epi32(t), zp);
                q = _mm512_min_epi32(_mm512_max_epi32(q, zero), top);
            } else {
                q = zp;
            }
            word = _mm512_or_si512(word, _mm512_slli_epi32(q, 8 * j));
        }
        _mm512_mask_storeu_epi32(d + i, m, word);
    }
}

__attribute__((target("avx2,fma")))
static void bk_quantize_rows_avx2(int c, int g, int h, int w, int y, const float *x, float inv_scale, int zero_point, uint32_t *d)
{
    const __m256 inv = _mm256_set1_ps(inv_scale), lo = _mm256_set1_ps(-1024.0f), hi = _mm256_set1_ps(1024.0f);
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    const __m256i zp = _mm256_set1_epi32(zero_point), zero = _mm256_setzero_si256(), top = _mm256_set1_epi32(255);
    int i = 0;
    for (; i + 8 <= w; i += 8) {
        __m256i word = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const int ch = g * 4 + j;
            __m256i q;
            if (ch < c) {
                __m256 t = _mm256_mul_ps(_mm256_loadu_ps(x + ((size_t)ch * h + y) * w + i), inv);
                t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
                t = _mm256_sub_ps(_mm256_add_ps(t, magic), magic);
                q = _mm256_add_epi32(_mm256_cvttps_epi32(t), zp);
                q = _mm256_min_epi32(_mm256_max_epi32(q, zero), top);
            } else {
                q = zp;
            }
            word = _mm256_or_si256(word, _mm256_slli_epi32(q, 8 * j));
        }
        _mm256_storeu_si256((__m256i *)(d + i), word);
    }
    if (i < w) bk_quantize_rows_baseline(c, g, h, w, y, i, x, inv_scale, zero_point, d);
}
#endif

void bk_quantize_image(int qisa, int c, int h, int w, int pad, const float *x, float inv_scale, int zero_point, uint8_t *dst)
{
    const int c4 = (c + 3) / 4, hp = h + 2 * pad, wp = w + 2 * pad;
    uint32_t *words = (uint32_t *)dst;
    bk_quantize_border(c4, hp, wp, pad, h, w, zero_point, words);
    for (int g = 0; g < c4; g++)
        for (int y = 0; y < h; y++) {
            uint32_t *d = words + ((size_t)g * hp + y + pad) * wp + pad;
            switch (qisa) {
#if defined(__x86_64__)
            case BK_QISA_VNNI: bk_quantize_rows_avx512(c, g, h, w, y, x, inv_scale, zero_point, d); break;
            case BK_QISA_AVX2: bk_quantize_rows_avx2(c, g, h, w, y, x, inv_scale, zero_point, d); break;
#endif
            default: bk_quantize_rows_baseline(c, g, h, w, y, 0, x, inv_scale, zero_point, d); break;
            }
        }
}

// n words from s to d (n ≥ 4): 16-byte copies, the last one overlapping the one before.
static inline void bk_copy_words(uint32_t *d, const uint32_t *s, int n)
{
    int i = 0;
    for (; i + 4 < n; i += 4) memcpy(d + i, s + i, 16);
    memcpy(d + n - 4, s + n - 4, 16);
}

void bk_im2col_words(int c4, int hp, int wp, int kh, int kw, int stride, int oh, int ow,
                     const uint32_t *image, uint32_t *b, ptrdiff_t ldb)
{
    const size_t plane = (size_t)hp * wp;
    for (int cg = 0; cg < c4; cg++) {
        const uint32_t *p = image + cg * plane;
        for (int ki = 0; ki < kh; ki++)
            for (int kj = 0; kj < kw; kj++) {
                uint32_t *d = b + (ptrdiff_t)((ki * kw + kj) * c4 + cg) * ldb;
                const uint32_t *s = p + (size_t)ki * wp + kj;
                if (stride == 1 && ow >= 4) {
                    for (int oy = 0; oy < oh; oy++, d += ow, s += wp) bk_copy_words(d, s, ow);
                } else {
                    for (int oy = 0; oy < oh; oy++, d += ow, s += (size_t)stride * wp)
                        for (int ox = 0; ox < ow; ox++) d[ox] = s[(size_t)ox * stride];
                }
            }
    }
}

// The reference: one output at a time.
static void bk_qconv_baseline(int m, int k4, const int8_t *pw, const uint32_t *b, ptrdiff_t ldb, int columns,
                              const int32_t *correction, const float *scale, const float *bias, float *y, ptrdiff_t ldy, int relu)
{
    for (int o = 0; o < m; o++) {
        const int8_t *wp = pw + (size_t)(o / BK_QMR) * k4 * BK_QMR * 4 + (size_t)(o % BK_QMR) * 4;
        for (int q = 0; q < columns; q++) {
            // Unsigned arithmetic wraps as the vector paths' 32-bit lanes do (reached only past ~66,000 groups).
            uint32_t acc = 0;
            for (int g = 0; g < k4; g++) {
                uint32_t word = b[(ptrdiff_t)g * ldb + q];
                const int8_t *wg = wp + (size_t)g * BK_QMR * 4;
                for (int j = 0; j < 4; j++) acc += (uint32_t)((int32_t)((word >> (8 * j)) & 0xff) * (int32_t)wg[j]);
            }
            float v = fmaf((float)(int32_t)(acc - (uint32_t)correction[o]), scale[o], bias[o]);
            y[(ptrdiff_t)o * ldy + q] = relu && !(v > 0) ? 0 : v;
        }
    }
}

#if defined(__x86_64__)
// AVX2: a column tile of 8 (one vector) by a panel of 8 rows. Each 4-byte product sum is two
// exact 16-bit multiply-add pairs (even and odd bytes: u8 fits in an int16, so nothing saturates).
__attribute__((target("avx2,fma")))
static void bk_qconv_avx2(int m, int k4, const int8_t *pw, const uint32_t *b, ptrdiff_t ldb, int columns,
                          const int32_t *correction, const float *scale, const float *bias, float *y, ptrdiff_t ldy, int relu)
{
    const __m256i low = _mm256_set1_epi16(0x00ff);
    for (int pi = 0; pi * BK_QMR < m; pi++) {
        const int8_t *panel = pw + (size_t)pi * k4 * BK_QMR * 4;
        const int rows = m - pi * BK_QMR < BK_QMR ? m - pi * BK_QMR : BK_QMR;
        for (int q = 0; q < columns; q += 8) {
            __m256i acc[BK_QMR];
            for (int r = 0; r < BK_QMR; r++) acc[r] = _mm256_setzero_si256();
            for (int g = 0; g < k4; g++) {
                const __m256i bv = _mm256_loadu_si256((const __m256i *)(b + (ptrdiff_t)g * ldb + q));
                const __m256i beven = _mm256_and_si256(bv, low), bodd = _mm256_srli_epi16(bv, 8);
                const int8_t *wg = panel + (size_t)g * BK_QMR * 4;
                for (int r = 0; r < BK_QMR; r++) {
                    const __m256i w = _mm256_set1_epi32(bk_weight_word(wg, r));
                    const __m256i weven = _mm256_srai_epi16(_mm256_slli_epi16(w, 8), 8), wodd = _mm256_srai_epi16(w, 8);
                    acc[r] = _mm256_add_epi32(acc[r], _mm256_add_epi32(_mm256_madd_epi16(beven, weven), _mm256_madd_epi16(bodd, wodd)));
                }
            }
            const int n = columns - q < 8 ? columns - q : 8;
            for (int r = 0; r < rows; r++) {
                const int o = pi * BK_QMR + r;
                __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r], _mm256_set1_epi32(correction[o])));
                v = _mm256_fmadd_ps(v, _mm256_set1_ps(scale[o]), _mm256_set1_ps(bias[o]));
                if (relu) v = _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
                float *d = y + (ptrdiff_t)o * ldy + q;
                if (n == 8) _mm256_storeu_ps(d, v);
                else {
                    float t[8];
                    _mm256_storeu_ps(t, v);
                    memcpy(d, t, (size_t)n * sizeof(float));
                }
            }
        }
    }
}

// AVX-512 VNNI: a column tile of 32 (two vectors; 16 at the end when that covers the rest) by a
// panel of 8 rows, one vpdpbusd per row and vector for every four channels of a tap.
// One panel of 8 rows by 32 columns (two vectors; nv = 1: 16) of output, `n` columns of the last vector stored.
__attribute__((target("avx512f,avx512bw,avx512vnni,avx2,fma")))
static inline void bk_qtile_vnni(int rows, int o0, int k4, const int8_t *panel, const uint32_t *bq, ptrdiff_t ldb, int nv, int n,
                                 const int32_t *correction, const float *scale, const float *bias, float *y, ptrdiff_t ldy, int relu)
{
    __m512i a0[BK_QMR], a1[BK_QMR];
    for (int r = 0; r < BK_QMR; r++) { a0[r] = _mm512_setzero_si512(); a1[r] = _mm512_setzero_si512(); }
    if (nv == 2) {
        for (int g = 0; g < k4; g++, bq += ldb) {
            const __m512i b0 = _mm512_loadu_si512(bq), b1 = _mm512_loadu_si512(bq + 16);
            const int8_t *wg = panel + (size_t)g * BK_QMR * 4;
            for (int r = 0; r < BK_QMR; r++) {
                const __m512i w = _mm512_set1_epi32(bk_weight_word(wg, r));
                a0[r] = _mm512_dpbusd_epi32(a0[r], b0, w);
                a1[r] = _mm512_dpbusd_epi32(a1[r], b1, w);
            }
        }
    } else {
        for (int g = 0; g < k4; g++, bq += ldb) {
            const __m512i b0 = _mm512_loadu_si512(bq);
            const int8_t *wg = panel + (size_t)g * BK_QMR * 4;
            for (int r = 0; r < BK_QMR; r++) a0[r] = _mm512_dpbusd_epi32(a0[r], b0, _mm512_set1_epi32(bk_weight_word(wg, r)));
        }
    }
    const __mmask16 tail = (__mmask16)((1u << n) - 1u);
    for (int r = 0; r < rows; r++) {
        const int o = o0 + r;
        const __m512i c = _mm512_set1_epi32(correction[o]);
        const __m512 s = _mm512_set1_ps(scale[o]), bi = _mm512_set1_ps(bias[o]);
        float *d = y + (ptrdiff_t)o * ldy;
        __m512 v0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(a0[r], c)), s, bi);
        if (relu) v0 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v0, _mm512_setzero_ps(), _CMP_GT_OQ), v0);
        if (nv == 1) { _mm512_mask_storeu_ps(d, tail, v0); continue; }
        __m512 v1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(a1[r], c)), s, bi);
        if (relu) v1 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v1, _mm512_setzero_ps(), _CMP_GT_OQ), v1);
        _mm512_storeu_ps(d, v0);
        _mm512_mask_storeu_ps(d + 16, tail, v1);
    }
}

// AVX-512 VNNI: column tiles of 32 (16 at the end when that covers the rest), each run against every
// panel of 8 rows while it is in the first-level cache; one vpdpbusd per row and vector for every
// four channels of a tap.
__attribute__((target("avx512f,avx512bw,avx512vnni,avx2,fma")))
static void bk_qconv_vnni(int m, int k4, const int8_t *pw, const uint32_t *b, ptrdiff_t ldb, int columns,
                          const int32_t *correction, const float *scale, const float *bias, float *y, ptrdiff_t ldy, int relu)
{
    for (int q = 0; q < columns; q += 32) {
        const int left = columns - q, nv = left > 16 ? 2 : 1, n = nv == 2 ? left - 16 : left;
        for (int pi = 0; pi * BK_QMR < m; pi++) {
            const int rows = m - pi * BK_QMR < BK_QMR ? m - pi * BK_QMR : BK_QMR;
            bk_qtile_vnni(rows, pi * BK_QMR, k4, pw + (size_t)pi * k4 * BK_QMR * 4, b + q, ldb, nv, n > 16 ? 16 : n,
                          correction, scale, bias, y + q, ldy, relu);
        }
    }
}
#endif

int bk_qconv_ldb(int columns) { return (int)round_up((size_t)(columns > 0 ? columns : 1), 32); }

void bk_qconv(int qisa, int m, int k4, const int8_t *packed_w, const uint32_t *b, ptrdiff_t ldb, int columns,
              const int32_t *correction, const float *scale, const float *bias, float *y, ptrdiff_t ldy, int relu)
{
    switch (qisa) {
#if defined(__x86_64__)
    case BK_QISA_VNNI: bk_qconv_vnni(m, k4, packed_w, b, ldb, columns, correction, scale, bias, y, ldy, relu); return;
    case BK_QISA_AVX2: bk_qconv_avx2(m, k4, packed_w, b, ldb, columns, correction, scale, bias, y, ldy, relu); return;
#endif
    default: bk_qconv_baseline(m, k4, packed_w, b, ldb, columns, correction, scale, bias, y, ldy, relu); return;
    }
}
