#include "branchy_images.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* libpng's simplified API (png.h, libpng 1.6): the image structure and the calls it takes. */
typedef struct {
    void *opaque;
    uint32_t version, width, height, format, flags, colormap_entries, warning_or_error;
    char message[64];
} bi_png_image;
enum { BI_PNG_IMAGE_VERSION = 1, BI_PNG_FORMAT_GRAY = 0, BI_PNG_FORMAT_RGB = 2, BI_PNG_FORMAT_FLAG_COLOR = 2 };
typedef int (*png_begin_fn)(bi_png_image *, const void *, size_t);
typedef int (*png_finish_fn)(bi_png_image *, const void *, void *, int32_t, void *);
typedef void (*png_free_fn)(bi_png_image *);

/* TurboJPEG (turbojpeg.h, libjpeg-turbo 2.x). */
typedef void *(*tj_init_fn)(void);
typedef int (*tj_header_fn)(void *, const unsigned char *, unsigned long, int *, int *, int *, int *);
typedef int (*tj_decompress_fn)(void *, const unsigned char *, unsigned long, unsigned char *, int, int, int, int, int);
typedef int (*tj_destroy_fn)(void *);
typedef char *(*tj_error_fn)(void *);
enum { BI_TJPF_RGB = 0, BI_TJPF_GRAY = 6, BI_TJCS_GRAY = 2 };

static struct { png_begin_fn begin; png_finish_fn finish; png_free_fn free; } png;
static struct { tj_init_fn init; tj_header_fn header; tj_decompress_fn decompress; tj_destroy_fn destroy; tj_error_fn error; } tj;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    void *p = dlopen("libpng16.so.16", RTLD_NOW | RTLD_LOCAL);
    if (p) {
        png.begin = (png_begin_fn)dlsym(p, "png_image_begin_read_from_memory");
        png.finish = (png_finish_fn)dlsym(p, "png_image_finish_read");
        png.free = (png_free_fn)dlsym(p, "png_image_free");
        if (!png.begin || !png.finish || !png.free) memset(&png, 0, sizeof png);
    }
    void *j = dlopen("libturbojpeg.so.0", RTLD_NOW | RTLD_LOCAL);
    if (j) {
        tj.init = (tj_init_fn)dlsym(j, "tjInitDecompress");
        tj.header = (tj_header_fn)dlsym(j, "tjDecompressHeader3");
        tj.decompress = (tj_decompress_fn)dlsym(j, "tjDecompress2");
        tj.destroy = (tj_destroy_fn)dlsym(j, "tjDestroy");
        tj.error = (tj_error_fn)dlsym(j, "tjGetErrorStr2");
        if (!tj.init || !tj.header || !tj.decompress || !tj.destroy || !tj.error) memset(&tj, 0, sizeof tj);
    }
}

int bi_available(int which) {
    pthread_once(&once, load);
    return which == BI_PNG ? png.begin != 0 : which == BI_JPEG ? tj.init != 0 : 0;
}

const char *bi_library_name(int which) { return which == BI_PNG ? "libpng16.so.16" : "libturbojpeg.so.0"; }

static void say(char *message, size_t capacity, const char *text) {
    if (capacity) snprintf(message, capacity, "%s", text ? text : "unknown error");
}

int bi_header(int which, const void *data, size_t size, int *width, int *height, int *grey, char *message, size_t capacity) {
    if (!bi_available(which)) return -1;
    if (which == BI_PNG) {
        bi_png_image image;
        memset(&image, 0, sizeof image);
        image.version = BI_PNG_IMAGE_VERSION;
        if (!png.begin(&image, data, size)) { say(message, capacity, image.message); png.free(&image); return -2; }
        *width = (int)image.width; *height = (int)image.height;
        *grey = (image.format & BI_PNG_FORMAT_FLAG_COLOR) == 0;
        png.free(&image);
        return 0;
    }
    void *handle = tj.init();
    if (!handle) { say(message, capacity, "TurboJPEG could not start"); return -2; }
    int subsampling = 0, colorspace = 0;
    int rc = tj.header(handle, (const unsigned char *)data, (unsigned long)size, width, height, &subsampling, &colorspace);
    if (rc != 0) say(message, capacity, tj.error(handle));
    *grey = colorspace == BI_TJCS_GRAY;
    tj.destroy(handle);
    return rc == 0 ? 0 : -2;
}

int bi_decode(int which, const void *data, size_t size, int channels, unsigned char *pixels, size_t capacity, char *message,
              size_t message_capacity) {
    if (!bi_available(which)) return -1;
    if (which == BI_PNG) {
        bi_png_image image;
        memset(&image, 0, sizeof image);
        image.version = BI_PNG_IMAGE_VERSION;
        if (!png.begin(&image, data, size)) { say(message, message_capacity, image.message); png.free(&image); return -2; }
        image.format = channels == 1 ? BI_PNG_FORMAT_GRAY : BI_PNG_FORMAT_RGB;
        if ((size_t)image.width * image.height * (size_t)channels > capacity) {
            say(message, message_capacity, "image larger than its header said");
            png.free(&image);
            return -2;
        }
        if (!png.finish(&image, NULL, pixels, (int32_t)(image.width * (uint32_t)channels), NULL)) {
            say(message, message_capacity, image.message);
            png.free(&image);
            return -2;
        }
        return 0;
    }
    void *handle = tj.init();
    if (!handle) { say(message, message_capacity, "TurboJPEG could not start"); return -2; }
    int width = 0, height = 0, subsampling = 0, colorspace = 0;
    int rc = tj.header(handle, (const unsigned char *)data, (unsigned long)size, &width, &height, &subsampling, &colorspace);
    if (rc == 0 && (size_t)width * (size_t)height * (size_t)channels > capacity) {
        say(message, message_capacity, "image larger than its header said");
        tj.destroy(handle);
        return -2;
    }
    if (rc == 0)
        rc = tj.decompress(handle, (const unsigned char *)data, (unsigned long)size, pixels, width, width * channels, height,
                           channels == 1 ? BI_TJPF_GRAY : BI_TJPF_RGB, 0);
    if (rc != 0) say(message, message_capacity, tj.error(handle));
    tj.destroy(handle);
    return rc == 0 ? 0 : -2;
}
