/*
 * tg_usage_v2_get: the usage of a data-volume pair over its whole life. After a switch,
 * tg_usage_get shows the new Active key only; tg_usage_v2 adds the total charged across the
 * switch and a renewal, and the ids of the Active and Reserved keys. The old call keeps
 * working beside it.
 *
 * Usage: usage_v2 STATE_DIR   (a fresh, empty directory; the test makes a subdirectory)
 * Exits 0 when every check holds; otherwise prints the failed check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "tollgate.h"

/* Checks both calls: tg_usage_get for the fields it has, tg_usage_v2_get for all of them. */
static void expect(const tg_project *project, uint64_t active_used, uint64_t active_limit,
                   uint64_t reserved_used, uint64_t reserved_limit, bool has_reserved,
                   uint64_t switches, uint64_t total_used, const char *active_key,
                   const char *reserved_key) {
    tg_usage_v2 v2;
    memset(&v2, 0xAB, sizeof v2);
    EXPECT(TG_OK, tg_usage_v2_get(project, &v2));
    tg_usage v1;
    memset(&v1, 0xAB, sizeof v1);
    EXPECT(TG_OK, tg_usage_get(project, &v1));
    if (v2.current.active_used != active_used || v2.current.active_limit != active_limit ||
        v2.current.reserved_used != reserved_used || v2.current.reserved_limit != reserved_limit ||
        v2.current.has_reserved != has_reserved || v2.current.switches != switches ||
        v2.total_used != total_used || memchr(v2.active_key, 0, TG_KEY_ID_SIZE) == NULL ||
        memchr(v2.reserved_key, 0, TG_KEY_ID_SIZE) == NULL ||
        strcmp(v2.active_key, active_key) != 0 || strcmp(v2.reserved_key, reserved_key) != 0) {
        fprintf(stderr,
                "usage v2 is {%llu, %llu, %llu, %llu, %d, %llu, total %llu, \"%.64s\", "
                "\"%.64s\"}, expected {%llu, %llu, %llu, %llu, %d, %llu, total %llu, \"%s\", "
                "\"%s\"}\n",
                (unsigned long long)v2.current.active_used, (unsigned long long)v2.current.active_limit,
                (unsigned long long)v2.current.reserved_used, (unsigned long long)v2.current.reserved_limit,
                (int)v2.current.has_reserved, (unsigned long long)v2.current.switches,
                (unsigned long long)v2.total_used, v2.active_key, v2.reserved_key,
                (unsigned long long)active_used, (unsigned long long)active_limit,
                (unsigned long long)reserved_used, (unsigned long long)reserved_limit,
                (int)has_reserved, (unsigned long long)switches, (unsigned long long)total_used,
                active_key, reserved_key);
        exit(1);
    }
    CHECK(v1.active_used == active_used && v1.active_limit == active_limit);
    CHECK(v1.reserved_used == reserved_used && v1.reserved_limit == reserved_limit);
    CHECK(v1.has_reserved == has_reserved && v1.switches == switches);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s STATE_DIR\n", argv[0]);
        return 2;
    }
    char state_dir[4200];
    snprintf(state_dir, sizeof state_dir, "%s/usage", argv[1]);
    CHECK(TG_KEY_ID_SIZE == 65);

    tg_engine *engine = NULL;
    EXPECT(TG_OK, tg_engine_open(state_dir, &engine));
    EXPECT(TG_OK, tg_project_create(engine, "copy"));
    tg_project *project = NULL;
    EXPECT(TG_OK, tg_project_open(engine, "copy", &project));
    expect(project, 0, 0, 0, 0, false, 0, 0, "", "");

    /* The longest id a key may have fills the buffer but its NUL. */
    const char *longest = "K-abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0123456789";
    CHECK(strlen(longest) == TG_KEY_ID_SIZE - 1);
    EXPECT(TG_OK, tg_key_add(engine, "copy", data_volume_key(longest, 80)));
    EXPECT(TG_OK, tg_key_add_reserve(engine, "copy", data_volume_key("A-2", 100)));
    expect(project, 0, 80, 0, 100, true, 0, 0, longest, "A-2");
    EXPECT(TG_OK, tg_consume(project, 50));
    expect(project, 50, 80, 0, 100, true, 0, 50, longest, "A-2");

    /* 70 crosses the limit: 30 to the first key, 40 to A-2, which becomes Active. */
    EXPECT(TG_OK, tg_consume(project, 70));
    expect(project, 40, 100, 0, 0, false, 1, 120, "A-2", "");

    /* A renewal retires A-2 with its 40 bytes; the total keeps them. */
    EXPECT(TG_OK, tg_key_replace(engine, "copy", data_volume_key("A-3", 1000)));
    EXPECT(TG_OK, tg_consume(project, 5));
    expect(project, 5, 1000, 0, 0, false, 1, 125, "A-3", "");

    tg_usage_v2 v2;
    EXPECT(TG_INVALID_ARGUMENT, tg_usage_v2_get(NULL, &v2));
    EXPECT_MESSAGE("argument `project` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_usage_v2_get(project, NULL));
    EXPECT_MESSAGE("argument `out` is NULL");

    tg_project_close(project);
    tg_engine_close(engine);
    printf("usage_v2: total 125 bytes over 3 keys, 1 switch\n");
    printf("usage_v2: %d checks passed\n", checks);
    return 0;
}
