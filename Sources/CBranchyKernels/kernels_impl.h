// The body of the kernels of one ISA. Included by kernels_<isa>.c after defining:
//   SUFFIX(name)   name with the ISA's suffix
//   MR             rows of A per micro-tile
//   VW             floats per vector; NR = 2 * VW columns per micro-tile
//   vf             the vector type
//   VLOAD(p) VSTORE(p, v) VSET1(s) VZERO() VFMA(a, b, acc) = acc + a * b  VRELU(v)
// and wrapping the include in the ISA's target attribute.
// The body is in three parts: this file (packing, the micro-tile and the convolution's tiles),
// kernels_impl_gemm.h (the linear layer and the general matrix product) and kernels_impl_maps.h
// (max pooling and im2col) and kernels_impl_winograd.h (Winograd transforms), included at its end.
#include "branchy_kernels.h"
#include "kernels_internal.h"
#include <stdlib.h>
#include <string.h>

#define NR (2 * VW)

static void SUFFIX(pack_a_panel)(int rows, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
    if (cs == 1) {
        for (int r = 0; r < rows; r++) {
            const float *ar = a + r * rs;
            for (int p = 0; p < k; p++) dst[(ptrdiff_t)p * MR + r] = ar[p];
        }
    } else {
        for (int p = 0; p < k; p++)
            for (int r = 0; r < rows; r++) dst[(ptrdiff_t)p * MR + r] = a[r * rs + p * cs];
    }
    if (rows < MR)
        for (int p = 0; p < k; p++)
            for (int r = rows; r < MR; r++) dst[(ptrdiff_t)p * MR + r] = 0;
}

static void SUFFIX(pack_b_panel)(int cols, int k, const float *b, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
    for (int p = 0; p < k; p++) {
        float *d = dst + (ptrdiff_t)p * NR;
        const float *bp = b + p * rs;
        if (cs == 1) {
            memcpy(d, bp, (size_t)cols * sizeof(float));
        } else {
            for (int j = 0; j < cols; j++) d[j] = bp[j * cs];
        }
        for (int j = cols; j < NR; j++) d[j] = 0;
    }
}

void SUFFIX(bk_pack_a)(int m, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
    for (int i0 = 0; i0 < m; i0 += MR)
        SUFFIX(pack_a_panel)(m - i0 < MR ? m - i0 : MR, k, a + i0 * rs, rs, cs, dst + (ptrdiff_t)(i0 / MR) * k * MR);
}

void SUFFIX(bk_pack_b)(int k, int n, const float *b, ptrdiff_t rs, ptrdiff_t cs, float *dst)
{
    for (int j0 = 0; j0 < n; j0 += NR)
        SUFFIX(pack_b_panel)(n - j0 < NR ? n - j0 : NR, k, b + j0 * cs, rs, cs, dst + (ptrdiff_t)(j0 / NR) * k * NR);
}

