// Part of the kernel body of one ISA, included by kernels_impl.h (see there): the linear layer
// (one sample against column panels, a batch by micro-tiles) and the general matrix product.

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
