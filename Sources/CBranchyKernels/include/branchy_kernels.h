// Float32 kernels for inference and training, one implementation per vector ISA,
// chosen at run time (see bk_isa_best).
//
// Every kernel that produces an output element computes it as one chain of
// multiply-adds over k in increasing order, starting from the bias (or zero, or
// the existing value when accumulating). On the AVX2 and AVX-512 paths each step
// is a fused multiply-add, so both give bit-identical results; the baseline path
// multiplies and adds. An element's value never depends on the batch size, on its
// position in a batch or on the tiling around it.
#ifndef BRANCHY_KERNELS_H
#define BRANCHY_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Vector instruction sets with a kernel path.
enum {
    BK_ISA_BASELINE = 0,  ///< x86-64 SSE2 (or the compiler's generic vectors elsewhere)
    BK_ISA_AVX2 = 1,      ///< AVX2 + FMA, 256-bit
    BK_ISA_AVX512 = 2,    ///< AVX-512F, 512-bit
    BK_ISA_COUNT = 3
};

/// 1 when this CPU (and OS) can run the kernels of `isa`.
int bk_isa_supported(int isa);
/// The widest supported ISA.
int bk_isa_best(void);
/// "baseline", "avx2" or "avx512".
const char *bk_isa_name(int isa);
/// Rows of A per micro-tile (MR) and columns of B per micro-tile (NR) of `isa`.
int bk_isa_mr(int isa);
int bk_isa_nr(int isa);

/// Floats needed by bk_pack_a: ceil(m / MR) panels of k × MR.
size_t bk_pack_a_size(int isa, int m, int k);
/// Packs A (m × k, element (i, p) at a[i * rs + p * cs]) into MR-row panels, rows past m zero.
void bk_pack_a(int isa, int m, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *dst);
/// Floats needed by bk_pack_b: ceil(n / NR) panels of k × NR.
size_t bk_pack_b_size(int isa, int k, int n);
/// Packs B (k × n, element (p, j) at b[p * rs + j * cs]) into NR-column panels, columns past n zero.
void bk_pack_b(int isa, int k, int n, const float *b, ptrdiff_t rs, ptrdiff_t cs, float *dst);

/// C (m × n, row stride ldc) = [C +] A · B for any strides of A and B: element (i, p) of A
/// at a[i * ars + p * acs], element (p, j) of B at b[p * brs + j * bcs]. Blocked for the
/// caches, packs both operands into `scratch` (at least bk_sgemm_scratch_size floats, or
/// NULL to allocate). One thread; split m or n across threads to use more.
void bk_sgemm(int isa, int m, int n, int k,
              const float *a, ptrdiff_t ars, ptrdiff_t acs,
              const float *b, ptrdiff_t brs, ptrdiff_t bcs,
              float *c, ptrdiff_t ldc, int accumulate, float *scratch);
size_t bk_sgemm_scratch_size(int isa, int m, int n, int k);

/// Convolution as a product with indirect rows of B (no bounds checks):
/// for each output channel o < m and column q < bk_conv_columns(isa, columns),
///   map[o * map_stride + q] = relu?(bias[o] + Σ_{p<k} w[o, p] · bbase[off[p] + q])
/// with w packed by bk_pack_a (m × k). `bias` may be NULL (zero). Columns are computed in
/// tiles of NR, the last one of NR / 2 when that covers the rest, and every column of every
/// tile is stored: bbase must be readable and map writable that far from each row start.
void bk_conv_tiles(int isa, int m, int k, const float *packed_w, const float *bias,
                   const float *bbase, const int32_t *off, int columns,
                   float *map, ptrdiff_t map_stride, int relu);
/// As bk_conv_tiles (the same bits), but storing exactly `columns` columns of each of the m rows
/// of y (row stride ldy) and reading B's rows only up to column `columns`: a compact output
/// straight from an input read in place. `scratch` holds k · NR floats.
void bk_conv_rows(int isa, int m, int k, const float *packed_w, const float *bias,
                  const float *bbase, const int32_t *off, int columns,
                  float *y, ptrdiff_t ldy, int relu, float *scratch);
/// Columns bk_conv_tiles computes for `columns` wanted: whole tiles of NR, or of NR / 2 at the end.
int bk_conv_columns(int isa, int columns);

/// Fully connected: y (n × o, row stride ldy) = relu?(x (n × k, row stride ldx) · Wᵀ + bias)
/// with Wᵀ (k × o) packed by bk_pack_b. `bias` (or NULL) holds o floats padded with zeros to a
/// multiple of NR. `scratch` holds at least bk_linear_scratch_size floats.
void bk_linear(int isa, int n, int k, int o, const float *x, ptrdiff_t ldx,
               const float *packed_wt, const float *bias, float *y, ptrdiff_t ldy, int relu, float *scratch);