// One micro-tile: R rows (R <= MR, a compile-time constant after inlining) × NR columns.
// acc[r] = init; for p in 0..<k: acc[r] += a[p * MR + r] * b_p[0..NR); then store.
// INDIRECT: b_p = bbase + off[p]; otherwise b_p = bbase + p * NR (a packed panel).
// ASTRIDE: row r of A is a[r * lda + p] (rows in place); otherwise a[p * MR + r] (a packed panel).
// init_mode: 0 zero, 1 row bias (scalar per row), 2 column bias (NR floats), 3 load C.
static inline __attribute__((always_inline)) void SUFFIX(tile)(
    const int R, const int INDIRECT, const int V2, const int ASTRIDE, int k, const float *restrict a, ptrdiff_t lda,
    const float *restrict bbase, const int32_t *restrict off, float *c, ptrdiff_t ldc, int cols,
    int init_mode, const float *init, int relu)
{
    // V2: two vectors (NR columns); otherwise one (VW columns, and cols must be VW).
    vf c0[MR], c1[MR];
    _Pragma("clang loop unroll(full)")
    for (int r = 0; r < R; r++) {
        switch (init_mode) {
        case 1: c0[r] = VSET1(init[r]); c1[r] = c0[r]; break;
        case 2: c0[r] = VLOAD(init); c1[r] = V2 ? VLOAD(init + VW) : VZERO(); break;
        case 3:
            if (cols == NR || (!V2 && cols == VW)) { c0[r] = VLOAD(c + r * ldc); c1[r] = V2 ? VLOAD(c + r * ldc + VW) : VZERO(); }
            else {
                float t[NR] = {0};
                memcpy(t, c + r * ldc, (size_t)cols * sizeof(float));
                c0[r] = VLOAD(t); c1[r] = VLOAD(t + VW);
            }
            break;
        default: c0[r] = VZERO(); c1[r] = VZERO(); break;
        }
    }
    for (int p = 0; p < k; p++) {
        const float *bp = INDIRECT ? bbase + off[p] : bbase + (ptrdiff_t)p * NR;
        vf b0 = VLOAD(bp), b1 = V2 ? VLOAD(bp + VW) : VZERO();
        const float *ap = ASTRIDE ? a + p : a + (ptrdiff_t)p * MR;
        _Pragma("clang loop unroll(full)")
        for (int r = 0; r < R; r++) {
            vf av = VSET1(ASTRIDE ? ap[r * lda] : ap[r]);
            c0[r] = VFMA(av, b0, c0[r]);
            if (V2) c1[r] = VFMA(av, b1, c1[r]);
        }
    }
    _Pragma("clang loop unroll(full)")
    for (int r = 0; r < R; r++) {
        if (relu) { c0[r] = VRELU(c0[r]); if (V2) c1[r] = VRELU(c1[r]); }
        if (!V2 && cols == VW) {
            VSTORE(c + r * ldc, c0[r]);
        } else if (!V2) {
            float t[VW];
            VSTORE(t, c0[r]);
            memcpy(c + r * ldc, t, (size_t)cols * sizeof(float));
        } else if (cols == NR) {
            VSTORE(c + r * ldc, c0[r]); VSTORE(c + r * ldc + VW, c1[r]);
        } else {
            float t[NR];
            VSTORE(t, c0[r]); VSTORE(t + VW, c1[r]);
            memcpy(c + r * ldc, t, (size_t)cols * sizeof(float));
        }
    }
}

// Dispatches a micro-tile on its row count so that each count gets an unrolled body.
#define BK_ROWS_CASES(INDIRECT, V2, AS) \
    switch (rows) { \
    case 1: SUFFIX(tile)(1, INDIRECT, V2, AS, k, a, lda, bbase, off, c, ldc, cols, init_mode, init, relu); break; \
    case 2: SUFFIX(tile)(2, INDIRECT, V2, AS, k, a, lda, bbase, off, c, ldc, cols, init_mode, init, relu); break; \
    case 3: SUFFIX(tile)(3, INDIRECT, V2, AS, k, a, lda, bbase, off, c, ldc, cols, init_mode, init, relu); break; \
    case 4: SUFFIX(tile)(4, INDIRECT, V2, AS, k, a, lda, bbase, off, c, ldc, cols, init_mode, init, relu); break; \
    BK_MORE_ROWS(INDIRECT, V2, AS) \
    default: break; \
    }

