/* threads_test — the allocator under concurrency.
 *
 *   (a) producer/consumer: 6 threads pass blocks to each other through queues;
 *   (b) 5000 short-lived threads whose blocks the main thread frees after they
 *       have exited (and which free blocks the main thread gave them);
 *   (c) fork() while other threads are busy allocating: the child must be able
 *       to malloc/free (and start a thread), the parent carries on;
 *   (d) Larson-like cross-thread free: 4 threads (two generations) swap blocks
 *       through a shared slot array, so most blocks die in a foreign thread.
 *
 * Every block is filled with a pattern derived from its address and size and
 * verified just before it is freed, so a block handed out twice, or written by
 * the allocator while live, shows up as a pattern mismatch.
 *
 * Built linked with -lhakmem (HAK_LINKED) and plain; run the plain one as is
 * for glibc or with LD_PRELOAD (HAKTEST_EXPECT_HAKMEM=1) for hakmem. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef HAK_LINKED
#include "hakmem.h"
#endif

/* ---------------------------------------------------------------- checks */

static atomic_int n_pass, n_fail;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static bool check(bool ok, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool check(bool ok, int line, const char *fmt, ...)
{
    if (ok) {
        atomic_fetch_add(&n_pass, 1);
        return true;
    }
    int n = atomic_fetch_add(&n_fail, 1) + 1;
    if (n <= 100) {
        va_list ap;
        va_start(ap, fmt);
        pthread_mutex_lock(&print_lock);
        fprintf(stderr, "FAIL threads_test.c:%d: ", line);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        pthread_mutex_unlock(&print_lock);
        va_end(ap);
    }
    return false;
}
#define CHECK(cond, ...) check((cond), __LINE__, __VA_ARGS__)

/* Worker threads count their own checks and report once, so the totals do
 * not depend on scheduling and the shared counters are not a hot spot. */
struct tally {
    long ok, bad;
};
#define TALLY(t, cond, ...) \
    ((cond) ? ((t)->ok++, true) : ((t)->bad++, check(false, __LINE__, __VA_ARGS__)))
static void tally_report(const struct tally *t, const char *what)
{
    if (t->bad == 0)
        atomic_fetch_add(&n_pass, 1);
    else
        CHECK(false, "%s: %ld of %ld blocks bad", what, t->bad, t->ok + t->bad);
}

/* ------------------------------------------------------ blocks & patterns */

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static inline uint64_t seed_of(const void *p, size_t n)
{
    return mix((uintptr_t)p ^ (n * 0x9e3779b97f4a7c15ull));
}

/* Fills p[0..n) with the pattern of (p, n): 8 bytes at a time, then the tail. */
static void fill_block(void *p, size_t n)
{
    uint64_t s = seed_of(p, n);
    unsigned char *c = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = s + i * 0x9e3779b97f4a7c15ull;
        memcpy(c + i, &v, 8);
    }
    for (; i < n; i++)
        c[i] = (unsigned char)(s >> (8 * (i & 7))) ^ (unsigned char)i;
}

static bool block_ok(const void *p, size_t n)
{
    uint64_t s = seed_of(p, n);
    const unsigned char *c = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, c + i, 8);
        if (v != s + i * 0x9e3779b97f4a7c15ull)
            return false;
    }
    for (; i < n; i++)
        if (c[i] != ((unsigned char)(s >> (8 * (i & 7))) ^ (unsigned char)i))
            return false;
    return true;
}

/* xorshift64*: a private deterministic generator per thread. */
static inline uint64_t rnd(uint64_t *st)
{
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return *st * 2685821657736338717ull;
}

/* Mostly small blocks, some mid-size ones, a few from the big tiers. */
static size_t pick_size(uint64_t *st, size_t min)
{
    uint64_t r = rnd(st);
    unsigned pct = (unsigned)(r % 1000);
    size_t span;
    size_t base;
    if (pct < 700) {
        base = 1, span = 256;
    } else if (pct < 900) {
        base = 257, span = 4096 - 256;
    } else if (pct < 980) {
        base = 4097, span = 32 * KiB - 4096;
    } else if (pct < 998) {
        base = 32 * KiB + 1, span = 256 * KiB - 32 * KiB;
    } else {
        base = 256 * KiB + 1, span = 4 * MiB - 256 * KiB;
    }
    size_t n = base + (size_t)((r >> 20) % span);
    return n < min ? min : n;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "FAIL: malloc(%zu) = NULL (errno %d)\n", n, errno);
        abort();
    }
    return p;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ================================================ (a) producer / consumer */

