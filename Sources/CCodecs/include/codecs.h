#ifndef SEMPLES_CODECS_H
#define SEMPLES_CODECS_H
#include <stddef.h>
#include <stdint.h>

/// Returns the libjpeg version this wrapper was built against (used to check linkage).
int semples_codecs_jpeg_lib_version(void);

/// A decoded image. `pixels` is malloc'd (free with semples_codecs_free); on failure it is NULL
/// and `error` holds the library's message.
typedef struct {
    uint8_t *pixels;
    int width;
    int height;
    int channels;
    char error[256];
} semples_image;

/// Decodes a JPEG held in memory to 8-bit RGB. Images with more than `max_pixels` pixels, with
/// more than 500 scans, or cut short are refused. Returns 0 on success.
int semples_jpeg_decode(const uint8_t *data, size_t size, long max_pixels, semples_image *out);

/// PNG decoding modes.
enum { SEMPLES_PNG_RGB = 0, SEMPLES_PNG_LABELS = 1 };

/// Decodes a PNG held in memory. SEMPLES_PNG_RGB: any PNG to 8-bit RGB (palette expanded, alpha
/// dropped, 16-bit reduced). SEMPLES_PNG_LABELS: palette or greyscale to one raw value per pixel
/// (palette indices kept as they are, 255 included). Returns 0 on success.
int semples_png_decode(const uint8_t *data, size_t size, int mode, long max_pixels, semples_image *out);

/// Encodes 8-bit pixels (channels 1 = grey, 3 = RGB; or a palette of `palette_count` RGB
/// entries with channels 1 = indices) as PNG into a malloc'd buffer. Returns 0 on success.
int semples_png_encode(const uint8_t *pixels, int width, int height, int channels,
                       const uint8_t *palette, int palette_count,
                       uint8_t **out_data, size_t *out_size, char *error, size_t error_size);

/// Encodes 8-bit grey (channels 1) or RGB (channels 3) pixels as a baseline JPEG of the given
/// quality (1-100) into a malloc'd buffer. Returns 0 on success.
int semples_jpeg_encode(const uint8_t *pixels, int width, int height, int channels, int quality,
                        uint8_t **out_data, size_t *out_size, char *error, size_t error_size);

void semples_codecs_free(void *p);


#endif
