/* Out of memory: under an address-space limit (RLIMIT_AS, what `ulimit -v`
 * sets), allocations of every tier must fail with NULL and errno ENOMEM,
 * never crash or abort, and succeed again once memory has been freed.
 *
 *   oom_test        prints one line per tier, exit 1 on any failure        */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static int failures;

static void expect(int ok, const char *what)
{
    if (!ok) {
        failures++;
        fprintf(stderr, "oom_test: FAIL: %s\n", what);
    }
}

/* Current address-space size in bytes, from /proc/self/statm. */
static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f == NULL || fscanf(f, "%lu", &pages) != 1)
        exit(1);
    fclose(f);
    return pages * 4096;
}

/* Allocates blocks of `size` (linked through their first word, so nothing
 * else needs memory) until malloc fails; checks errno; frees them all; then
 * allocates again. */
static void exhaust(size_t size, const char *tier)
{
    void *head = NULL;
    size_t n = 0;
    for (;;) {
        errno = 0;
        void **p = malloc(size);
        if (p == NULL) {
            expect(errno == ENOMEM, "a failed malloc set errno to ENOMEM");
            break;
        }
        memset(p, 0x5a, size < 4096 ? size : 4096);
        *p = head;
        head = p;
        n++;
    }
    expect(n > 0, "some blocks fit under the limit");
    errno = 0;
    expect(calloc(size, 1) == NULL && errno == ENOMEM, "calloc fails with ENOMEM too");
    while (head != NULL) {
        void *next = *(void **)head;
        free(head);
        head = next;
    }
    void *again = malloc(size);
    expect(again != NULL, "malloc works again after the frees");
    free(again);
    printf("oom_test: %s (%zu bytes): %zu blocks, then ENOMEM, then malloc again: %s\n", tier, size, n,
           again ? "ok" : "FAILED");
}

int main(void)
{
    Dl_info info;
    if (getenv("HAKTEST_EXPECT_HAKMEM") != NULL &&
        (dladdr((void *)malloc, &info) == 0 || strstr(info.dli_fname, "libhakmem") == NULL)) {
        fprintf(stderr, "oom_test: malloc is not hakmem's\n");
        return 1;
    }
    void *warm = malloc(16); /* hakmem set up before the limit */
    struct rlimit rl = { vm_size() + (256u << 20), RLIM_INFINITY };
    rl.rlim_max = rl.rlim_cur;
    if (setrlimit(RLIMIT_AS, &rl) != 0) {
        perror("oom_test: setrlimit");
        return 1;
    }
    exhaust(64, "small");
    exhaust(16 << 10, "mid");
    exhaust(300 << 10, "large");
    exhaust(8 << 20, "big");

    /* A realloc that cannot be served leaves the block intact. */
    char *p = malloc(100);
    expect(p != NULL, "malloc after the exhaustion rounds");
    if (p != NULL) {
        strcpy(p, "intact");
        errno = 0;
        char *q = realloc(p, (size_t)1 << 40);
        expect(q == NULL && errno == ENOMEM, "an impossible realloc fails with ENOMEM");
        if (q == NULL) {
            /* realloc failed, so p is still ours (GCC cannot know that). */
            char *still = p;
            __asm__("" : "+r"(still));
            expect(strcmp(still, "intact") == 0, "the old block is intact after a failed realloc");
            free(still);
        } else {
            free(q);
        }
    }
    free(warm);
    printf("oom_test: %d failures\n", failures);
    return failures != 0;
}