#define A_THREADS 6
#define A_PER_THREAD 20000 /* a multiple of A_THREADS - 1: equal shares */
#define A_QUEUE_LIMIT 512  /* backpressure bound per queue */

/* The queue nodes are malloc'd by the producer and freed by the consumer: they
 * are cross-thread small blocks too. */
struct node {
    struct node *next;
    void *ptr;
    size_t size;
};

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    struct node *head, *tail;
    atomic_long len;
} __attribute__((aligned(64)));

static struct queue queues[A_THREADS];

static void q_push(struct queue *q, struct node *n)
{
    n->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    atomic_fetch_add(&q->len, 1);
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

/* Takes the whole list; waits for something if `wait`. */
static struct node *q_take_all(struct queue *q, bool wait)
{
    pthread_mutex_lock(&q->lock);
    while (wait && !q->head)
        pthread_cond_wait(&q->nonempty, &q->lock);
    struct node *n = q->head;
    q->head = q->tail = NULL;
    atomic_store(&q->len, 0);
    pthread_mutex_unlock(&q->lock);
    return n;
}

struct a_arg {
    int id;
    long received;
    struct tally t;
};

static void a_consume(struct a_arg *a, struct node *n)
{
    while (n) {
        struct node *next = n->next;
        TALLY(&a->t, block_ok(n->ptr, n->size), "(a) thread %d: received %zu-byte "
              "block %p corrupted", a->id, n->size, n->ptr);
        free(n->ptr);
        free(n);
        a->received++;
        n = next;
    }
}

static void *a_thread(void *arg)
{
    struct a_arg *a = arg;
    uint64_t st = 0x1234567ull + (uint64_t)a->id * 7919;
    for (long k = 0; k < A_PER_THREAD; k++) {
        /* Round-robin over the other threads: each gets an equal share. */
        int dest = (a->id + 1 + (int)(k % (A_THREADS - 1))) % A_THREADS;
        size_t n = pick_size(&st, 1);
        struct node *nd = xmalloc(sizeof *nd);
        nd->ptr = xmalloc(n);
        nd->size = n;
        fill_block(nd->ptr, n);
        while (atomic_load(&queues[dest].len) >= A_QUEUE_LIMIT) {
            a_consume(a, q_take_all(&queues[a->id], false)); /* no deadlock */
            sched_yield();
        }
        q_push(&queues[dest], nd);
        if ((k & 15) == 0)
            a_consume(a, q_take_all(&queues[a->id], false));
    }
    while (a->received < A_PER_THREAD)
        a_consume(a, q_take_all(&queues[a->id], true));
    return NULL;
}

static void test_producer_consumer(void)
{
    pthread_t th[A_THREADS];
    struct a_arg args[A_THREADS];
    for (int i = 0; i < A_THREADS; i++) {
        pthread_mutex_init(&queues[i].lock, NULL);
        pthread_cond_init(&queues[i].nonempty, NULL);
        args[i] = (struct a_arg){.id = i};
    }
    for (int i = 0; i < A_THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, a_thread, &args[i]) == 0, "(a) pthread_create");
    for (int i = 0; i < A_THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].received == A_PER_THREAD, "(a) thread %d received %ld blocks, "
              "want %d", i, args[i].received, A_PER_THREAD);
        tally_report(&args[i].t, "(a) producer/consumer");
    }
    for (int i = 0; i < A_THREADS; i++)
        CHECK(queues[i].head == NULL, "(a) queue %d not drained", i);
}

/* ================================================ (b) short-lived threads */

#define B_THREADS 5000
#define B_BATCH 100
#define B_BLOCKS 5

struct b_slot {
    void *gift;        /* from main, freed by the thread */
    size_t gift_size;
    bool gift_ok;
    void *ptr[B_BLOCKS]; /* from the thread, freed by main after the join */
    size_t size[B_BLOCKS];
};

