/*
 * Fleet mode through the C ABI, against the PostgreSQL server ffi/tests/c_clients.rs starts:
 * tg_engine_options_set_fleet opens a fleet host, whose data-volume key drains exactly its
 * limit through the store (TG_UNAVAILABLE, a stock spent before the background thread drew
 * more, is retried after 1 ms); then TG_EXHAUSTED, again after a reopen. A state directory is
 * one kind for its whole life: the fleet state opened without the fleet options, or with
 * another host's name, and an embedded state opened with them are TG_INVALID_ARGUMENT. And the
 * setters refuse NULL, non-UTF-8 and a TTL of 0 with TG_INVALID_ARGUMENT naming the argument.
 *
 * Usage: fleet STATE_DIR STORE HOST KEY LIMIT
 *   (a fresh, empty directory; the store's connection parameters; this host's name; a key id
 *   no other host of the store uses; its limit in bytes)
 * Exits 0 when every check holds; otherwise prints the failed check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "tollgate.h"

static char base_dir[4096];

static const char *path_in_base(const char *name) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", base_dir, name);
    return path;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_arguments(const char *store) {
    tg_engine_options *options = NULL;
    EXPECT(TG_OK, tg_engine_options_new(&options));
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_set_fleet(NULL, store, "h"));
    EXPECT_MESSAGE("argument `options` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_set_fleet(options, NULL, "h"));
    EXPECT_MESSAGE("argument `store` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_set_fleet(options, store, NULL));
    EXPECT_MESSAGE("argument `host` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_set_fleet(options, "\xff", "h"));
    EXPECT_MESSAGE("argument `store` is not valid UTF-8");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_set_fleet(options, store, "\xfe"));
    EXPECT_MESSAGE("argument `host` is not valid UTF-8");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_set_fleet_lease_ttl_ms(NULL, 1000));
    EXPECT_MESSAGE("argument `options` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_set_fleet_lease_ttl_ms(options, 0));
    EXPECT_MESSAGE("ttl_ms");
    /* The refused calls set nothing: these options still open an embedded state. */
    tg_engine *engine = NULL;
    EXPECT(TG_OK, tg_engine_open_with_options(path_in_base("embedded"), options, &engine));
    EXPECT(TG_OK, tg_project_create(engine, "local"));
    tg_engine_close(engine);
    tg_engine_options_free(options);
}

/* Consumes in 64 KiB requests until TG_EXHAUSTED, retrying TG_UNAVAILABLE after 1 ms; returns
 * what was granted. */
static uint64_t drain(tg_project *project, unsigned long long *unavailable) {
    uint64_t total = 0;
    double started = now_s();
    for (;;) {
        CHECK(now_s() - started < 300.0); /* generous: valgrind runs it too */
        uint64_t granted = 0;
        tg_status status = tg_consume_partial(project, 64 << 10, &granted);
        if (status == TG_OK) {
            total += granted;
        } else if (status == TG_UNAVAILABLE) {
            ++*unavailable;
            sleep_ms(1);
        } else {
            EXPECT(TG_EXHAUSTED, status);
            return total;
        }
    }
}

static tg_engine_options *fleet_options(const char *store, const char *host) {
    tg_engine_options *options = NULL;
    EXPECT(TG_OK, tg_engine_options_new(&options));
    /* Before tg_engine_options_set_fleet: the TTL holds whichever is called first. */
    EXPECT(TG_OK, tg_engine_options_set_fleet_lease_ttl_ms(options, 5000));
    EXPECT(TG_OK, tg_engine_options_set_fleet(options, store, host));
    return options;
}

static void test_drain(const char *store, const char *host, const char *key,
                       unsigned long long limit) {
    tg_engine_options *options = fleet_options(store, host);
    tg_engine *engine = NULL;
    EXPECT(TG_OK, tg_engine_open_with_options(path_in_base("fleet"), options, &engine));
    EXPECT(TG_OK, tg_project_create(engine, key));
    EXPECT(TG_OK, tg_key_add(engine, key, data_volume_key(key, limit)));
    tg_project *project = NULL;
    EXPECT(TG_OK, tg_project_open(engine, key, &project));
    unsigned long long unavailable = 0;
    uint64_t total = drain(project, &unavailable);
    CHECK(total == limit);
    /* Nothing more, however often asked. */
    uint64_t granted = 1;
    EXPECT(TG_EXHAUSTED, tg_consume_partial(project, 1, &granted));
    CHECK(granted == 0);
    tg_project_close(project);
    tg_engine_close(engine); /* settles this host's leases */
    printf("fleet: host %s drained key %s: %llu of %llu bytes, %llu unavailable retries\n", host,
           key, (unsigned long long)total, limit, unavailable);

    /* Reopened with the same options: the fleet has nothing left. */
    EXPECT(TG_OK, tg_engine_open_with_options(path_in_base("fleet"), options, &engine));
    EXPECT(TG_OK, tg_project_open(engine, key, &project));
    unavailable = 0;
    CHECK(drain(project, &unavailable) == 0);
    tg_project_close(project);
    tg_engine_close(engine);
    tg_engine_options_free(options);
}

static void test_a_state_is_one_kind_for_life(const char *store, const char *host) {
    tg_engine *engine = (tg_engine *)1;
    /* The fleet state without the fleet options. */
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open_with_options(path_in_base("fleet"), NULL, &engine));
    EXPECT_MESSAGE(host);
    CHECK(engine == NULL);
    /* The fleet state as another host. */
    tg_engine_options *options = fleet_options(store, "another-host");
    EXPECT(TG_INVALID_ARGUMENT,
           tg_engine_open_with_options(path_in_base("fleet"), options, &engine));
    EXPECT_MESSAGE("another-host");
    /* The embedded state of test_arguments as a fleet host. */
    EXPECT(TG_INVALID_ARGUMENT,
           tg_engine_open_with_options(path_in_base("embedded"), options, &engine));
    EXPECT_MESSAGE("embedded");
    CHECK(engine == NULL);
    tg_engine_options_free(options);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: fleet STATE_DIR STORE HOST KEY LIMIT\n");
        return 2;
    }
    snprintf(base_dir, sizeof base_dir, "%s", argv[1]);
    const char *store = argv[2], *host = argv[3], *key = argv[4];
    unsigned long long limit = strtoull(argv[5], NULL, 10);
    test_arguments(store);
    test_drain(store, host, key, limit);
    test_a_state_is_one_kind_for_life(store, host);
    printf("%d checks passed\n", checks);
    return 0;
}
