/* A library whose constructor allocates: loaded as a dependency of
 * early_test, its constructor runs before the preloaded hakmem's (as
 * libselinux's does in sed, tar and every program linked with it), so these
 * are the process's first calls, made before hakmem's settings were read.
 * EARLY_FIRST=k makes block k (a small, pool, big, aligned, calloc'd or
 * posix_memalign'd one) the very first, so that each kind of call is tested
 * as the first. */
#include <stdlib.h>

#include "early_lib.h"

static void *blocks[EARLY_BLOCKS];
static const size_t sizes[EARLY_BLOCKS] = { 41, 100001, 3000001, 1001, 200001, 77 };
static const size_t aligns[EARLY_BLOCKS] = { 0, 0, 0, 256, 0, 4096 };

static void allocate(int i)
{
    switch (i) {
    case 3: blocks[i] = aligned_alloc(aligns[i], sizes[i]); break;
    case 4: blocks[i] = calloc(1, sizes[i]); break;
    case 5:
        if (posix_memalign(&blocks[i], aligns[i], sizes[i]) != 0)
            blocks[i] = NULL;
        break;
    default: blocks[i] = malloc(sizes[i]);
    }
}

__attribute__((constructor)) static void allocate_early(void)
{
    const char *first = getenv("EARLY_FIRST");
    int k = first != NULL ? atoi(first) % EARLY_BLOCKS : 0;
    for (int j = 0; j < EARLY_BLOCKS; j++)
        allocate((k + j) % EARLY_BLOCKS);
}

void *early_block(int i, size_t *size, size_t *align)
{
    *size = sizes[i];
    *align = aligns[i];
    return blocks[i];
}