size_t bk_linear_scratch_size(int isa, int n, int k);

/// y (n × o, row stride ldy) = x (n × k, row stride ldx) · B, with B (k × o) packed by bk_pack_b:
/// the product of bk_linear without a bias, reading x's rows in place instead of packing them.
/// Each element is the same chain of multiply-adds as bk_linear's, so the results are its bits.
void bk_gemm_rows(int isa, int n, int k, int o, const float *x, ptrdiff_t ldx, const float *packed_b, float *y, ptrdiff_t ldy);

/// Copies planes (c × h × w, strides src_cs / src_rs) to dst (strides dst_cs / dst_rs).
void bk_copy_planes(int c, int h, int w, const float *src, ptrdiff_t src_cs, ptrdiff_t src_rs,
                    float *dst, ptrdiff_t dst_cs, ptrdiff_t dst_rs, int relu);
/// Max pooling without argmax: windows of `kernel` at `stride`, `pad` (windows clipped to
/// the input), output oh × ow per plane; strides as in bk_copy_planes.
void bk_maxpool(int isa, int c, int h, int w, const float *src, ptrdiff_t src_cs, ptrdiff_t src_rs,
                int kernel, int stride, int pad, int oh, int ow,
                float *dst, ptrdiff_t dst_cs, ptrdiff_t dst_rs, int relu);
/// Unfolds one image (c × h × w, compact) into col rows (c·kh·kw rows, row stride ld,
/// oh·ow columns), zero where the window leaves the image; columns past oh·ow untouched.
void bk_im2col(int c, int h, int w, int kh, int kw, int stride, int pad, int oh, int ow,
               const float *x, float *col, ptrdiff_t ld);

/// im2col at stride 1 from a zero-bordered copy of the image (c planes of hp × wp): every
/// window row is one contiguous run, so rows are plain copies.
void bk_im2col_padded(int isa, int c, int hp, int wp, int kh, int kw, int oh, int ow,
                      const float *padded, float *col, ptrdiff_t ld);

/// Winograd F(2×2, 3×3) input transform (stride 1, pad 1) of one image x (c × h × w, compact):
/// the image is cut into th × tw = ceil(h / 2) × ceil(w / 2) tiles of 2 × 2 outputs, row-major;
/// tile t's 4 × 4 input patch d (zero outside the image) becomes V = Bᵀ d B, written as
/// v[(t * 16 + ξ) * c + ch] for the 16 positions ξ = 4i + j. `padded` is scratch for
/// (2·th + 2) · (2·tw + 2) · c floats. Adds and subtracts only: every path gives the same bits.
void bk_winograd_input(int isa, int c, int h, int w, const float *x, float *padded, float *v);
/// Winograd F(2×2, 3×3) output transform: for tile t and channel ch < o, the 16 products
/// m[(t * 16 + ξ) * o + ch] become the 2 × 2 outputs Aᵀ M A + bias[ch] (bias NULL: none), ReLU
/// when asked, stored in `map`: o planes (channel stride map_cs) of 2·th rows of 2·tw columns.
void bk_winograd_output(int isa, int o, int th, int tw, const float *m, const float *bias,
                        float *map, ptrdiff_t map_cs, int relu);

/// Sign activation: y = +1 where x >= 0 (so 0 and −0 give +1), else −1 (NaN gives −1).
void bk_sign(size_t count, const float *x, float *y);
/// 64-bit words holding n signs: ceil(n / 64).
size_t bk_sign_words(int n);
/// Packs the signs of `rows` rows of n floats (row stride ldx) into rows of bk_sign_words(n)
/// words: bit j % 64 of word j / 64 is set when x[j] is −1 under bk_sign (not x >= 0); the
/// bits past n are clear.
void bk_pack_signs(int rows, int n, const float *x, ptrdiff_t ldx, uint64_t *dst);
/// Binary (XNOR-Net) linear layer on n samples of k inputs, o outputs:
///   y[s * ldy + j] = alpha[j] * (float)(k − 2 · popcount(sign bits of x[s] XOR wbits[j])) + bias[j]
/// with wbits packed by bk_pack_signs (o rows) and `bias` NULL for none. The integer is the
/// exact dot product of the two ±1 vectors; it is multiplied, then the bias added (two
/// roundings, never fused), so every path gives the same bits. `xbits` is scratch for
/// n · bk_sign_words(k) words.
void bk_xnor_linear(int isa, int n, int k, int o, const float *x, ptrdiff_t ldx, const uint64_t *wbits,
                    const float *alpha, const float *bias, float *y, ptrdiff_t ldy, uint64_t *xbits);

