// JPEG encoding for written datasets; errors longjmp back here and become a return code.
#include <setjmp.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include "jpeg_encode.h"

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char *error;
    size_t error_size;
} encode_errors;

static void encode_fail(j_common_ptr cinfo) {
    encode_errors *e = (encode_errors *)cinfo->err;
    char buffer[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buffer);
    snprintf(e->error, e->error_size, "%s", buffer);
    longjmp(e->jump, 1);
}

static void encode_quiet(j_common_ptr cinfo, int level) { (void)cinfo; (void)level; }

int semples_jpeg_encode(const uint8_t *pixels, int width, int height, int channels, int quality,
                        uint8_t **out_data, size_t *out_size, char *error, size_t error_size) {
    struct jpeg_compress_struct cinfo;
    encode_errors errors;
    unsigned char *buffer = NULL;
    unsigned long size = 0;
    *out_data = NULL;
    *out_size = 0;
    if (channels != 1 && channels != 3) {
        snprintf(error, error_size, "%d channels (JPEG needs 1 or 3)", channels);
        return 1;
    }
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&errors.base);
    errors.base.error_exit = encode_fail;
    errors.base.emit_message = encode_quiet;
    errors.error = error;
    errors.error_size = error_size;
    if (setjmp(errors.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return 1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buffer, &size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
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
    *out_size = (size_t)size;
    return 0;
}
