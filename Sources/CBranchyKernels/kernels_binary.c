// Binary (XNOR-Net) kernels: signs packed 64 to a word, dot products of ±1 vectors by
// XOR and popcount. Every result is an exact integer, so the paths differ in speed only:
// the baseline path counts bits with the compiler's generic sequence, the AVX2 and
// AVX-512 paths with the POPCNT instruction (which every CPU with AVX2 has).
#include "branchy_kernels.h"

// alpha * dot + bias must round twice (multiply, then add), as the Swift reference does.
#pragma clang fp contract(off)

size_t bk_sign_words(int n) { return ((size_t)n + 63) / 64; }

void bk_pack_signs(int rows, int n, const float *x, ptrdiff_t ldx, uint64_t *dst)
{
    size_t words = bk_sign_words(n);
    for (int r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        uint64_t *d = dst + (size_t)r * words;
        for (size_t w = 0; w < words; w++) {
            int lo = (int)(w * 64), hi = lo + 64 < n ? lo + 64 : n;
            uint64_t bits = 0;
            // Bit set = −1: every value that is not >= 0 (negative, or NaN).
            for (int j = lo; j < hi; j++) bits |= (uint64_t)!(xr[j] >= 0.0f) << (j - lo);
            d[w] = bits;
        }
    }
}

// y[s, o] = alpha[o] * (n − 2 · popcount(xbits[s] ^ wbits[o])) + bias[o].
#define BK_XNOR_BODY \
    size_t words = bk_sign_words(k); \
    bk_pack_signs(n, k, x, ldx, xbits); \
    for (int s = 0; s < n; s++) { \
        const uint64_t *xs = xbits + (size_t)s * words; \
        float *ys = y + s * ldy; \
        for (int j = 0; j < o; j++) { \
            const uint64_t *wj = wbits + (size_t)j * words; \
            int differ = 0; \
            for (size_t w = 0; w < words; w++) differ += __builtin_popcountll(xs[w] ^ wj[w]); \
            float v = alpha[j] * (float)(k - 2 * differ); \
            ys[j] = bias ? v + bias[j] : v; \
        } \
    }

static void bk_xnor_linear_generic(int n, int k, int o, const float *x, ptrdiff_t ldx, const uint64_t *wbits,
                                   const float *alpha, const float *bias, float *y, ptrdiff_t ldy, uint64_t *xbits)
{
    BK_XNOR_BODY
}

#if defined(__x86_64__)
__attribute__((target("popcnt")))
static void bk_xnor_linear_popcnt(int n, int k, int o, const float *x, ptrdiff_t ldx, const uint64_t *wbits,
                                  const float *alpha, const float *bias, float *y, ptrdiff_t ldy, uint64_t *xbits)
{
    BK_XNOR_BODY
}
#endif

void bk_xnor_linear(int isa, int n, int k, int o, const float *x, ptrdiff_t ldx, const uint64_t *wbits,
                    const float *alpha, const float *bias, float *y, ptrdiff_t ldy, uint64_t *xbits)
{
#if defined(__x86_64__)
    if (isa == BK_ISA_AVX2 || isa == BK_ISA_AVX512) {
        bk_xnor_linear_popcnt(n, k, o, x, ldx, wbits, alpha, bias, y, ldy, xbits);
        return;
    }
#endif
    (void)isa;
    bk_xnor_linear_generic(n, k, o, x, ldx, wbits, alpha, bias, y, ldy, xbits);
}

void bk_sign(size_t count, const float *x, float *y)
{
    for (size_t i = 0; i < count; i++) y[i] = x[i] >= 0.0f ? 1.0f : -1.0f;
}
