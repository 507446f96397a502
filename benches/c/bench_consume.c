/*
 * bench_consume: tg_consume and tg_thread_consume (a thread handle's lease slot) through the C
 * ABI, beside a bare __atomic_fetch_add measured the same way in the same process. Built and run by `compare` (benches/src/external/c_abi.rs);
 * prints one JSON line per contestant in the format external/mod.rs parses.
 *
 *   bench_consume --dir STATE_DIR --threads T --sharing shared|per-thread
 *                 --batch B --warmup-ms W --measure-ms M
 *
 * Method, as in benches/src/harness.rs: each thread warms up, meets the others at a barrier,
 * then times batches of B calls with CLOCK_MONOTONIC until the main thread raises a stop flag
 * after M ms. One sample is the mean ns per call of one batch; median and p99 are nearest-rank
 * over all samples of all threads; Mops/s is the sum over threads of calls / own elapsed time;
 * on_cpu is the fraction of its window each thread spent on a CPU (/proc/thread-self/schedstat),
 * averaged over threads: below 1 means the thread was descheduled by other work.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollgate.h"
#include "tollgate_inline.h"

#define MAX_THREADS 256
/* 64 TiB less one byte: the largest key limit (MAX_LIMIT_BYTES); 1-byte consumes never exhaust it. */
#define KEY_LIMIT ((UINT64_C(1) << 46) - 1)

typedef enum { SHARED, PER_THREAD } sharing_t;

typedef struct {
    const char *dir;
    int threads;
    sharing_t sharing;
    uint64_t batch;
    long warmup_ms;
    long measure_ms;
} options_t;

/* A counter alone in its 128-byte block, as the Rust baseline's. */
typedef struct {
    _Alignas(128) _Atomic uint64_t value;
} padded_t;

typedef struct contestant contestant_t;

typedef struct {
    const contestant_t *contestant;
    const options_t *options;
    int index;
    pthread_barrier_t *start;
    atomic_int *stop;
    double *samples;
    size_t count;
    size_t capacity;
    uint64_t calls;
    double elapsed_s;
    double on_cpu_s; /* negative when unknown */
} worker_t;

struct contestant {
    const char *name;
    const char *op;
    /* Performs `calls` operations as thread `index`. */
    void (*run)(const contestant_t *self, int index, uint64_t calls);
    padded_t *counters;
    tg_project **projects;
    tg_thread_project **thread_projects;
    tg_thread_fast *fast;
    sharing_t sharing;
};

