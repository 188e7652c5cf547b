/* Built with `pkg-config --cflags --libs hakmem` from an installed prefix and
 * run without LD_PRELOAD: the standard functions must be hakmem's. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hakmem.h>

int main(void)
{
    char *p = malloc(100);
    if (p == NULL)
        return 1;
    strcpy(p, "hello");
    Dl_info info;
    if (dladdr((void *)malloc, &info) == 0 || info.dli_fname == NULL ||
        strstr(info.dli_fname, "libhakmem") == NULL) {
        fprintf(stderr, "link_test: malloc is not hakmem's (%s)\n",
                info.dli_fname ? info.dli_fname : "?");
        return 1;
    }
    if (hak_usable_size(p) < 100)
        return 1;
    printf("link_test: ok: malloc from %s, hakmem %s\n", info.dli_fname, hak_version());
    free(p);
    return 0;
}
