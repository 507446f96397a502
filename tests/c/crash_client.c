/*
 * The C consumer of the kill -9 test (ffi/tests/crash_mixed.rs): meters one project through
 * libtollgate with tg_consume, tg_consume_partial and tg_consume_batch from several threads,
 * forever, and records every grant it saw succeed in a file shared with the test, until the
 * test SIGKILLs it. The Rust consumers of the same test record theirs in the same file.
 *
 * Usage: crash_client STATE_DIR PROJECT ACKS_FILE PROCESS FIRST_SLOT THREADS SEED
 *   PROCESS     this process's index: it sets the ready word of that index
 *   FIRST_SLOT  the slot of its first thread; thread t uses slot FIRST_SLOT + t
 *
 * The acknowledgement file is an array of uint64_t, laid out as in crash_mixed.rs:
 *   word 0                       "go": the test sets it once every consumer is ready
 *   word 1 + PROCESS             "ready": set by the consumer when its threads are running
 *   word HEADER_WORDS + 2*s      slot s: bytes acknowledged (granted, seen by the caller)
 *   word HEADER_WORDS + 2*s + 1  slot s: bytes of the call in flight (0 between calls)
 * Each slot is written by one thread only. After the kill the test asserts, per trial,
 * acknowledged <= charged <= acknowledged + in flight.
 *
 * Exits only on an error (status 2 for usage, 3 for a Tollgate or system failure), so the test
 * can tell a consumer that died on its own from one it killed.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tollgate.h"

#define HEADER_WORDS 8
#define MAX_THREADS 16
#define MAX_SLOTS 64
#define BATCH 4

/*
 * Memory ordering of the acknowledgement file.
 *
 * The file has two observers. While the consumers run, the test polls the acknowledged sums
 * only to decide when to kill: a progress estimate, for which relaxed atomic loads and stores
 * suffice (they are atomic so that no value is ever torn; nothing else is published by them).
 *
 * The observer that matters reads the file after this process was SIGKILLed and reaped. A
 * SIGKILL stops each thread at an instruction boundary; every store the thread executed before
 * that point is in the shared page by the time the test's waitpid() returns (stores are never
 * discarded, and the kernel's exit and wait paths are full barriers). So the hardware keeps
 * program order for this observer, and the only reordering left to prevent is the compiler's:
 * exactly the situation of a signal handler running on this thread. Hence relaxed stores
 * separated by __atomic_signal_fence(__ATOMIC_SEQ_CST), a compiler-only barrier, which keeps
 * "in flight, then the charge inside libtollgate, then acknowledged, then cleared" as written.
 */
#define PROGRAM_ORDER() __atomic_signal_fence(__ATOMIC_SEQ_CST)

struct consumer {
    tg_project *project;
    uint64_t *words;
    unsigned slot;
    uint64_t seed;
};

static void die(const char *what, tg_status status) {
    fprintf(stderr, "crash_client: %s: %s: %s\n", what, tg_status_name(status),
            tg_last_error_message());
    exit(3);
}

static void die_errno(const char *what) {
    fprintf(stderr, "crash_client: %s: %s\n", what, strerror(errno));
    exit(3);
}

