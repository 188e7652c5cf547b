/* HAKMEM_THP: what the kernel is told about hakmem's mappings, and that
 * under `always` a purge never gives back part of a SuperSlab.
 *
 *   HAKMEM_THP=MODE thp_test MODE      (MODE: never, default or always)
 *
 * Linked with -lhakmem.  The mapping of a small block must carry VmFlags
 * "hg" (MADV_HUGEPAGE) under always, "nh" (MADV_NOHUGEPAGE) under never,
 * and neither under default.  Then blocks of two classes are interleaved
 * so their slabs share SuperSlabs, one class is freed and hak_trim runs:
 * its free units go back (dirty 0) except under always, where they stay. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

/* The VmFlags line of the mapping holding `p`, into `out`. */
static int vm_flags(void *p, char *out, size_t len) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return 0;
    char line[512];
    int inside = 0, found = 0;
    uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = a >= lo && a < hi;
        } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(out, len, "%s", line + 8);
            found = 1;
            break;
        }
    }
    fclose(f);
    return found;
}

static int has_flag(const char *flags, const char *flag) {
    char padded[600];
    snprintf(padded, sizeof padded, " %s ", flags);
    char want[8];
    snprintf(want, sizeof want, " %s ", flag);
    for (char *c = padded; *c; c++)
        if (*c == '\n') *c = ' ';
    return strstr(padded, want) != NULL;
}

static uint64_t stat(const char *name) {
    uint64_t v = 0;
    hak_stat(name, &v);
    return v;
}

#define N 20000
static void *a[N], *b[N];

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "default";
    int failures = 0;
    void *p = malloc(64);
    char flags[512];
    if (!vm_flags(p, flags, sizeof flags)) {
        fprintf(stderr, "thp_test: no VmFlags for %p\n", p);
        return 1;
    }
    int hg = has_flag(flags, "hg"), nh = has_flag(flags, "nh");
    int want_hg = strcmp(mode, "always") == 0, want_nh = strcmp(mode, "never") == 0;
    if (hg != want_hg || nh != want_nh) {
        fprintf(stderr, "thp_test: FAIL %s: VmFlags:%s", mode, flags);
        failures++;
    }
    free(p);

    for (int i = 0; i < N; i++) {
        a[i] = malloc(48);
        b[i] = malloc(1500);
        memset(b[i], 1, 1500);
    }
    for (int i = 0; i < N; i++) free(b[i]);
    hak_trim();
    uint64_t dirty = stat("dirty");
    if (want_hg ? dirty == 0 : dirty != 0) {
        fprintf(stderr, "thp_test: FAIL %s: %llu dirty bytes after hak_trim\n", mode, (unsigned long long)dirty);
        failures++;
    }
    for (int i = 0; i < N; i++) free(a[i]);
    if (failures) return 1;
    printf("thp_test: ok: %s: VmFlags %s%s; %llu free bytes kept resident after a trim\n", mode,
           hg ? "hg" : "", nh ? "nh" : (hg ? "" : "without hg/nh"), (unsigned long long)dirty);
    return 0;
}
