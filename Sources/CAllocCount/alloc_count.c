// Counting wrappers around glibc's allocator, so that `semples bench` can show that a timed loop
// makes no heap allocation (a count, not a belief). Defined in the program itself, they take the
// place of glibc's entry points for every library the program loads; each forwards to glibc's own
// implementation (__libc_*), so the heap is glibc's as before. Sanitizer builds leave malloc to
// the sanitizer runtime and count nothing.
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include "alloc_count.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define SEMPLES_NO_COUNTING 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SEMPLES_NO_COUNTING 1
#endif

#if defined(__linux__) && defined(__GLIBC__) && !defined(SEMPLES_NO_COUNTING)

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static _Atomic unsigned long allocations;

static inline void count(void) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); }

void *malloc(size_t size) { count(); return __libc_malloc(size); }
void *calloc(size_t count_, size_t size) { count(); return __libc_calloc(count_, size); }
void *realloc(void *pointer, size_t size) { count(); return __libc_realloc(pointer, size); }
void *memalign(size_t alignment, size_t size) { count(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { count(); return __libc_memalign(alignment, size); }

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    count();
    void *p = __libc_memalign(alignment, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

unsigned long semples_allocation_count(void) { return atomic_load_explicit(&allocations, memory_order_relaxed); }
int semples_allocation_counting(void) { return 1; }

#else

unsigned long semples_allocation_count(void) { return 0; }
int semples_allocation_counting(void) { return 0; }

#endif
