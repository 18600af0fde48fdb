// libjpeg and libpng report errors by longjmp out of a callback: these wrappers keep that inside C
// and hand Swift an error code and message.
#include <setjmp.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include "codecs.h"

int semples_codecs_jpeg_lib_version(void) { return JPEG_LIB_VERSION; }

void semples_codecs_free(void *p) { free(p); }

static void set_error(char *dst, size_t n, const char *msg) {
    snprintf(dst, n, "%s", msg);
}

// MARK: - JPEG

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    int truncated;
    char *error;
} jpeg_errors;

static void jpeg_fail(j_common_ptr cinfo) {
    jpeg_errors *e = (jpeg_errors *)cinfo->err;
    char buffer[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buffer);
    set_error(e->error, 256, buffer);
    longjmp(e->jump, 1);
}

static void jpeg_message(j_common_ptr cinfo, int level) {
    jpeg_errors *e = (jpeg_errors *)cinfo->err;
    if (level < 0) {
        // Warnings: a missing end of data means the file was cut short. Other warnings (stray
        // bytes before a marker) are tolerated, as most decoders do.
        if (cinfo->err->msg_code == JWRN_JPEG_EOF) e->truncated = 1;
        cinfo->err->num_warnings++;
    }
}

static void jpeg_progress(j_common_ptr cinfo) {
    // Progressive files can hold thousands of tiny scans that take minutes to decode.
    if (cinfo->is_decompressor) {
        j_decompress_ptr d = (j_decompress_ptr)cinfo;
        if (d->input_scan_number > 500) {
            jpeg_errors *e = (jpeg_errors *)cinfo->err;
            set_error(e->error, 256, "more than 500 scans");
            longjmp(e->jump, 1);
        }
    }
}

