/* Blocks allocated before hakmem's constructor ran (by a library's
 * constructor, tests/c/early_lib.c) are blocks of the mode the settings
 * say: run preloaded, with and without HAKMEM_HARDEN=1. Hardened, each one's
 * usable size is exactly what was asked (glibc's and default mode's are
 * rounded up), so the check fails if they were made in default mode, as
 * they were before the settings were loaded ahead of the first block:
 * hardened free then took them for invalid pointers and aborted.
 *
 *   [EARLY_FIRST=k] early_test   exit 0 when every block checks out,
 *                                reallocs and frees (k: early_lib.c) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "early_lib.h"

static int fail(int i, const char *what, size_t got)
{
    fprintf(stderr, "early_test: block %d: %s (%zu)\n", i, what, got);
    return 1;
}

int main(void)
{
    Dl_info info;
    if (dladdr((void *)malloc, &info) == 0 || strstr(info.dli_fname, "libhakmem") == NULL) {
        fprintf(stderr, "early_test: malloc is not hakmem's\n");
        return 1;
    }
    const char *h = getenv("HAKMEM_HARDEN");
    int hardened = h != NULL && strcmp(h, "1") == 0;
    for (int i = 0; i < EARLY_BLOCKS; i++) {
        size_t size, align;
        unsigned char *p = early_block(i, &size, &align);
        if (p == NULL)
            return fail(i, "no block", 0);
        if (align != 0 && (uintptr_t)p % align != 0)
            return fail(i, "misaligned to", align);
        size_t usable = malloc_usable_size(p);
        if (hardened ? usable != size : usable < size)
            return fail(i, hardened ? "usable size is not the size asked for" : "usable size below the size", usable);
        for (size_t j = 0; i == 4 && j < size; j++) /* block 4 is calloc's */
            if (p[j] != 0)
                return fail(i, "calloc's block not zeroed at", j);
        memset(p, 0x5a, size);
        if (i % 2 == 0) {
            p = realloc(p, size * 2);
            if (p == NULL || p[size - 1] != 0x5a)
                return fail(i, "realloc lost the bytes", size);
        }
        free(p);
    }
    printf("early_test: %d blocks made before hakmem's constructor check out (%s)\n", EARLY_BLOCKS,
           hardened ? "hardened" : "default mode");
    return 0;
}
