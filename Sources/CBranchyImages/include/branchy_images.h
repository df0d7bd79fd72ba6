// PNG and JPEG decoding through the system's libraries, loaded at run time: libpng's simplified
// API (libpng16.so.16, Debian's libpng16-16) and libjpeg-turbo's TurboJPEG API
// (libturbojpeg.so.0, Debian's libturbojpeg0). No headers are needed to build.
#ifndef BRANCHY_IMAGES_H
#define BRANCHY_IMAGES_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 for PNG, 2 for JPEG.
enum { BI_PNG = 1, BI_JPEG = 2 };

/// Whether the library for `which` could be loaded.
int bi_available(int which);
/// The library's file name, for messages.
const char *bi_library_name(int which);

/// Reads the header of an image in memory: width, height and whether it is greyscale.
/// Returns 0, or −1 when the library is missing, −2 when the data is not a valid image
/// (`message`, `capacity` bytes, says why).
int bi_header(int which, const void *data, size_t size, int *width, int *height, int *grey, char *message, size_t capacity);

/// Decodes the image into `pixels` (width · height · channels bytes, rows top to bottom,
/// channels interleaved: 1 grey or 3 RGB), converting as needed. Returns 0, −1 or −2 as above.
int bi_decode(int which, const void *data, size_t size, int channels, unsigned char *pixels, size_t capacity, char *message,
              size_t message_capacity);

#ifdef __cplusplus
}
#endif
#endif