/// HardSwish: y = x · (relu6(x + 3) / 6), relu6(t) = min(max(t, 0), 6), elementwise on the
/// path of `isa` (all paths give the same bits; see kernels_hardswish.c for −0, ±∞ and NaN).
void bk_hardswish(int isa, size_t count, const float *x, float *y);

/// Clipping: y = x where x is NaN, else min(max(x, lo), hi) with Swift's max and min (a −0 at a
/// lower bound of +0 gives +0); x and y may be the same. All paths give the same bits.
void bk_clip(int isa, size_t count, const float *x, float *y, float lo, float hi);

/// The shape of a depthwise 3×3 convolution: input (channels, height, width), output
/// (channels, out_height, out_width); padded_channels is channels rounded up to a multiple of 16.
typedef struct {
    int channels, padded_channels, height, width, out_height, out_width, stride, pad, dilation;
} bk_depthwise_geometry;
/// Floats of scratch bk_depthwise3x3 needs.
size_t bk_depthwise3x3_scratch(const bk_depthwise_geometry *g);
/// Depthwise 3×3 convolution of one image x (CHW) into y (CHW) on the path of `isa`: w holds the
/// taps tap-major (9 × padded_channels, tap ky·3 + kx, zero past the channels), bias
/// padded_channels values. All paths give the same bits (see kernels_depthwise.c).
void bk_depthwise3x3(int isa, const bk_depthwise_geometry *g, const float *x, const float *w, const float *bias, float *scratch, float *y);

/// Int8 kernel paths (unsigned activations × signed weights, exact 32-bit sums).
enum {
    BK_QISA_BASELINE = 0, ///< scalar
    BK_QISA_AVX2 = 1,     ///< AVX2: 16-bit multiply-add pairs
    BK_QISA_VNNI = 2,     ///< AVX-512 VNNI: vpdpbusd
    BK_QISA_COUNT = 3
};
/// Output channels per packed weight panel of the int8 convolution.
#define BK_QMR 8
/// 1 when this CPU can run the int8 path `qisa`.
int bk_qisa_supported(int qisa);
/// The widest supported int8 path.
int bk_qisa_best(void);
/// "baseline", "avx2" or "avx512-vnni".
const char *bk_qisa_name(int qisa);
/// Bytes bk_qpack_weights writes for m output channels and k4 groups of four reduction bytes.
size_t bk_qpack_weights_size(int m, int k4);
/// Packs int8 weights w (m, c, kh, kw) into panels of BK_QMR rows: for group g = tap · ceil(c / 4) +
/// channel group, each row's four channel bytes (zero past c and past m).
void bk_qpack_weights(int m, int c, int kh, int kw, const int8_t *w, int8_t *dst);
/// Quantizes one image x (c × h × w floats, compact) to bytes q = clamp(rne(clamp(x · inv_scale, −1024, 1024))
/// + zero_point, 0, 255) (NaN counts as −1024) in the layout [ceil(c / 4)][h + 2·pad][w + 2·pad][4], the
/// border and the padding channels holding zero_point (which stands for 0). Every path gives the same bytes.
void bk_quantize_image(int qisa, int c, int h, int w, int pad, const float *x, float inv_scale, int zero_point, uint8_t *dst);
/// The im2col matrix of a quantized image as 32-bit words (four channels each): word (g, oy·ow + ox),
/// g = (ki·kw + kj)·c4 + channel group, at b[g·ldb + oy·ow + ox]; columns past oh·ow untouched.
void bk_im2col_words(int c4, int hp, int wp, int kh, int kw, int stride, int oh, int ow,
                     const uint32_t *image, uint32_t *b, ptrdiff_t ldb);
/// Row stride of B bk_qconv needs for `columns` columns: reads reach that far (a multiple of 32).
int bk_qconv_ldb(int columns);
/// y[o · ldy + q] = relu?(fmaf((float)(Σ_g Σ_j byte_j(b[g·ldb + q]) · w[o, g, j] − correction[o]),
/// scale[o], bias[o])) for o < m, q < columns, weights packed by bk_qpack_weights (k4 groups).
/// Only those outputs are written. Every path gives the same bits.
void bk_qconv(int qisa, int m, int k4, const int8_t *packed_w, const uint32_t *b, ptrdiff_t ldb, int columns,
              const int32_t *correction, const float *scale, const float *bias, float *y, ptrdiff_t ldy, int relu);

#ifdef __cplusplus
}
#endif
#endif
