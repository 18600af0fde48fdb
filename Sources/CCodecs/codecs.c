#include <stdio.h>
#include <stddef.h>
#include <jpeglib.h>
#include <png.h>
#include "codecs.h"

int semples_codecs_jpeg_lib_version(void) { return JPEG_LIB_VERSION; }
