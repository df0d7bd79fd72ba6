// Declarations shared by the per-ISA files and the dispatcher.
#ifndef BRANCHY_KERNELS_INTERNAL_H
#define BRANCHY_KERNELS_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#define BK_DECLARE_ISA(S) \
    void bk_pack_a_##S(int m, int k, const float *a, ptrdiff_t rs, ptrdiff_t cs, float *dst); \
    void bk_pack_b_##S(int k, int n, const float *b, ptrdiff_t rs, ptrdiff_t cs, float *dst); \
    void bk_conv_tiles_##S(int m, int k, const float *packed_w, const float *bias, const float *bbase, \
                           const int32_t *off, int columns, float *map, ptrdiff_t map_stride, int relu); \
    void bk_conv_rows_##S(int m, int k, const float *packed_w, const float *bias, const float *bbase, \
                          const int32_t *off, int columns, float *y, ptrdiff_t ldy, int relu, float *scratch); \
    size_t bk_linear_scratch_size_##S(int n, int k); \
    void bk_linear_##S(int n, int k, int o, const float *x, ptrdiff_t ldx, const float *packed_wt, \
                       const float *bias, float *y, ptrdiff_t ldy, int relu, float *scratch); \
    size_t bk_sgemm_scratch_size_##S(int m, int n, int k); \
    void bk_maxpool_##S(int c, int h, int w, const float *src, ptrdiff_t src_cs, ptrdiff_t src_rs, \
                        int kernel, int stride, int pad, int oh, int ow, \
                        float *dst, ptrdiff_t dst_cs, ptrdiff_t dst_rs, int relu); \
    void bk_im2col_padded_##S(int c, int hp, int wp, int kh, int kw, int oh, int ow, \
                              const float *padded, float *col, ptrdiff_t ld); \
    void bk_sgemm_##S(int m, int n, int k, const float *a, ptrdiff_t ars, ptrdiff_t acs, \
                      const float *b, ptrdiff_t brs, ptrdiff_t bcs, float *c, ptrdiff_t ldc, int accumulate, \
                      float *scratch); \
    void bk_gemm_rows_##S(int n, int k, int o, const float *x, ptrdiff_t ldx, const float *packed_b, \
                          float *y, ptrdiff_t ldy); \
    void bk_winograd_input_##S(int c, int h, int w, const float *x, float *padded, float *v); \
    void bk_winograd_output_##S(int o, int th, int tw, const float *m, const float *bias, \
                                float *map, ptrdiff_t map_cs, int relu);

BK_DECLARE_ISA(baseline)
#if defined(__x86_64__)
BK_DECLARE_ISA(avx2)
BK_DECLARE_ISA(avx512)
#endif

#endif
