/*
 * A toy migration engine metered by Tollgate: worker threads copy a source buffer to a
 * destination in chunks, and ask Tollgate for every chunk before copying it. The project's
 * Active key covers part of the data; the Reserved key takes over mid-copy without any worker
 * stopping or waiting.
 *
 * Usage: migrator STATE_DIR [THREADS] [MIB]
 *   STATE_DIR  a Tollgate state directory (created if needed)
 *   THREADS    worker threads (default 4)
 *   MIB        size of the data to copy in MiB (default 48)
 *
 * The Active key is sized at 2/3 of the data and the reserve at 2/3 as well, so the copy
 * crosses the switch and completes. Prints a summary; exits 0 when the copy is complete, the
 * destination equals the source and the license accounting matches the bytes copied exactly.
 *
 * Build: cc -std=c11 migrator.c $(pkg-config --cflags --libs tollgate) -lpthread
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tollgate.h"

#define CHUNK (64u * 1024u)

struct job {
    tg_project *project;     /* shared by every worker: the hot path is lock-free */
    const unsigned char *src;
    unsigned char *dst;
    uint64_t size;
    uint64_t next;           /* next offset to hand out, taken with an atomic add */
    uint64_t copied;         /* bytes copied, summed atomically */
    uint64_t refusals;
};

struct worker_result {
    uint64_t copied;
    tg_status refused;       /* TG_OK, or the status that stopped the worker */
};

static void *worker(void *arg) {
    struct job *job = arg;
    struct worker_result *result = calloc(1, sizeof *result);
    if (result == NULL) {
        return NULL;
    }
    for (;;) {
        uint64_t offset = __atomic_fetch_add(&job->next, CHUNK, __ATOMIC_RELAXED);
        if (offset >= job->size) {
            break;
        }
        uint64_t length = job->size - offset < CHUNK ? job->size - offset : CHUNK;
        /* Ask before moving the bytes: only granted work may proceed. */
        tg_status status = tg_consume(job->project, length);
        if (status != TG_OK) {
            fprintf(stderr, "worker refused at offset %llu: %s: %s\n",
                    (unsigned long long)offset, tg_status_name(status),
                    tg_last_error_message());
            __atomic_fetch_add(&job->refusals, 1, __ATOMIC_RELAXED);
            result->refused = status;
            break;
        }
        memcpy(job->dst + offset, job->src + offset, (size_t)length);
        result->copied += length;
    }
    __atomic_fetch_add(&job->copied, result->copied, __ATOMIC_RELAXED);
    return result;
}

