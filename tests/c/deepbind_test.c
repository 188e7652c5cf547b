/* Mixed allocators: a library loaded with RTLD_DEEPBIND mallocs with
 * glibc's malloc, and the program frees, reallocs and sizes those blocks
 * with hakmem's.  hakmem must hand each to glibc (no abort), and still
 * report a pointer nobody handed out.
 *
 *   deepbind_test LIB   (run with hakmem preloaded or linked)
 *
 * glibc's usable sizes are 8 more than a multiple of 16 (but for blocks it
 * mmaps), hakmem's a multiple of 16 (for blocks of 16 bytes or more): the
 * sizes prove whose block each is, and that malloc_usable_size asked the
 * right allocator. */
#include <dlfcn.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...)                                                           \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "deepbind_test: FAIL line %d: ", __LINE__);            \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
            failures++;                                                            \
        }                                                                          \
    } while (0)

static int glibc_block(void *p) { return malloc_usable_size(p) % 16 == 8; }

/* Runs `f` in a child with stderr captured: it must abort, saying `want`. */
static void must_abort(const char *what, void (*f)(void *), void *arg, const char *want) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        f(arg);
        _exit(0);
    }
    close(fds[1]);
    char buf[512] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    (void)n;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "%s: no abort (status %d)", what, status);
    CHECK(strstr(buf, want) != NULL, "%s: said \"%s\", not \"%s\"", what, buf, want);
}

static void free_it(void *p) { free(p); }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: deepbind_test LIB\n");
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_DEEPBIND);
    if (!lib) {
        fprintf(stderr, "deepbind_test: dlopen: %s\n", dlerror());
        return 1;
    }
    void *(*lib_malloc)(size_t) = (void *(*)(size_t))dlsym(lib, "lib_malloc");
    void *(*lib_calloc)(size_t, size_t) = (void *(*)(size_t, size_t))dlsym(lib, "lib_calloc");
    void *(*lib_memalign)(size_t, size_t) = (void *(*)(size_t, size_t))dlsym(lib, "lib_memalign");
    char *(*lib_strdup)(const char *) = (char *(*)(const char *))dlsym(lib, "lib_strdup");
    void *(*lib_in_thread)(size_t) = (void *(*)(size_t))dlsym(lib, "lib_malloc_in_thread");

    void *own = malloc(100);
    CHECK(!glibc_block(own), "hakmem's own block has glibc's usable size %zu", malloc_usable_size(own));
    free(own);

    /* Small blocks from glibc's main arena, freed by hakmem. */
    for (int i = 0; i < 1000; i++) {
        void *p = lib_malloc(16 + i * 7);
        CHECK(p && glibc_block(p), "lib_malloc(%d) is not glibc's (usable %zu)", 16 + i * 7, malloc_usable_size(p));
        free(p);
    }
    char *s = lib_strdup("a string glibc copied");
    CHECK(strcmp(s, "a string glibc copied") == 0, "strdup");
    free(s);

    /* realloc moves a glibc block into hakmem, contents intact (a size of
     * 16 bytes' multiple: hardened, hakmem's usable size is the size asked). */
    char *r = lib_malloc(50);
    memset(r, 'x', 50);
    r = realloc(r, 5008);
    CHECK(r && !glibc_block(r), "realloc left the block with glibc (usable %zu)", malloc_usable_size(r));
    for (int i = 0; i < 50; i++) CHECK(r[i] == 'x', "realloc lost byte %d", i);
    free(r);

    /* A mapping of its own (glibc mmaps blocks from 128 KiB), an aligned
     * block, and one from a thread arena. */
    void *big = lib_calloc(1, 4 << 20);
    CHECK(big && malloc_usable_size(big) >= 4 << 20, "lib_calloc(4 MiB): usable %zu", malloc_usable_size(big));
    free(big);
    void *al = lib_memalign(4096, 10000);
    CHECK(al && (uintptr_t)al % 4096 == 0, "lib_memalign");
    free(al);
    void *t = lib_in_thread(300);
    CHECK(t && glibc_block(t), "the thread's block is not glibc's");
    free(t);

    /* Pointers nobody handed out are still reported. */
    char stack[64];
    must_abort("a stack pointer", free_it, stack + 16, "invalid pointer");
    char *inner = lib_calloc(1, 256);
    must_abort("the inside of a glibc block", free_it, inner + 64, "invalid pointer");
    free(inner);

    if (failures) return 1;
    printf("deepbind_test: ok: glibc's blocks (main arena, thread arena, mmapped, aligned) freed, "
           "realloc'd and sized through hakmem; stack and interior pointers reported\n");
    return 0;
}
