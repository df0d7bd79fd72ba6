// AVX-512F kernels: 12 × 32 micro-tiles, fused multiply-add.
#if defined(__x86_64__)
#include <immintrin.h>

#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#define SUFFIX(name) name##_avx512
#define MR 12
#define VW 16
typedef __m512 vf;
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSET1(s) _mm512_set1_ps(s)
#define VZERO() _mm512_setzero_ps()
#define VFMA(a, b, acc) _mm512_fmadd_ps((a), (b), (acc))
#define VRELU(v) _mm512_max_ps((v), _mm512_setzero_ps())
#define VMAX(a, b) _mm512_max_ps((a), (b))
// The first n (0 ≤ n ≤ 16) floats; nothing outside them is read or written. VLOADN fills
// the other lanes with -inf (neutral for max), VLOADZ with zero.
#define VLOADN(p, n) _mm512_mask_loadu_ps(_mm512_set1_ps(-__builtin_inff()), (__mmask16)((1u << (n)) - 1u), (p))
#define VLOADZ(p, n) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1u), (p))
#define VSTOREN(p, v, n) _mm512_mask_storeu_ps((p), (__mmask16)((1u << (n)) - 1u), (v))
// max(a[2i], a[2i+1]) for the 32 floats of (lo, hi), in order.
#define VPAIRMAX(lo, hi) _mm512_max_ps( \
    _mm512_permutex2var_ps((lo), _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), (hi)), \
    _mm512_permutex2var_ps((lo), _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), (hi)))
#include "kernels_impl.h"
#pragma clang attribute pop
#endif