static const size_t B_SIZES[B_BLOCKS] = {24, 600, 5000, 40000, 300 * KiB};
static struct b_slot b_slots[B_BATCH];

static void *b_thread(void *arg)
{
    struct b_slot *s = arg;
    s->gift_ok = block_ok(s->gift, s->gift_size);
    free(s->gift);
    /* Some churn of its own, to warm and leave behind a thread cache. */
    void *tmp[32];
    for (int i = 0; i < 32; i++) {
        tmp[i] = xmalloc(16 + (size_t)i * 40);
        fill_block(tmp[i], 16 + (size_t)i * 40);
    }
    for (int i = 0; i < 32; i += 2)
        free(tmp[i]);
    for (int k = 0; k < B_BLOCKS; k++) {
        /* The big ones only in every 8th thread: they cost page faults. */
        size_t n = (k < 3 || (s - b_slots) % 8 == 0) ? B_SIZES[k] : 48;
        s->ptr[k] = xmalloc(n);
        s->size[k] = n;
        fill_block(s->ptr[k], n);
    }
    for (int i = 1; i < 32; i += 2) {
        s->gift_ok &= block_ok(tmp[i], 16 + (size_t)i * 40);
        free(tmp[i]);
    }
    return NULL;
}

static void test_short_lived_threads(void)
{
    struct b_slot *slots = b_slots;
    pthread_t th[B_BATCH];
    struct tally t = {0, 0};
    long created = 0;
    for (int done = 0; done < B_THREADS; done += B_BATCH) {
        for (int i = 0; i < B_BATCH; i++) {
            slots[i].gift_size = 1 + (size_t)(done + i) % 3000;
            slots[i].gift = xmalloc(slots[i].gift_size);
            fill_block(slots[i].gift, slots[i].gift_size);
        }
        int started = 0;
        for (int i = 0; i < B_BATCH; i++) {
            if (pthread_create(&th[i], NULL, b_thread, &slots[i]) != 0) {
                CHECK(false, "(b) pthread_create failed after %ld threads", created);
                break;
            }
            started++;
        }
        for (int i = 0; i < started; i++)
            pthread_join(th[i], NULL); /* every thread is gone before main frees */
        created += started;
        for (int i = 0; i < started; i++) {
            TALLY(&t, slots[i].gift_ok, "(b) thread saw a corrupted block");
            for (int k = 0; k < B_BLOCKS; k++) {
                TALLY(&t, block_ok(slots[i].ptr[k], slots[i].size[k]),
                      "(b) %zu-byte block of an exited thread corrupted", slots[i].size[k]);
                free(slots[i].ptr[k]);
            }
        }
        if (started < B_BATCH)
            return;
    }
    CHECK(created == B_THREADS, "(b) %ld threads ran", created);
    tally_report(&t, "(b) short-lived threads");
}

/* ================================================ (c) fork with busy threads */

#define C_FORKS 50
#define C_WORKERS 2
#define C_KEEP 16

static atomic_bool c_stop;

struct c_arg {
    int id;
    struct tally t;
};

/* Allocates, verifies and frees until told to stop: keeps the allocator's
 * locks and caches busy when fork() happens. */
static void *c_worker(void *arg)
{
    struct c_arg *a = arg;
    uint64_t st = 0xabcdefull + (uint64_t)a->id;
    enum { LIVE = 64 };
    void *live[LIVE] = {0};
    size_t sz[LIVE] = {0};
    while (!atomic_load_explicit(&c_stop, memory_order_relaxed)) {
        int i = (int)(rnd(&st) % LIVE);
        if (live[i]) {
            TALLY(&a->t, block_ok(live[i], sz[i]), "(c) worker block corrupted");
            free(live[i]);
        }
        sz[i] = pick_size(&st, 1);
        live[i] = xmalloc(sz[i]);
        fill_block(live[i], sz[i]);
    }
    for (int i = 0; i < LIVE; i++)
        if (live[i]) {
            TALLY(&a->t, block_ok(live[i], sz[i]), "(c) worker block corrupted");
            free(live[i]);
        }
    return NULL;
}

