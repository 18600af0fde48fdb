#ifndef SEMPLES_JPEG_ENCODE_H
#define SEMPLES_JPEG_ENCODE_H
#include <stddef.h>
#include <stdint.h>

/// Encodes 8-bit grey (channels 1) or RGB (channels 3) pixels as a baseline JPEG of the given
/// quality (1…100) into a malloc'd buffer (free with semples_codecs_free). Returns 0 on success;
/// on failure `error` holds the library's message.
int semples_jpeg_encode(const uint8_t *pixels, int width, int height, int channels, int quality,
                        uint8_t **out_data, size_t *out_size, char *error, size_t error_size);

#endif
