#include "branchy_compression.h"

#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

typedef size_t (*zstd_compress_fn)(void *, size_t, const void *, size_t, int);
typedef size_t (*zstd_decompress_fn)(void *, size_t, const void *, size_t);
typedef unsigned (*zstd_is_error_fn)(size_t);
typedef unsigned long long (*zstd_content_size_fn)(const void *, size_t);
typedef int (*lz4_compress_fn)(const char *, char *, int, int);
typedef int (*lz4_decompress_fn)(const char *, char *, int, int);

static struct {
    zstd_compress_fn compress;
    zstd_decompress_fn decompress;
    zstd_is_error_fn is_error;
    zstd_content_size_fn content_size;
} zstd;

static struct {
    lz4_compress_fn compress;
    lz4_decompress_fn decompress;
} lz4;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    void *z = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
    if (z) {
        zstd.compress = (zstd_compress_fn)dlsym(z, "ZSTD_compress");
        zstd.decompress = (zstd_decompress_fn)dlsym(z, "ZSTD_decompress");
        zstd.is_error = (zstd_is_error_fn)dlsym(z, "ZSTD_isError");
        zstd.content_size = (zstd_content_size_fn)dlsym(z, "ZSTD_getFrameContentSize");
        if (!zstd.compress || !zstd.decompress || !zstd.is_error || !zstd.content_size) memset(&zstd, 0, sizeof zstd);
    }
    void *l = dlopen("liblz4.so.1", RTLD_NOW | RTLD_LOCAL);
    if (l) {
        lz4.compress = (lz4_compress_fn)dlsym(l, "LZ4_compress_default");
        lz4.decompress = (lz4_decompress_fn)dlsym(l, "LZ4_decompress_safe");
        if (!lz4.compress || !lz4.decompress) memset(&lz4, 0, sizeof lz4);
    }
}

int bc_available(int which) {
    pthread_once(&once, load);
    if (which == 1) return lz4.compress != 0;
    if (which == 2) return zstd.compress != 0;
    return 0;
}

const char *bc_library_name(int which) {
    return which == 1 ? "liblz4.so.1" : which == 2 ? "libzstd.so.1" : "";
}

size_t bc_compress(int which, void *dst, size_t cap, const void *src, size_t n, int level) {
    if (!bc_available(which)) return 0;
    if (which == 1) {
        if (n > 0x7E000000u || cap > 0x7FFFFFFFu) return 0;
        int r = lz4.compress((const char *)src, (char *)dst, (int)n, (int)cap);
        return r > 0 ? (size_t)r : 0;
    }
    size_t r = zstd.compress(dst, cap, src, n, level);
    return zstd.is_error(r) ? 0 : r;
}

int bc_decompress(int which, void *dst, size_t expected, const void *src, size_t n) {
    if (!bc_available(which)) return -1;
    if (which == 1) {
        if (n > 0x7FFFFFFFu || expected > 0x7FFFFFFFu) return -2;
        int r = lz4.decompress((const char *)src, (char *)dst, (int)n, (int)expected);
        return (r >= 0 && (size_t)r == expected) ? 0 : -2;
    }
    /* The frame must announce its size, and announce exactly what is expected, before
       anything is decoded; decoding then writes into `dst` only. */
    unsigned long long declared = zstd.content_size(src, n);
    if (declared != (unsigned long long)expected) return -2;
    size_t r = zstd.decompress(dst, expected, src, n);
    return (!zstd.is_error(r) && r == expected) ? 0 : -2;
}