int semples_jpeg_decode(const uint8_t *data, size_t size, long max_pixels, semples_image *out) {
    struct jpeg_decompress_struct cinfo;
    jpeg_errors errors;
    struct jpeg_progress_mgr progress;
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;
    memset(out, 0, sizeof(*out));
    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err = jpeg_std_error(&errors.base);
    errors.base.error_exit = jpeg_fail;
    errors.base.emit_message = jpeg_message;
    errors.truncated = 0;
    errors.error = out->error;
    if (setjmp(errors.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    progress.progress_monitor = jpeg_progress;
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    long w = (long)cinfo.image_width, h = (long)cinfo.image_height;
    if (w <= 0 || h <= 0 || w > max_pixels / h) {
        snprintf(out->error, sizeof(out->error), "image of %ld x %ld pixels exceeds the limit of %ld pixels", w, h, max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int comps = cinfo.output_components;
    if ((cmyk && comps != 4) || (!cmyk && comps != 3)) {
        set_error(out->error, sizeof(out->error), "unexpected number of colour components");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    pixels = malloc((size_t)w * (size_t)h * 3);
    row = malloc((size_t)w * (size_t)comps);
    if (!pixels || !row) {
        set_error(out->error, sizeof(out->error), "out of memory");
        jpeg_destroy_decompress(&cinfo);
        free(pixels); free(row);
        return 1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[1];
        uint8_t *dst = pixels + (size_t)cinfo.output_scanline * (size_t)w * 3;
        rows[0] = cmyk ? (JSAMPROW)row : (JSAMPROW)dst;
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) break;
        if (cmyk) {
            // Adobe files store CMYK inverted; convert as (255-C)(255-K)/255 per channel.
            for (long x = 0; x < w; x++) {
                int k = row[x * 4 + 3];
                for (int c = 0; c < 3; c++) {
                    int v = row[x * 4 + c];
                    int t = cinfo.saw_Adobe_marker ? v * k + 128 : (255 - v) * (255 - k) + 128;
                    dst[x * 3 + c] = (uint8_t)(((t >> 8) + t) >> 8);
                }
            }
        }
    }
    if (errors.truncated || cinfo.output_scanline < cinfo.output_height) {
        set_error(out->error, sizeof(out->error), "file is truncated (premature end of JPEG data)");
        jpeg_destroy_decompress(&cinfo);
        free(pixels); free(row);
        return 1;
    }
    jpeg_abort_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    out->pixels = pixels;
    out->width = (int)w;
    out->height = (int)h;
    out->channels = 3;
    return 0;
}

int semples_jpeg_encode(const uint8_t *pixels, int width, int height, int channels, int quality,
                        uint8_t **out_data, size_t *out_size, char *error, size_t error_size) {
    struct jpeg_compress_struct cinfo;
    jpeg_errors errors;
    char message[256] = {0};
    unsigned char *volatile buffer = NULL;
    unsigned long size = 0;
    *out_data = NULL;
    *out_size = 0;
    if (width <= 0 || height <= 0 || (channels != 1 && channels != 3) || quality < 1 || quality > 100) {
        set_error(error, error_size, "invalid image layout or quality for JPEG");
        return 1;
    }
    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err = jpeg_std_error(&errors.base);
    errors.base.error_exit = jpeg_fail;
    errors.error = message;
    if (setjmp(errors.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        set_error(error, error_size, message);
        return 1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, (unsigned char **)&buffer, &size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * (size_t)width * (size_t)channels);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out_data = buffer;
    *out_size = size;
    return 0;
}

// MARK: - PNG

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t offset;
    char *error;
    jmp_buf jump;
} png_reader;

static void png_fail(png_structp png, png_const_charp message) {
    png_reader *r = (png_reader *)png_get_error_ptr(png);
    set_error(r->error, 256, message);
    longjmp(r->jump, 1);
}

static void png_warn(png_structp png, png_const_charp message) { (void)png; (void)message; }

static void png_read_memory(png_structp png, png_bytep dst, png_size_t n) {
    png_reader *r = (png_reader *)png_get_io_ptr(png);
    if (n > r->size - r->offset) png_error(png, "file is truncated");
    memcpy(dst, r->data + r->offset, n);
    r->offset += n;
}

int semples_png_decode(const uint8_t *data, size_t size, int mode, long max_pixels, semples_image *out) {
    png_reader reader;
    png_structp png = NULL;
    png_infop info = NULL;
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    memset(out, 0, sizeof(*out));
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        set_error(out->error, sizeof(out->error), "not a PNG file (wrong signature)");
        return 1;
    }
    reader.data = data;
    reader.size = size;
    reader.offset = 0;
    reader.error = out->error;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, png_fail, png_warn);
    if (!png) { set_error(out->error, sizeof(out->error), "out of memory"); return 1; }
    info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); set_error(out->error, sizeof(out->error), "out of memory"); return 1; }
    if (setjmp(reader.jump)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        return 1;
    }
    png_set_read_fn(png, &reader, png_read_memory);
    // Bound what ancillary chunks (compressed text, ICC profiles) may expand to.
    png_set_chunk_malloc_max(png, 16u << 20);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
    if (w == 0 || h == 0 || (long)w > max_pixels / (long)h) {
        snprintf(out->error, sizeof(out->error), "image of %lu x %lu pixels exceeds the limit of %ld pixels",
                 (unsigned long)w, (unsigned long)h, max_pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return 1;
    }
    int channels;
    if (mode == SEMPLES_PNG_LABELS) {
        if (type != PNG_COLOR_TYPE_PALETTE && type != PNG_COLOR_TYPE_GRAY) {
            set_error(out->error, sizeof(out->error), "expected a palette or greyscale label image, found colour channels");
            png_destroy_read_struct(&png, &info, NULL);
            return 1;
        }
        if (depth == 16) {
            set_error(out->error, sizeof(out->error), "16-bit label images are not supported");
            png_destroy_read_struct(&png, &info, NULL);
            return 1;
        }
        if (depth < 8) png_set_packing(png);
        channels = 1;
    } else {
        if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
        if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        if (depth == 16) png_set_strip_16(png);
        if (type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
        if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
        channels = 3;
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * (size_t)channels) {
        set_error(out->error, sizeof(out->error), "unexpected row layout after conversion");
        png_destroy_read_struct(&png, &info, NULL);
        return 1;
    }
    pixels = malloc((size_t)w * (size_t)h * (size_t)channels);
    rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!pixels || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * (size_t)w * (size_t)channels;
    png_read_image(png, rows);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    out->pixels = pixels;
    out->width = (int)w;
    out->height = (int)h;
    out->channels = channels;
    return 0;
}

typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
    char *error;
    jmp_buf jump;
} png_writer;

static void png_write_fail(png_structp png, png_const_charp message) {
    png_writer *w = (png_writer *)png_get_error_ptr(png);
    set_error(w->error, 256, message);
    longjmp(w->jump, 1);
}

static void png_write_memory(png_structp png, png_bytep src, png_size_t n) {
    png_writer *w = (png_writer *)png_get_io_ptr(png);
    if (w->size + n > w->capacity) {
        size_t cap = w->capacity ? w->capacity : 4096;
        while (cap < w->size + n) cap *= 2;
        uint8_t *p = realloc(w->data, cap);
        if (!p) png_error(png, "out of memory");
        w->data = p;
        w->capacity = cap;
    }
    memcpy(w->data + w->size, src, n);
    w->size += n;
}

static void png_flush_memory(png_structp png) { (void)png; }

int semples_png_encode(const uint8_t *pixels, int width, int height, int channels,
                       const uint8_t *palette, int palette_count,
                       uint8_t **out_data, size_t *out_size, char *error, size_t error_size) {
    char message[256] = {0};
    png_writer writer;
    png_bytep *volatile rows = NULL;
    png_structp png;
    png_infop info;
    *out_data = NULL;
    *out_size = 0;
    if (width <= 0 || height <= 0 || (channels != 1 && channels != 3) || (palette && channels != 1)
        || (palette && (palette_count < 1 || palette_count > 256))) {
        set_error(error, error_size, "invalid image layout for PNG");
        return 1;
    }
    memset(&writer, 0, sizeof(writer));
    writer.error = message;
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &writer, png_write_fail, png_warn);
    if (!png) { set_error(error, error_size, "out of memory"); return 1; }
    info = png_create_info_struct(png);
    if (!info) { png_destroy_write_struct(&png, NULL); set_error(error, error_size, "out of memory"); return 1; }
    if (setjmp(writer.jump)) {
        png_destroy_write_struct(&png, &info);
        free(writer.data);
        free(rows);
        set_error(error, error_size, message);
        return 1;
    }
    png_set_write_fn(png, &writer, png_write_memory, png_flush_memory);
    int type = palette ? PNG_COLOR_TYPE_PALETTE : channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB;
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) {
        png_color colors[256];
        for (int i = 0; i < palette_count; i++) {
            colors[i].red = palette[3 * i];
            colors[i].green = palette[3 * i + 1];
            colors[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(png, info, colors, palette_count);
    }
    png_write_info(png, info);
    rows = malloc(sizeof(png_bytep) * (size_t)height);
    if (!rows) png_error(png, "out of memory");
    for (int y = 0; y < height; y++) rows[y] = (png_bytep)(pixels + (size_t)y * (size_t)width * (size_t)channels);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *out_data = writer.data;
    *out_size = writer.size;
    return 0;
}
