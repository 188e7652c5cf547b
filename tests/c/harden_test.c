/* Hardening and corruption checks: each case runs in a child process (this
 * program re-executed with the case's name and environment); the parent
 * checks that the child aborted with hakmem's message naming the block, or
 * that a clean run exited 0.
 *
 *   harden_test            run every case, print one line each, exit 1 on failure
 *   harden_test CASE       (internal) run one case in this process            */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"

static void *volatile sink; /* keeps the compiler from dropping malloc/free pairs */

static void *free_in_thread(void *p)
{
    free(p);
    return NULL;
}

enum { MANY = 6000 };
static void *many[MANY];

/* Fills `many` with blocks of `size` bytes and prints the first. */
static void fill_many(size_t size)
{
    for (int i = 0; i < MANY; i++)
        many[i] = malloc(size);
    printf("%p\n", many[0]);
    fflush(stdout);
}

/* Frees every block of `many` but the second (which keeps the slab live). */
static void *free_many(void *unused)
{
    (void)unused;
    for (int i = 0; i < MANY; i++)
        if (i != 1)
            free(many[i]);
    return NULL;
}

/* Frees `many` (from another thread if asked), scribbles over the first
 * block's first 16 bytes, then allocates them all again. */
static int write_after_free(int other_thread)
{
    fill_many(64);
    if (other_thread) {
        pthread_t t;
        pthread_create(&t, NULL, free_many, NULL);
        pthread_join(t, NULL);
    } else {
        free_many(NULL);
    }
    memset(many[0], 0x41, 16); /* the bug under test */
    for (int i = 0; i < MANY; i++)
        if (i != 1)
            many[i] = malloc(64);
    return 0;
}

/* Each case prints the address it expects in the report on stdout. */
static int run_case(const char *name)
{
    if (strcmp(name, "double_free") == 0) {
        char *p = malloc(40);
        sink = p;
        printf("%p\n", (void *)p);
        fflush(stdout);
        free(p);
        free(sink);
        return 0;
    }
    if (strcmp(name, "double_free_other_thread") == 0) {
        char *p = malloc(200);
        printf("%p\n", (void *)p);
        fflush(stdout);
        pthread_t t;
        pthread_create(&t, NULL, free_in_thread, p);
        pthread_join(t, NULL);
        free(p);
        return 0;
    }
    if (strcmp(name, "double_free_after_flush") == 0) {
        /* Hardened: the first block reaches its slab before the second
         * free; its neighbour stays live so the slab does too. */
        fill_many(48);
        free_many(NULL);
        free(many[0]);
        return 0;
    }
    if (strcmp(name, "write_after_free") == 0) {
        /* Hardened: free enough blocks that the oldest go back to their
         * slab, scribble over the first one's first 16 bytes (the poison
         * past its head), then allocate them all again: handing the block
         * out is refused. */
        return write_after_free(0);
    }
    if (strcmp(name, "write_after_free_remote") == 0) {
        /* Blocks freed by another thread wait on their slab's remote list
         * (or their owner's inbox), linked through their first word:
         * scribble over the first one's link, then allocate them all again:
         * following the link is refused. */
        return write_after_free(1);
    }
    if (strcmp(name, "double_free_found_at_flush") == 0) {
        /* Default mode: a block freed twice, with more frees after the
         * second, is found when the cache gives it back to its slab, where
         * it is free already. */
        fill_many(48);
        void *later[MANY];
        for (int i = 0; i < MANY; i++)
            later[i] = malloc(48);
        free_many(NULL);
        free(many[0]); /* the bug under test */
        for (int i = 0; i < MANY; i++)
            free(later[i]);
        return 0;
    }
    if (strcmp(name, "write_after_free_cached") == 0) {
        /* A write into a block waiting in the cache is found when the
         * block is to be handed out. */
        char *p = malloc(100);
        char *volatile stale = p;
        printf("%p\n", (void *)(p + 8));
        fflush(stdout);
        free(p);
        stale[8] = 1; /* the bug under test: a field in the first 16 bytes */
        for (int i = 0; i < 4; i++)
            sink = malloc(100);
        return 0;
    }
    if (strcmp(name, "no_immediate_reuse") == 0) {
        /* Hardened, the block just freed is not the next one handed out. */
        char *p = malloc(40), *q = malloc(40);
        printf("%p\n", (void *)p);
        fflush(stdout);
        free(p);
        char *r = malloc(40);
        free(q);
        free(r);
        return r == p ? 5 : 0;
    }
    if (strcmp(name, "usable_is_exact") == 0) {
        /* Hardened, malloc_usable_size is the size asked, in every tier,
         * and stays so through realloc; writing all of it is no overflow. */
        static const size_t sizes[] = { 0, 1, 13, 100, 1000, 5000, 40000, 300000, 3 << 20 };
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            char *p = malloc(n);
            if (p == NULL || malloc_usable_size(p) != n)
                return 3;
            memset(p, 0x61, n);
            p = realloc(p, n / 2 + 1);
            if (p == NULL || malloc_usable_size(p) != n / 2 + 1)
                return 4;
            memset(p, 0x62, n / 2 + 1);
            p = realloc(p, 2 * n + 7);
            if (p == NULL || malloc_usable_size(p) != 2 * n + 7)
                return 5;
            memset(p, 0x63, 2 * n + 7);
            free(p);
        }
        return 0;
    }
    if (strcmp(name, "overflow_after_realloc") == 0) {
        /* A block shrunk in place gets its tail at the new end. */
        char *p = malloc(100);
        p = realloc(p, 80);
        printf("%p\n", (void *)p);
        fflush(stdout);
        char *volatile q = p;
        q[80] = 0; /* the bug under test: one byte past the new size */
        free(p);
        return 0;
    }
    if (strcmp(name, "zero_size_blocks") == 0) {
        /* Hardened malloc(0): distinct, no usable bytes, freed and reused,
         * realloc'd to a real size; more live ones than the region's 8,192
         * slots get ordinary blocks. */
        enum { N = 9000 };
        static void *z[N];
        for (int i = 0; i < N; i++) {
            z[i] = malloc(0);
            if (z[i] == NULL || (i < 8000 && malloc_usable_size(z[i]) != 0))
                return 3;
        }
        for (int i = 1; i < N; i++)
            if (z[i] == z[i - 1])
                return 4;
        char *p = realloc(z[0], 10);
        if (p == NULL || malloc_usable_size(p) != 10)
            return 5;
        memset(p, 1, 10);
        free(p);
        for (int i = 1; i < N; i++)
            free(z[i]);
        for (int i = 0; i < 3 * N; i++)
            free(sink = malloc(0));
        return 0;
    }
    if (strcmp(name, "zero_size_double_free") == 0) {
        void *p = malloc(0);
        sink = p;
        printf("%p\n", p);
        fflush(stdout);
        free(p);
        free(sink);
        return 0;
    }
    if (strcmp(name, "clean") == 0) {
        /* Hardened mode must not change what a correct program sees. */
        enum { N = 4096 };
        static unsigned char *blocks[N];
        for (int round = 0; round < 20; round++) {
            for (int i = 0; i < N; i++) {
                size_t size = 1 + (size_t)((i * 7919 + round * 31) % 3000);
                blocks[i] = malloc(size);
                if (blocks[i] == NULL || malloc_usable_size(blocks[i]) < size)
                    return 3;
                memset(blocks[i], i & 0xff, size);
            }
            for (int i = 0; i < N; i++) {
                if (blocks[i][0] != (unsigned char)(i & 0xff))
                    return 4;
                free(blocks[i]);
            }
        }
        return 0;
    }
    fprintf(stderr, "harden_test: unknown case %s\n", name);
    return 2;
}

