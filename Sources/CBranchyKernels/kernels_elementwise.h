// Elementwise kernels written once for every vector width. A kernel gives its body for one
// vector as a macro BODY(V, v) over clang's vector extensions (operators on whole vectors,
// BK_SPLAT, BK_VMAX, BK_VMIN); BK_ELEMENTWISE(name, BODY) then defines one loop per ISA, each
// compiled for that ISA's vector width and instructions, and the dispatcher
//   void bk_<name>(int isa, size_t count, const float *x, float *y)
// that chooses among them at run time. Every element goes through BODY, the tail too (in a
// zero-padded vector), so an element's result depends neither on the path nor on its position.
#ifndef BRANCHY_KERNELS_ELEMENTWISE_H
#define BRANCHY_KERNELS_ELEMENTWISE_H
#include "branchy_kernels.h"
#include <string.h>

typedef float bk_f32x4 __attribute__((vector_size(16)));
typedef float bk_f32x8 __attribute__((vector_size(32)));
typedef float bk_f32x16 __attribute__((vector_size(64)));

/// Every lane of a V set to the float s.
#define BK_SPLAT(V, s) ((V){0} + (float)(s))
/// Lanes of a where the comparison mask m is set, else of b.
#define BK_SELECT(m, a, b) ((__typeof__(a))(((m) & (__typeof__(m))(a)) | (~(m) & (__typeof__(m))(b))))
/// a > b ? a : b and a < b ? a : b per lane, as the SSE and AVX max and min instructions
/// take them: b where either lane is NaN.
#define BK_VMAX(a, b) BK_SELECT((a) > (b), (a), (b))
#define BK_VMIN(a, b) BK_SELECT((a) < (b), (a), (b))

/// One path: count floats, whole vectors of V, then the tail in a zero-padded vector.
#define BK_ELEMENTWISE_PATH(NAME, BODY, V, S, ATTRIBUTES) \
    ATTRIBUTES static void bk_##NAME##_##S(size_t count, const float *x, float *y) \
    { \
        enum { W = sizeof(V) / sizeof(float) }; \
        size_t i = 0; \
        V v; \
        for (; i + W <= count; i += W) { \
            memcpy(&v, x + i, sizeof v); \
            v = BODY(V, v); \
            memcpy(y + i, &v, sizeof v); \
        } \
        if (i < count) { \
            float t[W] = {0}; \
            memcpy(t, x + i, (count - i) * sizeof(float)); \
            memcpy(&v, t, sizeof v); \
            v = BODY(V, v); \
            memcpy(t, &v, sizeof v); \
            memcpy(y + i, t, (count - i) * sizeof(float)); \
        } \
    }

#if defined(__x86_64__)
#define BK_ELEMENTWISE(NAME, BODY) \
    BK_ELEMENTWISE_PATH(NAME, BODY, bk_f32x4, baseline, ) \
    BK_ELEMENTWISE_PATH(NAME, BODY, bk_f32x8, avx2, __attribute__((target("avx2")))) \
    BK_ELEMENTWISE_PATH(NAME, BODY, bk_f32x16, avx512, __attribute__((target("avx512f,avx2")))) \
    void bk_##NAME(int isa, size_t count, const float *x, float *y) \
    { \
        switch (isa) { \
        case BK_ISA_AVX512: bk_##NAME##_avx512(count, x, y); break; \
        case BK_ISA_AVX2: bk_##NAME##_avx2(count, x, y); break; \
        default: bk_##NAME##_baseline(count, x, y); break; \
        } \
    }
#else
#define BK_ELEMENTWISE(NAME, BODY) \
    BK_ELEMENTWISE_PATH(NAME, BODY, bk_f32x4, baseline, ) \
    void bk_##NAME(int isa, size_t count, const float *x, float *y) { (void)isa; bk_##NAME##_baseline(count, x, y); }
#endif

#endif
