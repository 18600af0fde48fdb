#ifndef SEMPLES_CODECS_H
#define SEMPLES_CODECS_H
#include <stddef.h>
#include <stdint.h>

/// Returns the libjpeg version this wrapper was built against (used to check linkage).
int semples_codecs_jpeg_lib_version(void);

#endif