static uint64_t xorshift(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static void nap(void) {
    struct timespec pause = {0, 50 * 1000};
    nanosleep(&pause, NULL);
}

/* One metering call: its kind and amounts, drawn before the call is made. */
struct request {
    enum { CONSUME, PARTIAL, BATCHED } kind;
    uint64_t amounts[BATCH]; /* amounts[0] alone unless BATCHED */
    uint64_t total;          /* bytes asked for: what is in flight during the call */
};

static struct request draw(uint64_t *rng) {
    struct request r = {CONSUME, {0}, 0};
    uint64_t kind = xorshift(rng) % 8;
    if (kind == 0) {
        r.kind = BATCHED;
        for (int i = 0; i < BATCH; i++) {
            r.amounts[i] = 1 + xorshift(rng) % 128;
            r.total += r.amounts[i];
        }
    } else {
        r.kind = kind == 1 ? PARTIAL : CONSUME;
        r.amounts[0] = 1 + xorshift(rng) % 512;
        r.total = r.amounts[0];
    }
    return r;
}

/* Makes the call and returns the bytes granted; a refusal other than exhaustion is fatal. */
static uint64_t meter(tg_project *project, const struct request *r) {
    tg_status status;
    uint64_t granted = 0;
    switch (r->kind) {
    case BATCHED: {
        size_t count = 0;
        status = tg_consume_batch(project, r->amounts, BATCH, &count);
        for (size_t i = 0; i < count; i++) {
            granted += r->amounts[i];
        }
        break;
    }
    case PARTIAL:
        status = tg_consume_partial(project, r->amounts[0], &granted);
        break;
    default:
        status = tg_consume(project, r->amounts[0]);
        granted = status == TG_OK ? r->amounts[0] : 0;
        break;
    }
    if (status != TG_OK && status != TG_EXHAUSTED) {
        die("metering call", status);
    }
    return granted;
}

static void *consume_forever(void *arg) {
    const struct consumer *c = arg;
    uint64_t *acked = &c->words[HEADER_WORDS + 2 * c->slot];
    uint64_t *in_flight = acked + 1;
    uint64_t rng = c->seed;
    uint64_t total = __atomic_load_n(acked, __ATOMIC_RELAXED);

    /* Relaxed: "go" is a bare flag; it publishes no other data. */
    while (__atomic_load_n(&c->words[0], __ATOMIC_RELAXED) == 0) {
        nap();
    }
    for (;;) {
        struct request r = draw(&rng);
        __atomic_store_n(in_flight, r.total, __ATOMIC_RELAXED);
        PROGRAM_ORDER();
        uint64_t granted = meter(c->project, &r);
        PROGRAM_ORDER();
        if (granted > 0) {
            total += granted;
            __atomic_store_n(acked, total, __ATOMIC_RELAXED);
        }
        PROGRAM_ORDER();
        __atomic_store_n(in_flight, 0, __ATOMIC_RELAXED);
    }
    return NULL;
}

static uint64_t parse(const char *text, const char *what, uint64_t max) {
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value > max) {
        fprintf(stderr, "crash_client: %s must be a number up to %llu, not \"%s\"\n", what,
                (unsigned long long)max, text);
        exit(2);
    }
    return (uint64_t)value;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr,
                "usage: %s STATE_DIR PROJECT ACKS_FILE PROCESS FIRST_SLOT THREADS SEED\n",
                argv[0]);
        return 2;
    }
    const char *state_dir = argv[1], *project_name = argv[2], *acks_path = argv[3];
    unsigned process = (unsigned)parse(argv[4], "PROCESS", HEADER_WORDS - 2);
    unsigned first_slot = (unsigned)parse(argv[5], "FIRST_SLOT", MAX_SLOTS - 1);
    unsigned threads = (unsigned)parse(argv[6], "THREADS", MAX_THREADS);
    uint64_t seed = parse(argv[7], "SEED", UINT64_MAX);
    if (threads == 0 || first_slot + threads > MAX_SLOTS) {
        fprintf(stderr, "crash_client: slots %u..%u are out of range\n", first_slot,
                first_slot + threads);
        return 2;
    }

    int fd = open(acks_path, O_RDWR);
    if (fd < 0) {
        die_errno("open the acknowledgement file");
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        die_errno("stat the acknowledgement file");
    }
    if ((uint64_t)st.st_size < (HEADER_WORDS + 2 * (uint64_t)(first_slot + threads)) * 8) {
        fprintf(stderr, "crash_client: the acknowledgement file is too short\n");
        return 3;
    }
    uint64_t *words = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (words == MAP_FAILED) {
        die_errno("map the acknowledgement file");
    }
    close(fd);

    tg_engine *engine = NULL;
    tg_status status = tg_engine_open(state_dir, &engine);
    if (status != TG_OK) {
        die("tg_engine_open", status);
    }
    tg_project *project = NULL;
    if ((status = tg_project_open(engine, project_name, &project)) != TG_OK) {
        die("tg_project_open", status);
    }

    struct consumer consumers[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    for (unsigned t = 0; t < threads; t++) {
        consumers[t] = (struct consumer){project, words, first_slot + t,
                                         (seed + t + 1) * 0x9E3779B97F4A7C15ull | 1};
        int error = pthread_create(&ids[t], NULL, consume_forever, &consumers[t]);
        if (error != 0) {
            errno = error;
            die_errno("start a consumer thread");
        }
    }
    /* Relaxed: the flag only tells the test that this process is up; it publishes nothing. */
    __atomic_store_n(&words[1 + process], 1, __ATOMIC_RELAXED);
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
    }
    return 0;
}
