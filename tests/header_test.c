/* Compiled as C (c11, gnu11) and as C++ (c++11) with warnings as errors:
 * the header must be clean in both and declare every function. */
#include <hakmem.h>

int main(void)
{
    uint64_t mapped = 0;
    void *p = hak_malloc(10);
    p = hak_realloc(p, 20);
    hak_free(p);
    hak_free(hak_calloc(2, 8));
    hak_free(hak_aligned_alloc(64, 64));
    return hak_usable_size(0) == 0 && hak_version() != 0 && hak_trim() >= 0 &&
                   hak_stats_print(-1) == -1 &&
                   hak_stat("mapped", &mapped) == 0 && mapped > 0 && hak_prof_dump(0) == -1
               ? 0
               : 1;
}
