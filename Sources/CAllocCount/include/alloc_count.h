#ifndef SEMPLES_ALLOC_COUNT_H
#define SEMPLES_ALLOC_COUNT_H

/// Heap allocations (malloc, calloc, realloc, memalign, aligned_alloc, posix_memalign) made by
/// the whole process since it started, counted by wrappers around glibc's allocator.
unsigned long semples_allocation_count(void);

/// 1 when the wrappers are in place; 0 in sanitizer builds, whose runtime owns malloc.
int semples_allocation_counting(void);

#endif
