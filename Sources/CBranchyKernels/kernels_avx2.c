// AVX2 + FMA kernels: 6 × 16 micro-tiles, fused multiply-add.
#if defined(__x86_64__)
#include <immintrin.h>

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
#include "kernels_impl.h"
#pragma clang attribute pop
#endif
