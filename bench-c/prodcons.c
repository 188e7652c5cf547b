/* prodcons — producer/consumer: every block is freed by another thread.
 *
 * T threads, half producers (T/2) and half consumers (the rest; at least one
 * of each).  A producer allocates a batch of blocks (batch length uniform in
 * [b, B], block size uniform in [min, max]), writing the first and last bytes
 * of each, and hands the batch over a bounded queue; a consumer takes it,
 * reads the first byte of every block (checking it), and frees them all.  So
 * all frees are remote frees, in bursts, of blocks another thread allocated
 * a moment ago: a message-passing server's shape.
 *
 * The queue is bounded by a fixed pool of q + T batch descriptors (allocated
 * once, before the clock starts): a producer waits for an empty descriptor,
 * so at most q full batches wait for a consumer.  The run ends after -n
 * blocks in all (default) or after -s seconds.
 *
 * Output, one line:  prodcons threads=T producers=P consumers=C min=A max=B
 *                    batch_min=b batch_max=B depth=q blocks=N ops_per_sec=X
 *                    seconds=S peak_kib=K
 * where one op is one block passed (a malloc by a producer and the free of
 * that block by a consumer) and peak_kib is VmHWM, the process's peak RSS. */
#define _GNU_SOURCE
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>

struct batch {
    size_t len;
    void *blocks[];      /* g_batch_max slots */
};

/* A ring of batch pointers with room for every descriptor: pushing never
 * waits, popping waits while the ring is empty and not closed. */
struct queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    struct batch **ring;
    size_t cap, head, count;
    int closed;
};

static struct queue g_empty, g_full;
static size_t g_min, g_max, g_batch_min, g_batch_max;
static uint64_t g_total;           /* blocks to pass in all; 0: timed run */
static atomic_ullong g_claimed;    /* blocks claimed by producers so far */
static atomic_int g_stop;          /* timed run: raised at the deadline */
static atomic_uint g_producers_left;
static uint64_t g_seed;

static void queue_init(struct queue *q, size_t cap)
{
    q->ring = calloc(cap, sizeof *q->ring);
    if (q->ring == NULL)
        die_oom("calloc", cap * sizeof *q->ring);
    q->cap = cap;
    q->head = q->count = 0;
    q->closed = 0;
    if (pthread_mutex_init(&q->lock, NULL) != 0 || pthread_cond_init(&q->nonempty, NULL) != 0) {
        fprintf(stderr, "prodcons: pthread_mutex_init/pthread_cond_init failed\n");
        exit(1);
    }
}