#if MR > 4
#define BK_ROW_CASE(n, INDIRECT, V2, AS) case n: SUFFIX(tile)(n, INDIRECT, V2, AS, k, a, lda, bbase, off, c, ldc, cols, init_mode, init, relu); break;
#if MR == 6
#define BK_MORE_ROWS(I, V, A) BK_ROW_CASE(5, I, V, A) BK_ROW_CASE(6, I, V, A)
#elif MR == 8
#define BK_MORE_ROWS(I, V, A) BK_ROW_CASE(5, I, V, A) BK_ROW_CASE(6, I, V, A) BK_ROW_CASE(7, I, V, A) BK_ROW_CASE(8, I, V, A)
#elif MR == 12
#define BK_MORE_ROWS(I, V, A) BK_ROW_CASE(5, I, V, A) BK_ROW_CASE(6, I, V, A) BK_ROW_CASE(7, I, V, A) BK_ROW_CASE(8, I, V, A) \
    BK_ROW_CASE(9, I, V, A) BK_ROW_CASE(10, I, V, A) BK_ROW_CASE(11, I, V, A) BK_ROW_CASE(12, I, V, A)
#else
#error "unsupported MR"
#endif
#else
#define BK_MORE_ROWS(I, V, A)
#endif

static __attribute__((noinline)) void SUFFIX(tile_indirect)(int rows, int k, const float *a, const float *bbase,
    const int32_t *off, float *c, ptrdiff_t ldc, int cols, int init_mode, const float *init, int relu)
{
    const ptrdiff_t lda = 0;
    BK_ROWS_CASES(1, 1, 0)
}

static __attribute__((noinline)) void SUFFIX(tile_indirect_half)(int rows, int k, const float *a, const float *bbase,
    const int32_t *off, float *c, ptrdiff_t ldc, int cols, int init_mode, const float *init, int relu)
{
    const ptrdiff_t lda = 0;
    BK_ROWS_CASES(1, 0, 0)
}

static __attribute__((noinline)) void SUFFIX(tile_panel)(int rows, int k, const float *a, const float *bbase,
    float *c, ptrdiff_t ldc, int cols, int init_mode, const float *init, int relu)
{
    const int32_t *off = NULL;
    const ptrdiff_t lda = 0;
    BK_ROWS_CASES(0, 1, 0)
}

// A panel whose used columns fit one vector (cols ≤ VW): half the multiply-adds.
static __attribute__((noinline)) void SUFFIX(tile_panel_half)(int rows, int k, const float *a, const float *bbase,
    float *c, ptrdiff_t ldc, int cols, int init_mode, const float *init, int relu)
{
    const int32_t *off = NULL;
    const ptrdiff_t lda = 0;
    BK_ROWS_CASES(0, 0, 0)
}

// Rows of A in place (row r at a + r * lda) against a packed panel of B.
static __attribute__((noinline)) void SUFFIX(tile_rows)(int rows, int k, const float *a, ptrdiff_t lda, const float *bbase,
    float *c, ptrdiff_t ldc, int cols, int init_mode, const float *init, int relu)
{
    const int32_t *off = NULL;
    BK_ROWS_CASES(0, 1, 1)
}

static __attribute__((noinline)) void SUFFIX(tile_rows_half)(int rows, int k, const float *a, ptrdiff_t lda, const float *bbase,
    float *c, ptrdiff_t ldc, int cols, int init_mode, const float *init, int relu)
{
    const int32_t *off = NULL;
    BK_ROWS_CASES(0, 0, 1)
}

void SUFFIX(bk_gemm_rows)(int n, int k, int o, const float *x, ptrdiff_t ldx, const float *packed_b, float *y, ptrdiff_t ldy)
{
    for (int i0 = 0; i0 < n; i0 += MR) {
        int rows = n - i0 < MR ? n - i0 : MR;
        for (int j0 = 0; j0 < o; j0 += NR) {
            int cols = o - j0 < NR ? o - j0 : NR;
            const float *b = packed_b + (ptrdiff_t)(j0 / NR) * k * NR;
            if (cols <= VW)
                SUFFIX(tile_rows_half)(rows, k, x + (ptrdiff_t)i0 * ldx, ldx, b, y + (ptrdiff_t)i0 * ldy + j0, ldy, cols, 0, NULL, 0);
            else
                SUFFIX(tile_rows)(rows, k, x + (ptrdiff_t)i0 * ldx, ldx, b, y + (ptrdiff_t)i0 * ldy + j0, ldy, cols, 0, NULL, 0);
        }
    }
}

