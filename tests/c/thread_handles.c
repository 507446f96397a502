/*
 * Thread handles (tg_thread_project): each thread meters the project through its own lease
 * slot. Four threads drain an Active and a Reserved key through their thread handles (two of
 * them through tg_thread_consume_inline of tollgate_inline.h): what
 * they were granted is exactly what the keys were charged, the pair switched once, and a
 * closed handle's unused block is the pair's again. Also the NULL arguments.
 *
 * Usage: thread_handles STATE_DIR   (a fresh, empty directory; the test makes a subdirectory)
 * Exits 0 when every check holds; otherwise prints the failed check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "tollgate.h"
#include "tollgate_inline.h"

#define THREADS 4
#define ACTIVE 10000019ull
#define RESERVE 5000011ull

typedef struct {
    tg_project *project;
    uint64_t amount;
    int inline_path; /* through tg_thread_consume_inline (tollgate_inline.h) */
    uint64_t granted;
    int failed;
} drain_t;

/* Drains through a thread handle of its own: whole amounts, then what is left in part. */
static void *drain(void *arg) {
    drain_t *d = arg;
    tg_thread_project *thread = NULL;
    if (tg_thread_project_open(d->project, &thread) != TG_OK) {
        d->failed = 1;
        return NULL;
    }
    tg_thread_fast fast;
    if (tg_thread_project_fast(thread, &fast) != TG_OK) {
        d->failed = 1;
        return NULL;
    }
    tg_status status;
    while ((status = d->inline_path ? tg_thread_consume_inline(thread, &fast, d->amount)
                                    : tg_thread_consume(thread, d->amount)) == TG_OK) {
        d->granted += d->amount;
    }
    if (status != TG_EXHAUSTED) d->failed = 1;
    uint64_t rest = 0;
    while (tg_thread_consume_partial(thread, d->amount, &rest) == TG_OK && rest > 0) {
        d->granted += rest;
    }
    tg_thread_project_close(thread);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s STATE_DIR\n", argv[0]);
        return 2;
    }
    char state_dir[4200];
    snprintf(state_dir, sizeof state_dir, "%s/threads", argv[1]);
    tg_engine *engine = NULL;
    EXPECT(TG_OK, tg_engine_open(state_dir, &engine));
    EXPECT(TG_OK, tg_project_create(engine, "copy"));
    EXPECT(TG_OK, tg_key_add(engine, "copy", data_volume_key("A", ACTIVE)));
    EXPECT(TG_OK, tg_key_add_reserve(engine, "copy", data_volume_key("R", RESERVE)));
    tg_project *project = NULL;
    EXPECT(TG_OK, tg_project_open(engine, "copy", &project));

    /* A closed handle gives its block back: the pair counts only what it granted. */
    tg_thread_project *one = NULL;
    EXPECT(TG_OK, tg_thread_project_open(project, &one));
    EXPECT(TG_OK, tg_thread_consume(one, 10));
    uint64_t room = 0;
    EXPECT(TG_OK, tg_thread_project_room(one, &room));
    CHECK(room > 0);
    tg_usage usage;
    EXPECT(TG_OK, tg_usage_get(project, &usage));
    CHECK(usage.active_used == 10 + room);
    tg_thread_project_close(one);
    EXPECT(TG_OK, tg_usage_get(project, &usage));
    CHECK(usage.active_used == 10);

    pthread_t tids[THREADS];
    drain_t drains[THREADS];
    for (int t = 0; t < THREADS; t++) {
        drains[t] = (drain_t){.project = project, .amount = 1000 + 977 * (uint64_t)t,
                              .inline_path = t % 2};
        CHECK(pthread_create(&tids[t], NULL, drain, &drains[t]) == 0);
    }
    uint64_t granted = 10;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(tids[t], NULL);
        CHECK(!drains[t].failed);
        granted += drains[t].granted;
    }
    tg_usage_v2 v2;
    EXPECT(TG_OK, tg_usage_v2_get(project, &v2));
    CHECK(v2.total_used == granted);
    CHECK(v2.current.switches == 1);
    CHECK(strcmp(v2.active_key, "R") == 0);
    CHECK(granted <= ACTIVE + RESERVE);

    EXPECT(TG_INVALID_ARGUMENT, tg_thread_project_open(NULL, &one));
    EXPECT_MESSAGE("argument `project` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_thread_project_open(project, NULL));
    EXPECT_MESSAGE("argument `out` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_thread_consume(NULL, 1));
    EXPECT_MESSAGE("argument `thread` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_thread_consume_partial(NULL, 1, &room));
    EXPECT(TG_INVALID_ARGUMENT, tg_thread_project_room(NULL, &room));
    tg_thread_fast fast;
    EXPECT(TG_INVALID_ARGUMENT, tg_thread_project_fast(NULL, &fast));
    tg_thread_project_close(NULL);

    tg_project_close(project);
    tg_engine_close(engine);
    printf("thread_handles: %d threads granted %llu bytes exactly as charged, 1 switch\n",
           THREADS, (unsigned long long)granted);
    printf("thread_handles: %d checks passed\n", checks);
    return 0;
}
