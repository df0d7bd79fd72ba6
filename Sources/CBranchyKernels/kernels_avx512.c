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
#include "kernels_impl.h"
#pragma clang attribute pop
#endif