static void queue_push(struct queue *q, struct batch *b)
{
    pthread_mutex_lock(&q->lock);
    if (q->count == q->cap) { /* cannot happen: the ring holds every descriptor */
        fprintf(stderr, "prodcons: queue overflow\n");
        abort();
    }
    q->ring[(q->head + q->count) % q->cap] = b;
    q->count++;
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

/* NULL once the queue is closed and drained. */
static struct batch *queue_pop(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed)
        pthread_cond_wait(&q->nonempty, &q->lock);
    struct batch *b = NULL;
    if (q->count > 0) {
        b = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    pthread_mutex_unlock(&q->lock);
    return b;
}

static void queue_close(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

/* How many blocks the next batch may hold: 0 when the run is over. */
static size_t claim(size_t want)
{
    if (g_total == 0)
        return atomic_load_explicit(&g_stop, memory_order_relaxed) ? 0 : want;
    uint64_t before = atomic_fetch_add_explicit(&g_claimed, want, memory_order_relaxed);
    if (before >= g_total)
        return 0;
    return g_total - before < want ? (size_t)(g_total - before) : want;
}

static void *producer(void *arg)
{
    uint64_t rng = rng_seed(g_seed, (uint64_t)(uintptr_t)arg);
    for (;;) {
        size_t len = claim(rng_size(&rng, g_batch_min, g_batch_max));
        if (len == 0)
            break;
        struct batch *b = queue_pop(&g_empty);
        for (size_t i = 0; i < len; i++) {
            size_t n = rng_size(&rng, g_min, g_max);
            void *p = malloc(n);
            if (p == NULL)
                die_oom("malloc", n);
            touch_block(p, n, (unsigned char)i);
            b->blocks[i] = p;
        }
        b->len = len;
        queue_push(&g_full, b);
    }
    /* The last producer out tells the consumers that no batch will follow. */
    if (atomic_fetch_sub(&g_producers_left, 1) == 1)
        queue_close(&g_full);
    return NULL;
}

static void *consumer(void *arg)
{
    uint64_t *passed = arg;
    struct batch *b;
    while ((b = queue_pop(&g_full)) != NULL) {
        for (size_t i = 0; i < b->len; i++) {
            unsigned char *p = b->blocks[i];
            if (p[0] != (unsigned char)i) {
                fprintf(stderr, "prodcons: block %zu of a batch holds %u, not %u\n", i,
                        (unsigned)p[0], (unsigned)(unsigned char)i);
                exit(1);
            }
            free(p);
        }
        *passed += b->len;
        queue_push(&g_empty, b);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    bench_name = "prodcons";
    bench_usage = "[-t threads] [-m min] [-M max] [-b batch_min] [-B batch_max] [-q depth] "
                  "[-n blocks | -s seconds] [-S seed]";

    uint64_t threads = 2, min = 16, max = 1024, batch_min = 1000, batch_max = 4000, depth = 8;
    uint64_t total = 20000000, seed = 42;
    double seconds = 0;
    int have_total = 0;

    opterr = 0; /* our own one-line message instead of getopt's */
    int c;
    while ((c = getopt(argc, argv, ":t:m:M:b:B:q:n:s:S:")) != -1) {
        switch (c) {
        case 't': threads = parse_u64('t', optarg, 2, 1024); break;
        case 'm': min = parse_u64('m', optarg, 1, 1ULL << 30); break;
        case 'M': max = parse_u64('M', optarg, 1, 1ULL << 30); break;
        case 'b': batch_min = parse_u64('b', optarg, 1, 1ULL << 20); break;
        case 'B': batch_max = parse_u64('B', optarg, 1, 1ULL << 20); break;
        case 'q': depth = parse_u64('q', optarg, 1, 4096); break;
        case 'n': total = parse_u64('n', optarg, 1, 1ULL << 40); have_total = 1; break;
        case 's': seconds = parse_seconds('s', optarg, 3600.0); break;
        case 'S': seed = parse_u64('S', optarg, 0, UINT64_MAX); break;
        default: bad_option(c);
        }
    }
    check_operands(argc, argv, min, max);
    if (batch_min > batch_max)
        usage_error("batch_min %llu is larger than batch_max %llu",
                    (unsigned long long)batch_min, (unsigned long long)batch_max);
    if (have_total && seconds > 0)
        usage_error("-n and -s exclude each other");
    if (seconds > 0)
        total = 0;
    /* The blocks one batch descriptor can hold, times all descriptors. */
    if ((depth + threads) * batch_max * max > (1ULL << 36))
        usage_error("(depth + threads) * batch_max * max is more than 64 GiB in flight");

    uint64_t producers = threads / 2, consumers = threads - producers;
    g_min = (size_t)min;
    g_max = (size_t)max;
    g_batch_min = (size_t)batch_min;
    g_batch_max = (size_t)batch_max;
    g_total = total;
    g_seed = seed;
    atomic_store(&g_producers_left, (unsigned)producers);

    /* Every descriptor up front: q waiting in the queue, one per thread in hand. */
    size_t pool = (size_t)(depth + threads);
    queue_init(&g_empty, pool);
    queue_init(&g_full, pool);
    for (size_t i = 0; i < pool; i++) {
        size_t bytes = sizeof(struct batch) + g_batch_max * sizeof(void *);
        struct batch *b = calloc(1, bytes);
        if (b == NULL)
            die_oom("calloc", bytes);
        queue_push(&g_empty, b);
    }
    pthread_t *tids = calloc(threads, sizeof *tids);
    uint64_t *passed = calloc(consumers, sizeof *passed);
    if (tids == NULL || passed == NULL)
        die_oom("calloc", threads * sizeof *tids);

    double t0 = now_sec();
    for (uint64_t i = 0; i < consumers; i++)
        bench_thread(&tids[i], consumer, &passed[i]);
    for (uint64_t i = 0; i < producers; i++)
        bench_thread(&tids[consumers + i], producer, (void *)(uintptr_t)(i + 1));
    if (total == 0) {
        /* Timed run: sleep until the deadline, then raise the stop flag. */
        double deadline = t0 + seconds;
        for (double now = now_sec(); now < deadline; now = now_sec()) {
            double left = deadline - now;
            struct timespec ts = { (time_t)left, (long)((left - (double)(time_t)left) * 1e9) };
            nanosleep(&ts, NULL);
        }
        atomic_store(&g_stop, 1);
    }
    for (uint64_t i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    double elapsed = now_sec() - t0;
    long peak = proc_status_kib("VmHWM");

    uint64_t blocks = 0;
    for (uint64_t i = 0; i < consumers; i++)
        blocks += passed[i];
    if (total != 0 && blocks != total) {
        fprintf(stderr, "prodcons: %llu blocks passed, not %llu\n", (unsigned long long)blocks,
                (unsigned long long)total);
        return 1;
    }
    struct batch *b;
    queue_close(&g_empty);
    while ((b = queue_pop(&g_empty)) != NULL)
        free(b);
    free(g_empty.ring);
    free(g_full.ring);
    free(tids);
    free(passed);

    printf("prodcons threads=%llu producers=%llu consumers=%llu min=%llu max=%llu "
           "batch_min=%llu batch_max=%llu depth=%llu blocks=%llu ops_per_sec=%.1f "
           "seconds=%.2f peak_kib=%ld\n",
           (unsigned long long)threads, (unsigned long long)producers,
           (unsigned long long)consumers, (unsigned long long)min, (unsigned long long)max,
           (unsigned long long)batch_min, (unsigned long long)batch_max,
           (unsigned long long)depth, (unsigned long long)blocks, (double)blocks / elapsed,
           elapsed, peak);
    return 0;
}
