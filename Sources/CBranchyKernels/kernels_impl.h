// The body of the kernels of one ISA. Included by kernels_<isa>.c after defining:
//   SUFFIX(name)   name with the ISA's suffix
//   MR             rows of A per micro-tile
//   VW             floats per vector; NR = 2 * VW columns per micro-tile
//   vf             the vector type
//   VLOAD(p) VSTORE(p, v) VSET1(s) VZERO() VFMA(a, b, acc) = acc + a * b  VRELU(v)
// and wrapping the include in the ISA's target attribute.
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
// init_mode: 0 zero, 1 row bias (scalar per row), 2 column bias (NR floats), 3 load C.
static inline __attribute__((always_inline)) void SUFFIX(tile)(
    const int R, const int INDIRECT, const int V2, int k, const float *restrict a, const float *restrict bbase,
    const int32_t *restrict off, float *c, ptrdiff_t ldc, int cols,
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
        const float *ap = a + (ptrdiff_t)p * MR;
        _Pragma("clang loop unroll(full)")
        for (int r = 0; r < R; r++) {
            vf av = VSET1(ap[r]);
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
#define BK_ROWS_CASES(INDIRECT, V2) \
    switch (rows) { \
    case 1: SUFFIX(tile)(1, INDIRECT, V2, k, a, bbase, off, c, ldc, cols, init_mode, init, relu); break; \
    case 2: SUFFIX(tile)(2, INDIRECT, V2, k, a, bbase, off, c, ldc, cols, init_mode, init, relu); break; \
    case 3: SUFFIX(tile)(3, INDIRECT, V2, k, a, bbase, off, c, ldc, cols, init_mode, init, relu); break; \
    case 4: SUFFIX(tile)(4, INDIRECT, V2, k, a, bbase, off, c, ldc, cols, init_mode, init, relu); break; \
    BK_MORE_ROWS(INDIRECT, V2) \
    default: break; \
    }

#if MR > 4
#define BK_ROW_CASE(n, INDIRECT, V2) case n: SUFFIX(tile)(n, INDIRECT, V2, k, a, bbase, off, c, ldc, cols, init_mode, init, relu); break;
#if MR == 6
#define BK_MORE_ROWS(I, V) BK_ROW_CASE(5, I, V) BK_ROW_CASE(6, I, V)
#elif MR == 8
#define BK_MORE_ROWS(I, V) BK_ROW_CASE(5, I, V) BK_ROW_CASE(6, I, V) BK_ROW_CASE(7, I, V) BK_ROW_CASE(8, I, V)
#elif MR == 12
#define BK_MORE_ROWS(I, V) BK_ROW_CASE(5, I, V) BK_ROW_CASE(6, I, V) BK_ROW_CASE(7, I, V) BK_ROW_CASE(8, I, V) \
    BK_ROW_CASE(9, I, V) BK_ROW_CASE(10, I, V) BK_ROW_CASE(11, I, V) BK_ROW_CASE(12, I, V)
#else
#error "unsupported MR"
#endif
#else
#define BK_MORE_ROWS(I, V)
#endif

static __attribute__((noinline)) void SUFFIX(tile_indirect)(int rows, int k, const float *a, const float *bbase,
    const int32_t *off, float *c, ptrdiff_t ldc, int cols, int init_mode, const float *init, int relu)
{
    BK_ROWS_CASES(1, 1)
}

static __attribute__((noinline)) void SUFFIX(tile_indirect_half)(int rows, int k, const float *a, const float *bbase,
    const int32_t *off, float *c, ptrdiff_t ldc, int cols, int init_mode, const float *init, int relu)
{
    BK_ROWS_CASES(1, 0)
}

static __attribute__((noinline)) void SUFFIX(tile_panel)(int rows, int k, const float *a, const float *bbase,
    float *c, ptrdiff_t ldc, int cols, int init_mode, const float *init, int relu)
{
    const int32_t *off = NULL;
    BK_ROWS_CASES(0, 1)
}

// A panel whose used columns fit one vector (cols ≤ VW): half the multiply-adds.
static __attribute__((noinline)) void SUFFIX(tile_panel_half)(int rows, int k, const float *a, const float *bbase,
    float *c, ptrdiff_t ldc, int cols, int init_mode, const float *init, int relu)
{
    const int32_t *off = NULL;
    BK_ROWS_CASES(0, 0)
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

// One sample against four column panels at once: eight independent chains keep the FMA
// units busy where a single panel would wait on each multiply-add's latency. Same order of
// operations per element as the tile.
static __attribute__((noinline)) void SUFFIX(gemv4)(int k, const float *restrict x, const float *restrict b,
    ptrdiff_t panel, float *y, const float *bias, int relu)
{
    vf c[8];
    _Pragma("clang loop unroll(full)")
    for (int t = 0; t < 4; t++) {
        c[2 * t] = bias ? VLOAD(bias + t * NR) : VZERO();
        c[2 * t + 1] = bias ? VLOAD(bias + t * NR + VW) : VZERO();
    }
    for (int p = 0; p < k; p++) {
        vf xv = VSET1(x[p]);
        const float *bp = b + (ptrdiff_t)p * NR;
        _Pragma("clang loop unroll(full)")
        for (int t = 0; t < 4; t++) {
            c[2 * t] = VFMA(xv, VLOAD(bp + t * panel), c[2 * t]);
            c[2 * t + 1] = VFMA(xv, VLOAD(bp + t * panel + VW), c[2 * t + 1]);
        }
    }
    _Pragma("clang loop unroll(full)")
    for (int t = 0; t < 8; t++) {
        if (relu) c[t] = VRELU(c[t]);
        VSTORE(y + t * VW, c[t]);
    }
}

// One sample against one column panel; `cols` outputs are stored.
static __attribute__((noinline)) void SUFFIX(gemv1)(int k, const float *restrict x, const float *restrict b,
    float *y, int cols, const float *bias, int relu)
{
    vf c0 = bias ? VLOAD(bias) : VZERO(), c1 = bias ? VLOAD(bias + VW) : VZERO();
    for (int p = 0; p < k; p++) {
        vf xv = VSET1(x[p]);
        c0 = VFMA(xv, VLOAD(b + (ptrdiff_t)p * NR), c0);
        c1 = VFMA(xv, VLOAD(b + (ptrdiff_t)p * NR + VW), c1);
    }
    if (relu) { c0 = VRELU(c0); c1 = VRELU(c1); }
    float t[NR];
    VSTORE(t, c0); VSTORE(t + VW, c1);
    memcpy(y, t, (size_t)cols * sizeof(float));
}

size_t SUFFIX(bk_linear_scratch_size)(int n, int k)
{
    (void)n;
    return (size_t)k * MR;
}

void SUFFIX(bk_linear)(int n, int k, int o, const float *x, ptrdiff_t ldx,
                       const float *packed_wt, const float *bias, float *y, ptrdiff_t ldy, int relu, float *scratch)
{
    // Rows of C are samples (A = x, packed MR samples at a time), columns are outputs (B = Wᵀ panels).
    float *apack = scratch;
    if (n == 1) {
        int j0 = 0;
        for (; j0 + 4 * NR <= o; j0 += 4 * NR)
            SUFFIX(gemv4)(k, x, packed_wt + (ptrdiff_t)(j0 / NR) * k * NR, (ptrdiff_t)k * NR, y + j0, bias ? bias + j0 : NULL, relu);
        for (; j0 < o; j0 += NR)
            SUFFIX(gemv1)(k, x, packed_wt + (ptrdiff_t)(j0 / NR) * k * NR, y + j0, o - j0 < NR ? o - j0 : NR,
                          bias ? bias + j0 : NULL, relu);
        return;
    }
    for (int i0 = 0; i0 < n; i0 += MR) {
        int rows = n - i0 < MR ? n - i0 : MR;
        SUFFIX(pack_a_panel)(rows, k, x + (ptrdiff_t)i0 * ldx, ldx, 1, apack);
        for (int j0 = 0; j0 < o; j0 += NR) {
            int cols = o - j0 < NR ? o - j0 : NR;
            if (cols <= VW)
                SUFFIX(tile_panel_half)(rows, k, apack, packed_wt + (ptrdiff_t)(j0 / NR) * k * NR,
                                        y + (ptrdiff_t)i0 * ldy + j0, ldy, cols, bias ? 2 : 0, bias ? bias + j0 : NULL, relu);
            else
                SUFFIX(tile_panel)(rows, k, apack, packed_wt + (ptrdiff_t)(j0 / NR) * k * NR,
                                   y + (ptrdiff_t)i0 * ldy + j0, ldy, cols, bias ? 2 : 0, bias ? bias + j0 : NULL, relu);
        }
    }
}

// --- General matrix product, blocked for the caches ---------------------------------

enum { SUFFIX(KC) = 256, SUFFIX(MC) = MR * 16, SUFFIX(NC) = 2048 };

size_t SUFFIX(bk_sgemm_scratch_size)(int m, int n, int k)
{
    (void)m; (void)n; (void)k;
    return (size_t)SUFFIX(KC) * (SUFFIX(MC) + SUFFIX(NC)) + 64;
}

void SUFFIX(bk_sgemm)(int m, int n, int k,
                      const float *a, ptrdiff_t ars, ptrdiff_t acs,
                      const float *b, ptrdiff_t brs, ptrdiff_t bcs,
                      float *c, ptrdiff_t ldc, int accumulate, float *scratch)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (!accumulate) for (int i = 0; i < m; i++) memset(c + (ptrdiff_t)i * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
    float *owned = NULL;
    if (!scratch) {
        owned = (float *)aligned_alloc(64, ((SUFFIX(bk_sgemm_scratch_size)(m, n, k) * sizeof(float)) + 63) & ~(size_t)63);
        if (!owned) abort();
        scratch = owned;
    }
    float *bpack = scratch;
    float *apack = scratch + (size_t)SUFFIX(KC) * SUFFIX(NC);
    for (int jc = 0; jc < n; jc += SUFFIX(NC)) {
        int nc = n - jc < SUFFIX(NC) ? n - jc : SUFFIX(NC);
        for (int pc = 0; pc < k; pc += SUFFIX(KC)) {
            int kc = k - pc < SUFFIX(KC) ? k - pc : SUFFIX(KC);
            int first = pc == 0;
            for (int j0 = 0; j0 < nc; j0 += NR) {
                int cols = nc - j0 < NR ? nc - j0 : NR;
                SUFFIX(pack_b_panel)(cols, kc, b + (ptrdiff_t)pc * brs + (ptrdiff_t)(jc + j0) * bcs, brs, bcs,
                                     bpack + (ptrdiff_t)(j0 / NR) * kc * NR);
            }
            for (int ic = 0; ic < m; ic += SUFFIX(MC)) {
                int mc = m - ic < SUFFIX(MC) ? m - ic : SUFFIX(MC);
                for (int i0 = 0; i0 < mc; i0 += MR) {
                    int rows = mc - i0 < MR ? mc - i0 : MR;
                    SUFFIX(pack_a_panel)(rows, kc, a + (ptrdiff_t)(ic + i0) * ars + (ptrdiff_t)pc * acs, ars, acs,
                                         apack + (ptrdiff_t)(i0 / MR) * kc * MR);
                }
                for (int j0 = 0; j0 < nc; j0 += NR) {
                    int cols = nc - j0 < NR ? nc - j0 : NR;
                    const float *bp = bpack + (ptrdiff_t)(j0 / NR) * kc * NR;
                    for (int i0 = 0; i0 < mc; i0 += MR) {
                        int rows = mc - i0 < MR ? mc - i0 : MR;
                        float *cp = c + (ptrdiff_t)(ic + i0) * ldc + jc + j0;
                        SUFFIX(tile_panel)(rows, kc, apack + (ptrdiff_t)(i0 / MR) * kc * MR, bp, cp, ldc, cols,
                                           (first && !accumulate) ? 0 : 3, NULL, 0);
                    }
                }
            }
        }
    }
    free(owned);
}

static inline float SUFFIX(bk_max)(float best, float v) { return v > best ? v : best; }

// One output row of max pooling over the clipped windows [x0, x1) × rows.
static void SUFFIX(maxpool_row_generic)(const float *src, ptrdiff_t src_rs, int y0, int y1, int w,
                                int kernel, int stride, int pad, int ox0, int ow, float *d, int relu)
{
    for (int ox = ox0; ox < ow; ox++) {
        int x0 = ox * stride - pad, x1 = x0 + kernel;
        if (x0 < 0) x0 = 0;
        if (x1 > w) x1 = w;
        float m = -__builtin_inff();
        for (int y = y0; y < y1; y++) {
            const float *s = src + y * src_rs;
            for (int x = x0; x < x1; x++) m = SUFFIX(bk_max)(m, s[x]);
        }
        if (relu) m = SUFFIX(bk_max)(0.0f, m);
        d[ox] = m;
    }
}

void SUFFIX(bk_maxpool)(int c, int h, int w, const float *src, ptrdiff_t src_cs, ptrdiff_t src_rs,
                int kernel, int stride, int pad, int oh, int ow,
                float *dst, ptrdiff_t dst_cs, ptrdiff_t dst_rs, int relu)
{
#ifdef VLOADN
    if (kernel == 2 && stride == 2 && pad == 0) {
        // The common 2 × 2 window at stride 2, VW outputs at a time. Loads are masked to the
        // row (lanes past it read as -inf), so windows clipped by ceil mode need no other path;
        // a last window row past the input reuses the row above it.
        for (int ch = 0; ch < c; ch++) {
            const float *plane = src + ch * src_cs;
            for (int oy = 0; oy < oh; oy++) {
                const float *r0 = plane + (2 * oy) * src_rs;
                const float *r1 = 2 * oy + 1 < h ? r0 + src_rs : r0;
                float *d = dst + ch * dst_cs + oy * dst_rs;
                for (int ox = 0; ox < ow; ox += VW) {
                    int in = w - 2 * ox < 2 * VW ? w - 2 * ox : 2 * VW;
                    int out = ow - ox < VW ? ow - ox : VW;
                    vf lo, hi;
                    if (in == 2 * VW) {
                        lo = VMAX(VLOAD(r0 + 2 * ox), VLOAD(r1 + 2 * ox));
                        hi = VMAX(VLOAD(r0 + 2 * ox + VW), VLOAD(r1 + 2 * ox + VW));
                    } else {
                        int n0 = in < VW ? in : VW, n1 = in - n0;
                        lo = VMAX(VLOADN(r0 + 2 * ox, n0), VLOADN(r1 + 2 * ox, n0));
                        hi = VMAX(VLOADN(r0 + 2 * ox + VW, n1), VLOADN(r1 + 2 * ox + VW, n1));
                    }
                    vf m = VPAIRMAX(lo, hi);
                    if (relu) m = VRELU(m);
                    if (out == VW) VSTORE(d + ox, m); else VSTOREN(d + ox, m, out);
                }
            }
        }
        return;
    }
#endif
    for (int ch = 0; ch < c; ch++) {
        for (int oy = 0; oy < oh; oy++) {
            int y0 = oy * stride - pad, y1 = y0 + kernel;
            if (y0 < 0) y0 = 0;
            if (y1 > h) y1 = h;
            SUFFIX(maxpool_row_generic)(src + ch * src_cs, src_rs, y0, y1, w, kernel, stride, pad, 0, ow,
                                        dst + ch * dst_cs + oy * dst_rs, relu);
        }
    }
}

void SUFFIX(bk_im2col_padded)(int c, int hp, int wp, int kh, int kw, int oh, int ow,
                              const float *padded, float *col, ptrdiff_t ld)
{
    ptrdiff_t row = 0;
    for (int ch = 0; ch < c; ch++) {
        const float *pc = padded + (ptrdiff_t)ch * hp * wp;
        for (int ki = 0; ki < kh; ki++) {
            for (int kj = 0; kj < kw; kj++, row++) {
                float *d = col + row * ld;
                const float *src = pc + (ptrdiff_t)ki * wp + kj;
                for (int oy = 0; oy < oh; oy++, d += ow, src += wp) {
                    int ox = 0;
                    for (; ox + VW <= ow; ox += VW) VSTORE(d + ox, VLOAD(src + ox));
#ifdef VLOADN
                    if (ox < ow) VSTOREN(d + ox, VLOADZ(src + ox, ow - ox), ow - ox);
#else
                    for (; ox < ow; ox++) d[ox] = src[ox];
#endif
                }
            }
        }
    }
}

#undef NR
#undef BK_ROWS_CASES
#undef BK_MORE_ROWS
#undef BK_ROW_CASE
