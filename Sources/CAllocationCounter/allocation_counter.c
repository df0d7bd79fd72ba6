// Wraps glibc's allocator entry points: the executable's definitions take precedence over
// libc's for every library of the process, and forward to glibc's own exported
// implementations (__libc_malloc and friends). Only a relaxed atomic counter is added.
// Built without sanitizers only (see below).
#include "allocation_counter.h"

// Sanitizers bring allocators of their own: wrapping glibc's under them would hand memory
// from one allocator to the other. Such builds do not count.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define BRANCHY_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define BRANCHY_SANITIZED 1
#endif

#if defined(__linux__) && defined(__GLIBC__) && !defined(BRANCHY_SANITIZED)
#include <errno.h>
#include <stddef.h>
#include <stdatomic.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static _Atomic uint64_t allocations;

static inline void count(void) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); }

void *malloc(size_t size) { count(); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { count(); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { count(); return __libc_realloc(p, size); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t alignment, size_t size) { count(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { count(); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size)
{
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    count();
    void *p = __libc_memalign(alignment, size);
    if (!p && size) return ENOMEM;
    *out = p;
    return 0;
}

int branchy_allocation_counting_available(void) { return 1; }
uint64_t branchy_allocation_count(void) { return atomic_load_explicit(&allocations, memory_order_relaxed); }
#else
int branchy_allocation_counting_available(void) { return 0; }
uint64_t branchy_allocation_count(void) { return 0; }
#endif
