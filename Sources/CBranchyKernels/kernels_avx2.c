// AVX2 + FMA kernels: 6 × 16 micro-tiles, fused multiply-add.
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define SUFFIX(name) name##_avx2
#define MR 6
#define VW 8
typedef __m256 vf;
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VSET1(s) _mm256_set1_ps(s)
#define VZERO() _mm256_setzero_ps()
#define VFMA(a, b, acc) _mm256_fmadd_ps((a), (b), (acc))
#define VRELU(v) _mm256_max_ps((v), _mm256_setzero_ps())
#define VMAX(a, b) _mm256_max_ps((a), (b))
// The first n (0 ≤ n ≤ 8) floats; nothing outside them is read or written. VLOADN fills
// the other lanes with -inf (neutral for max), VLOADZ with zero.
static const int32_t bk_avx2_masks[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
#define VMASKN(n) _mm256_loadu_si256((const __m256i *)(bk_avx2_masks + 8 - (n)))
#define VLOADZ(p, n) _mm256_maskload_ps((p), VMASKN(n))
#define VLOADN(p, n) _mm256_blendv_ps(_mm256_set1_ps(-__builtin_inff()), VLOADZ((p), (n)), _mm256_castsi256_ps(VMASKN(n)))
#define VSTOREN(p, v, n) _mm256_maskstore_ps((p), VMASKN(n), (v))
#define VPAIRMAX(lo, hi) _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_max_ps( \
    _mm256_shuffle_ps((lo), (hi), 0x88), _mm256_shuffle_ps((lo), (hi), 0xDD))), 0xD8))
#include "kernels_impl.h"
#pragma clang attribute pop
#endif
