// Counts heap allocations of the whole process (glibc), for the benchmark's
// allocations-per-sample figure. Linked into the `branchy` executable only.
#ifndef BRANCHY_ALLOCATION_COUNTER_H
#define BRANCHY_ALLOCATION_COUNTER_H
#include <stdint.h>

/// 1 when this build can count (Linux with glibc, no sanitizer), 0 otherwise.
int branchy_allocation_counting_available(void);
/// Allocation calls (malloc, calloc, realloc, aligned and memalign variants) since start-up.
uint64_t branchy_allocation_count(void);

#endif
