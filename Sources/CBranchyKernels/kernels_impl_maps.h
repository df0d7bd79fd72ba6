// Part of the kernel body of one ISA, included by kernels_impl.h (see there): max pooling and
// im2col over feature maps.

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
        //
        // Where no window is clipped (w = 2 · ow), a row's last chunk may load whole vectors
        // instead, while they stay inside the planes: the lanes past the row only make outputs
        // past the row. Those are stored too where output rows follow one another (the rows after
        // are written later and overwrite them), as long as the store stays inside the planes.
        const float *src_end = src + (ptrdiff_t)(c - 1) * src_cs + (ptrdiff_t)(h - 1) * src_rs + w;
        const float *dst_end = dst + (ptrdiff_t)(c - 1) * dst_cs + (ptrdiff_t)(oh - 1) * dst_rs + ow;
        const int whole_rows = w == 2 * ow;
        const int dense_out = dst_rs == ow && dst_cs == (ptrdiff_t)oh * ow;
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
                    if (in == 2 * VW || (whole_rows && r1 + 2 * ox + 2 * VW <= src_end)) {
                        lo = VMAX(VLOAD(r0 + 2 * ox), VLOAD(r1 + 2 * ox));
                        hi = VMAX(VLOAD(r0 + 2 * ox + VW), VLOAD(r1 + 2 * ox + VW));
                    } else {
                        int n0 = in < VW ? in : VW, n1 = in - n0;
                        lo = VMAX(VLOADN(r0 + 2 * ox, n0), VLOADN(r1 + 2 * ox, n0));
                        hi = VMAX(VLOADN(r0 + 2 * ox + VW, n1), VLOADN(r1 + 2 * ox + VW, n1));
                    }
                    vf m = VPAIRMAX(lo, hi);
                    if (relu) m = VRELU(m);
                    if (out == VW || (dense_out && d + ox + VW <= dst_end)) VSTORE(d + ox, m); else VSTOREN(d + ox, m, out);
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
