// Part of the kernel body of one ISA, included by kernels_impl.h (see there): the input and
// output transforms of Winograd F(2×2, 3×3). Both only add and subtract, in a fixed order, so
// every path (vectorized to any width or not) gives the same bits.

void SUFFIX(bk_winograd_input)(int c, int h, int w, const float *restrict x, float *restrict padded, float *restrict v)
{
    const int th = (h + 1) / 2, tw = (w + 1) / 2, hp = 2 * th + 2, wp = 2 * tw + 2;
    // Channels last, with a zero border (and zero rows and columns past an odd extent): the
    // first row and the rows past the image whole, the first column and the columns past it in
    // every row between; the interior is overwritten pixel by pixel.
    const size_t pixel = (size_t)c * sizeof(float);
    memset(padded, 0, (size_t)wp * pixel);
    memset(padded + (ptrdiff_t)(h + 1) * wp * c, 0, (size_t)(hp - h - 1) * wp * pixel);
    for (int y = 1; y <= h; y++) {
        memset(padded + (ptrdiff_t)y * wp * c, 0, pixel);
        memset(padded + ((ptrdiff_t)y * wp + w + 1) * c, 0, (size_t)(wp - w - 1) * pixel);
    }
    // Plane by plane: contiguous reads, stores a pixel apart (a vectorized form would gather).
    for (int ch = 0; ch < c; ch++) {
        for (int y = 0; y < h; y++) {
            const float *xr = x + ((ptrdiff_t)ch * h + y) * w;
            float *d = padded + ((ptrdiff_t)(y + 1) * wp + 1) * c + ch;
            _Pragma("clang loop vectorize(disable)")
            for (int xx = 0; xx < w; xx++) d[(ptrdiff_t)xx * c] = xr[xx];
        }
    }
    const ptrdiff_t rs = (ptrdiff_t)wp * c;
    for (int ty = 0; ty < th; ty++) {
        for (int tx = 0; tx < tw; tx++) {
            const float *p = padded + ((ptrdiff_t)(2 * ty) * wp + 2 * tx) * c;
            float *out = v + (ptrdiff_t)(ty * tw + tx) * 16 * c;
            int ch = 0;
            for (; ch + VW <= c; ch += VW) {
                vf d[4][4], t[4][4];
                _Pragma("clang loop unroll(full)")
                for (int i = 0; i < 4; i++) {
                    const float *q = p + i * rs + ch;
                    _Pragma("clang loop unroll(full)")
                    for (int j = 0; j < 4; j++, q += c) d[i][j] = VLOAD(q);
                }
                _Pragma("clang loop unroll(full)")
                for (int j = 0; j < 4; j++) {
                    t[0][j] = d[0][j] - d[2][j];
                    t[1][j] = d[1][j] + d[2][j];
                    t[2][j] = d[2][j] - d[1][j];
                    t[3][j] = d[1][j] - d[3][j];
                }
                float *q = out + ch;
                _Pragma("clang loop unroll(full)")
                for (int i = 0; i < 4; i++) {
                    VSTORE(q, t[i][0] - t[i][2]); q += c;
                    VSTORE(q, t[i][1] + t[i][2]); q += c;
                    VSTORE(q, t[i][2] - t[i][1]); q += c;
                    VSTORE(q, t[i][1] - t[i][3]); q += c;
                }
            }
            // The channels past the last whole vector, one at a time (the same operations).
            for (; ch < c; ch++) {
                float d[4][4], t[4][4];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) d[i][j] = p[i * rs + j * c + ch];
                // Bᵀ d: rows.
                for (int j = 0; j < 4; j++) {
                    t[0][j] = d[0][j] - d[2][j];
                    t[1][j] = d[1][j] + d[2][j];
                    t[2][j] = d[2][j] - d[1][j];
                    t[3][j] = d[1][j] - d[3][j];
                }
                // (Bᵀ d) B: columns.
                for (int i = 0; i < 4; i++) {
                    out[(4 * i + 0) * c + ch] = t[i][0] - t[i][2];
                    out[(4 * i + 1) * c + ch] = t[i][1] + t[i][2];
                    out[(4 * i + 2) * c + ch] = t[i][2] - t[i][1];
                    out[(4 * i + 3) * c + ch] = t[i][1] - t[i][3];
                }
            }
        }
    }
}

// The 2 × 2 outputs of one tile for channels [ch0, ch0 + VW): Aᵀ a A + bias, ReLU when asked.
static inline void SUFFIX(winograd_output_block)(const float *restrict in, int o, const float *restrict bias,
                                                 int ch0, float *restrict dst, ptrdiff_t map_cs, int mw, int relu)
{
    vf a[16], u[2][4];
    const float *q = in + ch0;
    _Pragma("clang loop unroll(full)")
    for (int k = 0; k < 16; k++, q += o) a[k] = VLOAD(q);
    _Pragma("clang loop unroll(full)")
    for (int j = 0; j < 4; j++) {
        u[0][j] = a[j] + a[4 + j] + a[8 + j];
        u[1][j] = a[4 + j] - a[8 + j] - a[12 + j];
    }
    const vf b = bias ? VLOAD(bias + ch0) : VZERO();
    float t[4][VW];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < 2; i++) {
        vf y0 = (u[i][0] + u[i][1] + u[i][2]) + b;
        vf y1 = (u[i][1] - u[i][2] - u[i][3]) + b;
        if (relu) { y0 = VRELU(y0); y1 = VRELU(y1); }
        VSTORE(t[2 * i], y0);
        VSTORE(t[2 * i + 1], y1);
    }
    for (int l = 0; l < VW; l++) {
        float *dc = dst + (ptrdiff_t)(ch0 + l) * map_cs;
        dc[0] = t[0][l]; dc[1] = t[1][l]; dc[mw] = t[2][l]; dc[mw + 1] = t[3][l];
    }
}

void SUFFIX(bk_winograd_output)(int o, int th, int tw, const float *restrict m,
                                const float *restrict bias, float *restrict map, ptrdiff_t map_cs, int relu)
{
    const int mw = 2 * tw;
    for (int ty = 0; ty < th; ty++) {
        for (int tx = 0; tx < tw; tx++) {
            const float *in = m + (ptrdiff_t)(ty * tw + tx) * 16 * o;
            float *dst = map + (ptrdiff_t)(2 * ty) * mw + 2 * tx;
            int ch = 0;
            for (; ch + VW <= o; ch += VW) SUFFIX(winograd_output_block)(in, o, bias, ch, dst, map_cs, mw, relu);
            // The channels past the last whole vector, one at a time (the same operations).
            for (; ch < o; ch++) {
                float a[4][4], u[2][4];
                for (int k = 0; k < 16; k++) a[k / 4][k % 4] = in[k * o + ch];
                for (int j = 0; j < 4; j++) {
                    u[0][j] = a[0][j] + a[1][j] + a[2][j];
                    u[1][j] = a[1][j] - a[2][j] - a[3][j];
                }
                const float b = bias ? bias[ch] : 0.0f;
                float *dc = dst + (ptrdiff_t)ch * map_cs;
                for (int i = 0; i < 2; i++) {
                    float y0 = (u[i][0] + u[i][1] + u[i][2]) + b;
                    float y1 = (u[i][1] - u[i][2] - u[i][3]) + b;
                    if (relu) { y0 = y0 > 0 ? y0 : 0; y1 = y1 > 0 ? y1 : 0; }
                    dc[i * mw] = y0;
                    dc[i * mw + 1] = y1;
                }
            }
        }
    }
}
