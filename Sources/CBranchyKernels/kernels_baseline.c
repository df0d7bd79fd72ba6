// Baseline kernels (x86-64 SSE2, or the compiler's generic vectors elsewhere): 4 × 8
// micro-tiles, multiply then add (no fused multiply-add on this path).
#if defined(__x86_64__)
#include <immintrin.h>
typedef __m128 vf;
#define VLOAD(p) _mm_loadu_ps(p)
#define VSTORE(p, v) _mm_storeu_ps((p), (v))
#define VSET1(s) _mm_set1_ps(s)
#define VZERO() _mm_setzero_ps()
#define VFMA(a, b, acc) _mm_add_ps((acc), _mm_mul_ps((a), (b)))
#define VRELU(v) _mm_max_ps((v), _mm_setzero_ps())
#define VMAX(a, b) _mm_max_ps((a), (b))
#define VPAIRMAX(lo, hi) _mm_max_ps(_mm_shuffle_ps((lo), (hi), 0x88), _mm_shuffle_ps((lo), (hi), 0xDD))
#else
#include <string.h>
typedef float vf __attribute__((vector_size(16)));
static inline vf bk_load(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void bk_store(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vf bk_relu(vf v) { vf z = {0, 0, 0, 0}; return v > z ? v : z; }
#define VLOAD(p) bk_load(p)
#define VSTORE(p, v) bk_store((p), (v))
#define VSET1(s) ((vf){0, 0, 0, 0} + (s))
#define VZERO() ((vf){0, 0, 0, 0})
#define VFMA(a, b, acc) ((acc) + (a) * (b))
#define VRELU(v) bk_relu(v)
#endif
#pragma clang fp contract(off)
#define SUFFIX(name) name##_baseline
#define MR 4
#define VW 4
#include "kernels_impl.h"