static void die(const char *what, tg_status status) {
    fprintf(stderr, "bench_consume: %s failed (%d): %s\n", what, (int)status,
            tg_last_error_message() ? tg_last_error_message() : "");
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds the calling thread has spent on a CPU, or a negative number when unknown. */
static double thread_cpu_s(void) {
    FILE *f = fopen("/proc/thread-self/schedstat", "r");
    unsigned long long ns = 0;
    int ok = f && fscanf(f, "%llu", &ns) == 1;
    if (f) fclose(f);
    return ok ? (double)ns * 1e-9 : -1.0;
}

static int slot(sharing_t sharing, int index) { return sharing == SHARED ? 0 : index; }

static void run_atomic(const contestant_t *self, int index, uint64_t calls) {
    _Atomic uint64_t *counter = &self->counters[slot(self->sharing, index)].value;
    for (uint64_t i = 0; i < calls; i++) {
        /* Relaxed: the counter is the only datum, as in the Rust baseline. */
        uint64_t seen = atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
        __asm__ volatile("" : : "r"(seen) : "memory");
    }
}

static void run_consume(const contestant_t *self, int index, uint64_t calls) {
    tg_project *project = self->projects[index];
    for (uint64_t i = 0; i < calls; i++) {
        if (tg_consume(project, 1) != TG_OK) {
            die("tg_consume", tg_consume(project, 1));
        }
    }
}

static void run_thread_consume(const contestant_t *self, int index, uint64_t calls) {
    tg_thread_project *thread = self->thread_projects[index];
    for (uint64_t i = 0; i < calls; i++) {
        if (tg_thread_consume(thread, 1) != TG_OK) {
            die("tg_thread_consume", tg_thread_consume(thread, 1));
        }
    }
}

static void run_thread_consume_inline(const contestant_t *self, int index, uint64_t calls) {
    tg_thread_project *thread = self->thread_projects[index];
    /* A local copy, as a caller keeps it: the compiler may then keep the three words'
     * addresses in registers across the loop's atomic stores. */
    const tg_thread_fast fast = self->fast[index];
    for (uint64_t i = 0; i < calls; i++) {
        if (tg_thread_consume_inline(thread, &fast, 1) != TG_OK) {
            die("tg_thread_consume_inline", tg_thread_consume(thread, 1));
        }
    }
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    const contestant_t *c = w->contestant;
    uint64_t batch = w->options->batch;
    double warm_until = now_s() + (double)w->options->warmup_ms / 1000.0;
    while (now_s() < warm_until) {
        c->run(c, w->index, batch);
    }
    pthread_barrier_wait(w->start);
    double cpu_before = thread_cpu_s();
    double began = now_s();
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        c->run(c, w->index, batch);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
        if (w->count == w->capacity) {
            w->capacity *= 2;
            w->samples = realloc(w->samples, w->capacity * sizeof(double));
            if (!w->samples) {
                perror("realloc");
                exit(1);
            }
        }
        w->samples[w->count++] = ns / (double)batch;
        w->calls += batch;
    }
    w->elapsed_s = now_s() - began;
    double cpu_after = thread_cpu_s();
    w->on_cpu_s = cpu_before < 0 || cpu_after < 0 ? -1.0 : cpu_after - cpu_before;
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double *sorted, size_t n, double p) {
    size_t rank = (size_t)(p * (double)n + 0.999999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static void measure(const contestant_t *c, const options_t *o) {
    pthread_barrier_t start;
    atomic_int stop = 0;
    pthread_t tids[MAX_THREADS];
    worker_t workers[MAX_THREADS];
    pthread_barrier_init(&start, NULL, (unsigned)o->threads + 1);
    for (int t = 0; t < o->threads; t++) {
        size_t capacity = 1 << 16;
        workers[t] = (worker_t){.contestant = c, .options = o, .index = t, .start = &start,
                                .stop = &stop, .samples = malloc(capacity * sizeof(double)),
                                .capacity = capacity};
        if (!workers[t].samples) {
            perror("malloc");
            exit(1);
        }
        pthread_create(&tids[t], NULL, worker_main, &workers[t]);
    }
    pthread_barrier_wait(&start);
    struct timespec pause = {.tv_sec = o->measure_ms / 1000, .tv_nsec = (o->measure_ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
    atomic_store_explicit(&stop, 1, memory_order_relaxed);
    size_t total = 0;
    double mops = 0, on_cpu = 0;
    for (int t = 0; t < o->threads; t++) {
        pthread_join(tids[t], NULL);
        total += workers[t].count;
        mops += (double)workers[t].calls / workers[t].elapsed_s / 1e6;
        on_cpu = on_cpu < 0 || workers[t].on_cpu_s < 0
                     ? -1.0
                     : on_cpu + workers[t].on_cpu_s / workers[t].elapsed_s / o->threads;
    }
    double *all = malloc((total ? total : 1) * sizeof(double));
    size_t at = 0;
    for (int t = 0; t < o->threads; t++) {
        memcpy(all + at, workers[t].samples, workers[t].count * sizeof(double));
        at += workers[t].count;
        free(workers[t].samples);
    }
    qsort(all, total, sizeof(double), cmp_double);
    printf("{\"contestant\":\"%s\",\"op\":\"%s\",\"threads\":%d,\"sharing\":\"%s\",\"batch\":%llu,"
           "\"samples\":%zu,\"median_ns\":%.3f,\"p99_ns\":%.3f,\"mops\":%.3f,\"on_cpu\":%.3f}\n",
           c->name, c->op, o->threads, o->sharing == SHARED ? "shared" : "per-thread",
           (unsigned long long)o->batch, total, total ? percentile(all, total, 0.5) : 0.0,
           total ? percentile(all, total, 0.99) : 0.0, mops, on_cpu < 0 ? 0.0 : (on_cpu > 1 ? 1 : on_cpu));
    fflush(stdout);
    free(all);
    pthread_barrier_destroy(&start);
}

static void usage_exit(void) {
    fprintf(stderr, "usage: bench_consume --dir DIR --threads T --sharing shared|per-thread "
                    "--batch B --warmup-ms W --measure-ms M\n");
    exit(2);
}

static options_t parse(int argc, char **argv) {
    options_t o = {.dir = NULL, .threads = 1, .sharing = SHARED, .batch = 1000,
                   .warmup_ms = 100, .measure_ms = 500};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--dir")) o.dir = v;
        else if (!strcmp(k, "--threads")) o.threads = atoi(v);
        else if (!strcmp(k, "--sharing")) o.sharing = strcmp(v, "shared") ? PER_THREAD : SHARED;
        else if (!strcmp(k, "--batch")) o.batch = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--warmup-ms")) o.warmup_ms = atol(v);
        else if (!strcmp(k, "--measure-ms")) o.measure_ms = atol(v);
        else usage_exit();
    }
    if (argc % 2 == 0 || !o.dir || o.threads < 1 || o.threads > MAX_THREADS || o.batch == 0) {
        usage_exit();
    }
    return o;
}

int main(int argc, char **argv) {
    options_t o = parse(argc, argv);
    tg_engine *engine = NULL;
    tg_open_options open_options = {.capacity = (uint32_t)(o.threads < 16 ? 16 : o.threads),
                                    .flush_interval_ms = 0};
    tg_status s = tg_engine_open_with(o.dir, &open_options, &engine);
    if (s != TG_OK) die("tg_engine_open_with", s);

    tg_project *projects[MAX_THREADS];
    int project_count = o.sharing == SHARED ? 1 : o.threads;
    for (int p = 0; p < project_count; p++) {
        char name[32], key[256];
        snprintf(name, sizeof name, "p%d", p);
        if ((s = tg_project_create(engine, name)) != TG_OK) die("tg_project_create", s);
        for (int k = 0; k < 2; k++) {
            snprintf(key, sizeof key,
                     "{\"id\": \"%s-%c\", \"delivery\": \"online\", \"kind\": \"commercial\", "
                     "\"edition\": \"standard\", \"scheme\": {\"data_volume\": "
                     "{\"limit_bytes\": %llu}}}",
                     name, k ? 'R' : 'A', (unsigned long long)KEY_LIMIT);
            if ((s = tg_key_add(engine, name, key)) != TG_OK) die("tg_key_add", s);
        }
    }
    /* One handle per thread, on the thread's project. */
    for (int t = 0; t < o.threads; t++) {
        char name[32];
        snprintf(name, sizeof name, "p%d", slot(o.sharing, t));
        if ((s = tg_project_open(engine, name, &projects[t])) != TG_OK) die("tg_project_open", s);
    }

    /* One thread handle (lease slot) per thread, on the same project handles. */
    tg_thread_project *thread_projects[MAX_THREADS];
    tg_thread_fast fast[MAX_THREADS];
    for (int t = 0; t < o.threads; t++) {
        if ((s = tg_thread_project_open(projects[t], &thread_projects[t])) != TG_OK) {
            die("tg_thread_project_open", s);
        }
        if ((s = tg_thread_project_fast(thread_projects[t], &fast[t])) != TG_OK) {
            die("tg_thread_project_fast", s);
        }
    }

    padded_t *counters = aligned_alloc(128, sizeof(padded_t) * (size_t)o.threads);
    if (!counters) {
        perror("aligned_alloc");
        return 1;
    }
    for (int t = 0; t < o.threads; t++) atomic_init(&counters[t].value, 0);

    contestant_t atomic = {.name = "c_atomic", .op = "C __atomic fetch_add(1)", .run = run_atomic,
                           .counters = counters, .sharing = o.sharing};
    contestant_t consume = {.name = "c_tg_consume", .op = "C tg_consume(project, 1)",
                            .run = run_consume, .projects = projects, .sharing = o.sharing};
    contestant_t thread_consume = {.name = "c_tg_thread_consume",
                                   .op = "C tg_thread_consume(thread, 1)",
                                   .run = run_thread_consume,
                                   .thread_projects = thread_projects,
                                   .sharing = o.sharing};
    measure(&atomic, &o);
    measure(&consume, &o);
    contestant_t thread_inline = {.name = "c_tg_thread_consume_inline",
                                  .op = "C tg_thread_consume_inline (tollgate_inline.h)",
                                  .run = run_thread_consume_inline,
                                  .thread_projects = thread_projects,
                                  .fast = fast,
                                  .sharing = o.sharing};
    measure(&thread_consume, &o);
    measure(&thread_inline, &o);

    for (int t = 0; t < o.threads; t++) tg_thread_project_close(thread_projects[t]);
    for (int t = 0; t < o.threads; t++) tg_project_close(projects[t]);
    tg_engine_close(engine);
    free(counters);
    return 0;
}
