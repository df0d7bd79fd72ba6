#ifndef BRANCHY_COMPRESSION_H
#define BRANCHY_COMPRESSION_H

#include <stddef.h>

/// Lossless compressors loaded at run time from the system's shared libraries
/// (libzstd.so.1, liblz4.so.1), so that building needs no headers and a node that
/// never compresses never needs the libraries.
///
/// `which`: 1 = LZ4 (block format), 2 = Zstandard (one frame).

/// 1 when the library for `which` could be loaded, else 0.
int bc_available(int which);

/// Writes the library file name tried for `which` into a static string.
const char *bc_library_name(int which);

/// Compresses `n` bytes from `src` into `dst` (capacity `cap`). Returns the compressed
/// size, or 0 when the library is missing or the output does not fit.
size_t bc_compress(int which, void *dst, size_t cap, const void *src, size_t n, int level);

/// Decompresses `n` bytes from `src` into `dst`, which must receive exactly `expected`
/// bytes. Returns 0 on success, -1 when the library is missing, -2 when the data is
/// corrupt or does not decompress to exactly `expected` bytes.
int bc_decompress(int which, void *dst, size_t expected, const void *src, size_t n);

#endif