static int fail(const char *what, tg_status status) {
    fprintf(stderr, "%s: %s: %s\n", what, tg_status_name(status), tg_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s STATE_DIR [THREADS] [MIB]\n", argv[0]);
        return 2;
    }
    const char *state_dir = argv[1];
    int threads = argc > 2 ? atoi(argv[2]) : 4;
    long mib = argc > 3 ? atol(argv[3]) : 48;
    if (threads < 1 || threads > 256 || mib < 1 || mib > 4096) {
        fprintf(stderr, "THREADS must be 1..=256 and MIB 1..=4096\n");
        return 2;
    }
    const uint64_t size = (uint64_t)mib << 20;
    const uint64_t active_limit = size / 3 * 2;
    const uint64_t reserve_limit = size / 3 * 2;

    /* One project per run, so that the example can be run again on the same state. */
    char project_name[64], active_key[96], reserve_key[96], key_json[512];
    snprintf(project_name, sizeof project_name, "migration-%ld-%ld", (long)getpid(),
             (long)time(NULL));
    snprintf(active_key, sizeof active_key, "%s-A", project_name);
    snprintf(reserve_key, sizeof reserve_key, "%s-R", project_name);

    tg_engine *engine = NULL;
    tg_status status = tg_engine_open(state_dir, &engine);
    if (status != TG_OK) {
        return fail("open the state directory", status);
    }
    int exit_code = 1;
    tg_project *project = NULL;
    unsigned char *src = NULL, *dst = NULL;
    const char *key_format =
        "{\"id\": \"%s\", \"delivery\": \"online\", \"kind\": \"commercial\", "
        "\"edition\": \"standard\", \"scheme\": {\"data_volume\": {\"limit_bytes\": %llu}}}";

    if ((status = tg_project_create(engine, project_name)) != TG_OK) {
        fail("create the project", status);
        goto out;
    }
    snprintf(key_json, sizeof key_json, key_format, active_key,
             (unsigned long long)active_limit);
    if ((status = tg_key_add(engine, project_name, key_json)) != TG_OK) {
        fail("add the active key", status);
        goto out;
    }
    snprintf(key_json, sizeof key_json, key_format, reserve_key,
             (unsigned long long)reserve_limit);
    if ((status = tg_key_add(engine, project_name, key_json)) != TG_OK) {
        fail("add the reserve key", status);
        goto out;
    }
    if ((status = tg_project_open(engine, project_name, &project)) != TG_OK) {
        fail("open the project", status);
        goto out;
    }

    src = malloc((size_t)size);
    dst = calloc(1, (size_t)size);
    if (src == NULL || dst == NULL) {
        fprintf(stderr, "out of memory for %ld MiB\n", mib);
        goto out;
    }
    for (uint64_t i = 0; i < size; i++) {
        src[i] = (unsigned char)(i * 2654435761u >> 24);
    }

    struct job job = {project, src, dst, size, 0, 0, 0};
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    if (ids == NULL) {
        goto out;
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int started = 0;
    for (; started < threads; started++) {
        if (pthread_create(&ids[started], NULL, worker, &job) != 0) {
            fprintf(stderr, "could not start worker %d\n", started);
            break;
        }
    }
    int workers_ok = started == threads;
    for (int t = 0; t < started; t++) {
        void *result = NULL;
        pthread_join(ids[t], &result);
        if (result == NULL) {
            workers_ok = 0;
        } else {
            struct worker_result *r = result;
            printf("  worker %2d copied %10llu bytes%s%s\n", t, (unsigned long long)r->copied,
                   r->refused == TG_OK ? "" : ", stopped by ",
                   r->refused == TG_OK ? "" : tg_status_name(r->refused));
            free(r);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    free(ids);

    /* The usage over the pair's life: the total includes the first key, retired by the switch. */
    tg_usage_v2 usage;
    if ((status = tg_usage_v2_get(project, &usage)) != TG_OK) {
        fail("read the usage", status);
        goto out;
    }
    double seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
    uint64_t charged = usage.total_used;
    int identical = memcmp(src, dst, (size_t)size) == 0;

    printf("migration of %ld MiB with %d threads in %.3f s\n", mib, threads, seconds);
    printf("  copied          %llu of %llu bytes\n", (unsigned long long)job.copied,
           (unsigned long long)size);
    printf("  first key       %s, %llu bytes, used up: %s\n", active_key,
           (unsigned long long)active_limit, usage.current.switches == 1 ? "yes" : "no");
    printf("  now active      %s, %llu of %llu bytes used\n", usage.active_key,
           (unsigned long long)usage.current.active_used,
           (unsigned long long)usage.current.active_limit);
    printf("  switches        %llu\n", (unsigned long long)usage.current.switches);
    printf("  charged         %llu bytes\n", (unsigned long long)charged);
    printf("  refusals        %llu\n", (unsigned long long)job.refusals);
    printf("  destination     %s\n", identical ? "identical to the source" : "DIFFERS");

    if (workers_ok && job.copied == size && charged == size && usage.current.switches == 1 &&
        !usage.current.has_reserved && strcmp(usage.active_key, reserve_key) == 0 &&
        job.refusals == 0 && identical) {
        printf("OK: every byte copied was granted and charged exactly once\n");
        exit_code = 0;
    } else {
        printf("FAILED: the totals do not match\n");
    }

out:
    free(src);
    free(dst);
    tg_project_close(project);
    tg_engine_close(engine);
    return exit_code;
}