void SUFFIX(bk_conv_tiles)(int m, int k, const float *packed_w, const float *bias,
                           const float *bbase, const int32_t *off, int columns,
                           float *map, ptrdiff_t map_stride, int relu)
{
    static const float zeros[MR] = {0};
    int full = columns / NR, rest = columns - full * NR;
    if (rest > VW) { full += 1; rest = 0; }
    for (int i0 = 0; i0 < m; i0 += MR) {
        int rows = m - i0 < MR ? m - i0 : MR;
        const float *a = packed_w + (ptrdiff_t)(i0 / MR) * k * MR;
        const float *init = bias ? bias + i0 : zeros;
        for (int t = 0; t < full; t++) {
            SUFFIX(tile_indirect)(rows, k, a, bbase + (ptrdiff_t)t * NR, off,
                                  map + (ptrdiff_t)i0 * map_stride + (ptrdiff_t)t * NR, map_stride, NR,
                                  1, init, relu);
        }
        if (rest > 0) {
            SUFFIX(tile_indirect_half)(rows, k, a, bbase + (ptrdiff_t)full * NR, off,
                                       map + (ptrdiff_t)i0 * map_stride + (ptrdiff_t)full * NR, map_stride, VW,
                                       1, init, relu);
        }
    }
}

// As bk_conv_tiles, but storing exactly `columns` columns of each row (row stride ldy) and never
// reading B past column `columns` of a row: the last partial tile's columns are first copied
// into `scratch` (k × NR floats) as a zero-padded panel.
void SUFFIX(bk_conv_rows)(int m, int k, const float *packed_w, const float *bias,
                          const float *bbase, const int32_t *off, int columns,
                          float *y, ptrdiff_t ldy, int relu, float *scratch)
{
    static const float zeros[MR] = {0};
    const int full = columns / NR, rest = columns - full * NR;
    if (rest > 0) {
        for (int p = 0; p < k; p++) {
            float *d = scratch + (ptrdiff_t)p * NR;
            const float *src = bbase + off[p] + (ptrdiff_t)full * NR;
#ifdef VLOADZ
            // Masked loads: nothing past the row's last column is read.
            const int n0 = rest < VW ? rest : VW;
            VSTORE(d, VLOADZ(src, n0));
            VSTORE(d + VW, VLOADZ(src + VW, rest - n0));
#else
            memcpy(d, src, (size_t)rest * sizeof(float));
            memset(d + rest, 0, (size_t)(NR - rest) * sizeof(float));
#endif
        }
    }
    for (int i0 = 0; i0 < m; i0 += MR) {
        int rows = m - i0 < MR ? m - i0 : MR;
        const float *a = packed_w + (ptrdiff_t)(i0 / MR) * k * MR;
        const float *init = bias ? bias + i0 : zeros;
        float *yr = y + (ptrdiff_t)i0 * ldy;
        for (int t = 0; t < full; t++)
            SUFFIX(tile_indirect)(rows, k, a, bbase + (ptrdiff_t)t * NR, off, yr + (ptrdiff_t)t * NR, ldy, NR, 1, init, relu);
        if (rest > VW)
            SUFFIX(tile_panel)(rows, k, a, scratch, yr + (ptrdiff_t)full * NR, ldy, rest, 1, init, relu);
        else if (rest > 0)
            SUFFIX(tile_panel_half)(rows, k, a, scratch, yr + (ptrdiff_t)full * NR, ldy, rest, 1, init, relu);
    }
}

#include "kernels_impl_gemm.h"
#include "kernels_impl_maps.h"
#include "kernels_impl_winograd.h"

#undef NR
#undef BK_ROWS_CASES
#undef BK_MORE_ROWS
#undef BK_ROW_CASE