struct expect {
    const char *name;
    const char *harden;  /* HAKMEM_HARDEN for the child */
    const char *message; /* NULL: must exit 0; else SIGABRT with this + address */
};

static const struct expect cases[] = {
    { "double_free", "1", "free(): double free " },
    { "double_free", "0", "free(): double free " }, /* twice in a row: default mode too */
    { "double_free_other_thread", "1", "free(): double free " },
    { "double_free_after_flush", "1", "free(): double free " },
    { "write_after_free_remote", "0", "corrupted free list at " },
    { "write_after_free", "1", "write after free at " }, /* hardened: the poison past the head */
    { "double_free_found_at_flush", "0", "free(): double free " },
    { "write_after_free_cached", "1", "write after free at " },
    { "no_immediate_reuse", "1", NULL },
    { "usable_is_exact", "1", NULL },
    { "overflow_after_realloc", "1", "heap overflow past " },
    { "zero_size_blocks", "1", NULL },
    { "zero_size_double_free", "1", "free(): double free " },
    { "clean", "1", NULL },
    { "clean", "0", NULL },
};

/* Runs one case in a child; returns 1 if it behaved as expected. */
static int check(const struct expect *e)
{
    int out[2], err[2];
    if (pipe(out) != 0 || pipe(err) != 0)
        return 0;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        setenv("HAKMEM_HARDEN", e->harden, 1);
        execl("/proc/self/exe", "harden_test", e->name, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    char obuf[256] = "", ebuf[1024] = "";
    ssize_t n = read(out[0], obuf, sizeof obuf - 1);
    obuf[n > 0 ? n : 0] = '\0';
    size_t el = 0;
    while ((n = read(err[0], ebuf + el, sizeof ebuf - 1 - el)) > 0)
        el += (size_t)n;
    ebuf[el] = '\0';
    close(out[0]);
    close(err[0]);
    int status;
    waitpid(pid, &status, 0);

    int ok;
    if (e->message == NULL) {
        ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    } else {
        /* The report must name the block the case printed. */
        char want[512];
        void *addr = NULL;
        sscanf(obuf, "%p", &addr);
        snprintf(want, sizeof want, "hakmem: %s%p", e->message, addr);
        if (strncmp(e->message, "corrupted", 9) == 0)
            snprintf(want, sizeof want, "hakmem: %s", e->message);
        ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(ebuf, want) != NULL;
    }
    printf("%s %s (HAKMEM_HARDEN=%s)%s%s\n", ok ? "ok  " : "FAIL", e->name, e->harden,
           ok ? "" : ": stderr: ", ok ? "" : ebuf);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc == 2)
        return run_case(argv[1]);
    if (hak_version() == NULL)
        return 1;
    int failed = 0, total = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < total; i++)
        failed += !check(&cases[i]);
    printf("harden_test: %d passed, %d failed\n", total - failed, failed);
    return failed != 0;
}