static void *c_child_thread(void *arg)
{
    int *ok = arg;
    for (int i = 0; i < 200; i++) {
        size_t n = 8 + (size_t)i * 97;
        void *p = malloc(n);
        if (!p) {
            *ok = 0;
            break;
        }
        fill_block(p, n);
        *ok &= block_ok(p, n);
        free(p);
    }
    return NULL;
}

/* In the child: the parent's blocks are intact and can be freed, new blocks
 * of every tier work, and a new thread can allocate. Exit code = failures. */
static int c_child(void **keep, const size_t *keep_size)
{
    int bad = 0;
    for (int i = 0; i < C_KEEP; i++) {
        bad += !block_ok(keep[i], keep_size[i]);
        free(keep[i]);
    }
    static const size_t sizes[] = {1, 16, 100, 1000, 5000, 32 * KiB, 33 * KiB, 200};
    void *p[64];
    void *big = malloc(2 * MiB); /* one from the biggest tier too */
    if (!big)
        return 100;
    fill_block(big, 2 * MiB);
    bad += !block_ok(big, 2 * MiB);
    free(big);
    for (int r = 0; r < 4; r++) {
        for (int i = 0; i < 64; i++) {
            size_t n = sizes[i % 8];
            p[i] = malloc(n);
            if (!p[i])
                return 100;
            fill_block(p[i], n);
        }
        for (int i = 0; i < 64; i++) {
            bad += !block_ok(p[i], sizes[i % 8]);
            free(p[i]);
        }
    }
    pthread_t th;
    int ok = 1;
    if (pthread_create(&th, NULL, c_child_thread, &ok) != 0)
        return 101;
    pthread_join(th, NULL);
    bad += !ok;
    return bad > 99 ? 99 : bad;
}

