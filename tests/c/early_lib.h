/* The blocks tests/c/early_lib.c allocated in its constructor. */
#include <stddef.h>

#define EARLY_BLOCKS 6

/* Block i (0 <= i < EARLY_BLOCKS), with the size and alignment (0: none)
 * it was asked for. */
void *early_block(int i, size_t *size, size_t *align);