static void test_fork_busy(void)
{
    pthread_t th[C_WORKERS];
    struct c_arg args[C_WORKERS];
    void *keep[C_KEEP];
    size_t keep_size[C_KEEP];
    for (int i = 0; i < C_KEEP; i++) {
        keep_size[i] = (size_t)1 << (i + 2); /* 4 B … 128 KiB */
        keep[i] = xmalloc(keep_size[i]);
        fill_block(keep[i], keep_size[i]);
    }
    atomic_store(&c_stop, false);
    for (int i = 0; i < C_WORKERS; i++) {
        args[i] = (struct c_arg){.id = i};
        CHECK(pthread_create(&th[i], NULL, c_worker, &args[i]) == 0, "(c) pthread_create");
    }
    int forks_ok = 0;
    for (int f = 0; f < C_FORKS; f++) {
        usleep(2000); /* let the workers get going */
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(20); /* a deadlocked child dies of SIGALRM instead of hanging */
            _exit(c_child(keep, keep_size));
        }
        if (!CHECK(pid > 0, "(c) fork: %s", strerror(errno)))
            break;
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            forks_ok++;
        else
            CHECK(false, "(c) child %d %s %d", f,
                  WIFSIGNALED(status) ? "killed by signal" : "exited with",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    CHECK(forks_ok == C_FORKS, "(c) %d of %d children succeeded", forks_ok, C_FORKS);

    /* The parent carries on allocating after all those forks. */
    uint64_t st = 99;
    struct tally t = {0, 0};
    for (int i = 0; i < 20000; i++) {
        size_t n = pick_size(&st, 1);
        void *p = xmalloc(n);
        fill_block(p, n);
        TALLY(&t, block_ok(p, n), "(c) parent block corrupted after forks");
        free(p);
    }
    tally_report(&t, "(c) parent after forks");
    atomic_store(&c_stop, true);
    for (int i = 0; i < C_WORKERS; i++) {
        pthread_join(th[i], NULL);
        tally_report(&args[i].t, "(c) busy workers");
    }
    for (int i = 0; i < C_KEEP; i++) {
        CHECK(block_ok(keep[i], keep_size[i]), "(c) parent's %zu-byte block changed "
              "by the children", keep_size[i]);
        free(keep[i]);
    }
}

/* ================================================ (d) Larson-like */

#define D_THREADS 4
#define D_SLOTS 4096
#define D_ROUNDS 150000
#define D_GENERATIONS 2

/* Each block starts with its size, so whoever frees it can verify it. */
static _Atomic(size_t *) d_slots[D_SLOTS];

struct d_arg {
    int id;
    struct tally t;
};

static void d_release(struct d_arg *a, size_t *blk)
{
    size_t n = blk[0];
    TALLY(&a->t, n >= 16 && n <= 4 * MiB && block_ok(blk + 1, n - sizeof(size_t)),
          "(d) block %p (size %zu) corrupted", (void *)blk, n);
    free(blk);
}

static void *d_thread(void *arg)
{
    struct d_arg *a = arg;
    uint64_t st = 0x5151ull * (uint64_t)(a->id + 1);
    for (int r = 0; r < D_ROUNDS; r++) {
        uint64_t x = rnd(&st);
        size_t n = (x & 0xff) < 250 ? 16 + (size_t)(x >> 40) % 1024
                   : (x & 0xff) < 255 ? 1024 + (size_t)(x >> 40) % (31 * KiB)
                                      : 32 * KiB + (size_t)(x >> 40) % (224 * KiB);
        size_t *blk = xmalloc(n);
        blk[0] = n;
        fill_block(blk + 1, n - sizeof(size_t));
        size_t *old = atomic_exchange(&d_slots[(x >> 16) % D_SLOTS], blk);
        if (old) /* usually another thread's (or a dead thread's) block */
            d_release(a, old);
    }
    return NULL;
}

static void test_larson(void)
{
    /* Two generations: the second frees what the exited first one allocated. */
    for (int g = 0; g < D_GENERATIONS; g++) {
        pthread_t th[D_THREADS];
        struct d_arg args[D_THREADS];
        for (int i = 0; i < D_THREADS; i++) {
            args[i] = (struct d_arg){.id = g * D_THREADS + i};
            CHECK(pthread_create(&th[i], NULL, d_thread, &args[i]) == 0,
                  "(d) pthread_create");
        }
        for (int i = 0; i < D_THREADS; i++) {
            pthread_join(th[i], NULL);
            tally_report(&args[i].t, "(d) cross-thread free");
        }
    }
    struct d_arg rest = {.id = -1};
    for (int i = 0; i < D_SLOTS; i++) {
        size_t *blk = atomic_exchange(&d_slots[i], NULL);
        if (blk)
            d_release(&rest, blk);
    }
    tally_report(&rest.t, "(d) leftover blocks");
}

/* ================================================================= main */

/* Under hakmem, make sure it really is hakmem that answers malloc. */
static void check_allocator(void)
{
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    bool found = m && dladdr(m, &info) && info.dli_fname;
    CHECK(found && strstr(info.dli_fname, "libhakmem.so"),
          "malloc resolves to %s, not libhakmem.so", found ? info.dli_fname : "(nothing)");
#ifdef HAK_LINKED
    CHECK((void *)&malloc == m, "linked malloc %p is not the global one %p",
          (void *)&malloc, m);
    CHECK(hak_version() != NULL, "hak_version() = NULL");
#endif
}

int main(void)
{
#ifdef HAK_LINKED
    bool hakmem_mode = true;
#else
    bool hakmem_mode = getenv("HAKTEST_EXPECT_HAKMEM") != NULL;
#endif
    printf("threads_test: testing %s\n", hakmem_mode ? "hakmem" : "the system malloc");
    if (hakmem_mode)
        check_allocator();

    static const struct { const char *name; void (*fn)(void); } parts[] = {
        {"(a) producer/consumer", test_producer_consumer},
        {"(b) short-lived threads", test_short_lived_threads},
        {"(c) fork with busy threads", test_fork_busy},
        {"(d) Larson-like cross-thread free", test_larson},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        int before = atomic_load(&n_fail);
        double t0 = now();
        parts[i].fn();
        printf("%s: %s (%.2f s)\n", parts[i].name,
               atomic_load(&n_fail) == before ? "ok" : "FAILED", now() - t0);
        fflush(stdout);
    }
    printf("threads_test: %d passed, %d failed\n", atomic_load(&n_pass), atomic_load(&n_fail));
    return atomic_load(&n_fail) ? 1 : 0;
}
