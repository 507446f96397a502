/*
 * Exercises the engine, project, key and event functions of include/tollgate.h from C: the
 * happy paths, every status a C caller can provoke (NULL and non-UTF-8 arguments included), the
 * Active -> Reserved switch with exact usage numbers, batch and partial grants, the JSON outputs
 * and the last-error text. Seats, pools, instances and groups are in pools_seats.c.
 *
 * Usage: test_api STATE_DIR   (a fresh, empty directory; the test makes subdirectories)
 * Exits 0 when every check holds; otherwise prints the failed check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tollgate.h"

static char base_dir[4096];

/* base_dir/name in a static buffer that the next call reuses. */
static const char *path_in_base(const char *name) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", base_dir, name);
    return path;
}

/* Key JSON for a data-volume key; `expires_at` may be NULL (never expires). */
static const char *key(const char *id, const char *delivery, const char *kind,
                       const char *edition, unsigned long long limit, const char *expires_at) {
    static char json[1024];
    char expiry[64] = "null";
    if (expires_at != NULL) {
        snprintf(expiry, sizeof expiry, "\"%s\"", expires_at);
    }
    snprintf(json, sizeof json,
             "{\"id\": \"%s\", \"delivery\": \"%s\", \"kind\": \"%s\", \"edition\": \"%s\", "
             "\"scheme\": {\"data_volume\": {\"limit_bytes\": %llu}}, \"expires_at\": %s}",
             id, delivery, kind, edition, limit, expiry);
    return json;
}

static const char *dv_key(const char *id, unsigned long long limit) {
    return key(id, "online", "commercial", "standard", limit, NULL);
}

/* `at` as RFC 3339 UTC in a static buffer. */
static const char *rfc3339(time_t at) {
    static char text[64];
    struct tm tm;
    gmtime_r(&at, &tm);
    strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

static void expect_usage(const tg_project *project, uint64_t active_used, uint64_t active_limit,
                         uint64_t reserved_used, uint64_t reserved_limit, bool has_reserved,
                         uint64_t switches) {
    tg_usage usage;
    memset(&usage, 0xAB, sizeof usage);
    EXPECT(TG_OK, tg_usage_get(project, &usage));
    if (usage.active_used != active_used || usage.active_limit != active_limit ||
        usage.reserved_used != reserved_used || usage.reserved_limit != reserved_limit ||
        usage.has_reserved != has_reserved || usage.switches != switches) {
        fprintf(stderr,
                "usage is {%llu, %llu, %llu, %llu, %d, %llu}, expected {%llu, %llu, %llu, "
                "%llu, %d, %llu}\n",
                (unsigned long long)usage.active_used, (unsigned long long)usage.active_limit,
                (unsigned long long)usage.reserved_used,
                (unsigned long long)usage.reserved_limit, (int)usage.has_reserved,
                (unsigned long long)usage.switches, (unsigned long long)active_used,
                (unsigned long long)active_limit, (unsigned long long)reserved_used,
                (unsigned long long)reserved_limit, (int)has_reserved,
                (unsigned long long)switches);
        exit(1);
    }
    checks++;
}

static void test_static_strings(void) {
    unsigned major, minor, patch;
    char rest;
    CHECK(sscanf(tg_version(), "%u.%u.%u%c", &major, &minor, &patch, &rest) == 3);
    /* The header's version macros are the loaded library's version. */
    CHECK(major == TOLLGATE_VERSION_MAJOR && minor == TOLLGATE_VERSION_MINOR &&
          patch == TOLLGATE_VERSION_PATCH);
    CHECK(tg_version_number() == TOLLGATE_VERSION_NUMBER);
    CHECK(TOLLGATE_VERSION_NUMBER ==
          TOLLGATE_VERSION_MAJOR * 1000000 + TOLLGATE_VERSION_MINOR * 1000 + TOLLGATE_VERSION_PATCH);
#if TOLLGATE_VERSION_NUMBER < 1000
#error "TOLLGATE_VERSION_NUMBER is usable in #if, and this header is 0.1.0 or later"
#endif

    /* A sentence per status, the same for every call. */
    CHECK(strcmp(tg_status_message(TG_OK), "success") == 0);
    CHECK(strcmp(tg_status_message(TG_NO_ACTIVE_KEY), "the slot pair has no active license key") ==
          0);
    CHECK(strcmp(tg_status_message(TG_EXHAUSTED),
                 "the request needs more than the license keys have left; nothing was charged") ==
          0);
    CHECK(strcmp(tg_status_message((tg_status)99), "unknown status") == 0);
    for (int s = TG_OK; s <= TG_INSTALLATION_MISMATCH; s++) {
        const char *message = tg_status_message((tg_status)s);
        CHECK(message[0] != '\0' && strcmp(message, "unknown status") != 0);
        for (int t = TG_OK; t < s; t++) {
            CHECK(strcmp(message, tg_status_message((tg_status)t)) != 0);
        }
    }

    CHECK(strcmp(tg_status_name(TG_OK), "TG_OK") == 0);
    CHECK(strcmp(tg_status_name(TG_EXHAUSTED), "TG_EXHAUSTED") == 0);
    CHECK(strcmp(tg_status_name(TG_UNSUPPORTED), "TG_UNSUPPORTED") == 0);
    CHECK(strcmp(tg_status_name((tg_status)99), "TG_UNKNOWN") == 0);
    for (int s = TG_OK; s <= TG_INSTALLATION_MISMATCH; s++) {
        CHECK(strncmp(tg_status_name((tg_status)s), "TG_", 3) == 0);
    }
    CHECK(TG_INVALID_ARGUMENT == 1 && TG_CORRUPT_STATE == 13 && TG_PANIC == 16);

    /* No call has failed on this thread yet. */
    CHECK(strcmp(tg_last_error_message(), "") == 0);

    /* NULL is a no-op for every release function. */
    tg_engine_close(NULL);
    tg_project_close(NULL);
    tg_string_free(NULL);
}

/* Every pointer argument of every function refuses NULL, naming the argument. */
static void test_null_arguments(tg_engine *engine, tg_project *project) {
    tg_engine *engine_out = NULL;
    tg_project *project_out = NULL;
    char *json = NULL;
    uint64_t granted = 0;
    size_t count = 0;
    uint64_t amounts[1] = {1};
    tg_usage usage;
    tg_open_options options = {0, 0};

    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open(NULL, &engine_out));
    EXPECT_MESSAGE("argument `state_dir` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open(base_dir, NULL));
    EXPECT_MESSAGE("argument `out` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open_with(NULL, &options, &engine_out));
    EXPECT_MESSAGE("argument `state_dir` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open_with(base_dir, NULL, &engine_out));
    EXPECT_MESSAGE("argument `options` is NULL");
    CHECK(engine_out == NULL);
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open_with(base_dir, &options, NULL));
    EXPECT_MESSAGE("argument `out` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_flush(NULL));
    EXPECT_MESSAGE("argument `engine` is NULL");

    EXPECT(TG_INVALID_ARGUMENT, tg_project_create(NULL, "p"));
    EXPECT_MESSAGE("argument `engine` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_project_create(engine, NULL));
    EXPECT_MESSAGE("argument `name` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_project_list_json(NULL, &json));
    EXPECT_MESSAGE("argument `engine` is NULL");
    CHECK(json == NULL);
    EXPECT(TG_INVALID_ARGUMENT, tg_project_list_json(engine, NULL));
    EXPECT_MESSAGE("argument `out_json` is NULL");

    EXPECT(TG_INVALID_ARGUMENT, tg_key_add(NULL, "p", dv_key("N-1", 1)));
    EXPECT_MESSAGE("argument `engine` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_add(engine, NULL, dv_key("N-1", 1)));
    EXPECT_MESSAGE("argument `project` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_add(engine, "p", NULL));
    EXPECT_MESSAGE("argument `key_json` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_add_reserve(NULL, "p", dv_key("N-1", 1)));
    EXPECT_MESSAGE("argument `engine` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_add_reserve(engine, NULL, dv_key("N-1", 1)));
    EXPECT_MESSAGE("argument `project` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_add_reserve(engine, "p", NULL));
    EXPECT_MESSAGE("argument `key_json` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_replace(NULL, "p", dv_key("N-1", 1)));
    EXPECT_MESSAGE("argument `engine` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_replace(engine, NULL, dv_key("N-1", 1)));
    EXPECT_MESSAGE("argument `project` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_replace(engine, "p", NULL));
    EXPECT_MESSAGE("argument `key_json` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_remove_reserve(NULL, "p", "K"));
    EXPECT_MESSAGE("argument `engine` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_remove_reserve(engine, NULL, "K"));
    EXPECT_MESSAGE("argument `project` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_remove_reserve(engine, "p", NULL));
    EXPECT_MESSAGE("argument `key_id` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_keys_json(NULL, "p", &json));
    EXPECT_MESSAGE("argument `engine` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_keys_json(engine, NULL, &json));
    EXPECT_MESSAGE("argument `project` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_keys_json(engine, "p", NULL));
    EXPECT_MESSAGE("argument `out_json` is NULL");

    EXPECT(TG_INVALID_ARGUMENT, tg_key_periods_json(NULL, "K", &json));
    EXPECT_MESSAGE("argument `engine` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_periods_json(engine, NULL, &json));
    EXPECT_MESSAGE("argument `key_id` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_periods_json(engine, "K", NULL));
    EXPECT_MESSAGE("argument `out_json` is NULL");

    EXPECT(TG_INVALID_ARGUMENT, tg_project_open(NULL, "p", &project_out));
    EXPECT_MESSAGE("argument `engine` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_project_open(engine, NULL, &project_out));
    EXPECT_MESSAGE("argument `name` is NULL");
    CHECK(project_out == NULL);
    EXPECT(TG_INVALID_ARGUMENT, tg_project_open(engine, "p", NULL));
    EXPECT_MESSAGE("argument `out` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_project_view_json(NULL, "p", &json));
    EXPECT_MESSAGE("argument `engine` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_project_view_json(engine, NULL, &json));
    EXPECT_MESSAGE("argument `project` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_project_view_json(engine, "p", NULL));
    EXPECT_MESSAGE("argument `out_json` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_events_json(NULL, 0, 10, &json));
    EXPECT_MESSAGE("argument `engine` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_events_json(engine, 0, 10, NULL));
    EXPECT_MESSAGE("argument `out_json` is NULL");

    EXPECT(TG_INVALID_ARGUMENT, tg_consume(NULL, 1));
    EXPECT_MESSAGE("argument `project` is NULL");
    granted = 77;
    EXPECT(TG_INVALID_ARGUMENT, tg_consume_partial(NULL, 1, &granted));
    EXPECT_MESSAGE("argument `project` is NULL");
    CHECK(granted == 0);
    EXPECT(TG_INVALID_ARGUMENT, tg_consume_partial(project, 1, NULL));
    EXPECT_MESSAGE("argument `granted` is NULL");
    count = 77;
    EXPECT(TG_INVALID_ARGUMENT, tg_consume_batch(NULL, amounts, 1, &count));
    EXPECT_MESSAGE("argument `project` is NULL");
    CHECK(count == 0);
    EXPECT(TG_INVALID_ARGUMENT, tg_consume_batch(project, NULL, 1, &count));
    EXPECT_MESSAGE("argument `amounts` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_consume_batch(project, amounts, 1, NULL));
    EXPECT_MESSAGE("argument `granted_count` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_usage_get(NULL, &usage));
    EXPECT_MESSAGE("argument `project` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_usage_get(project, NULL));
    EXPECT_MESSAGE("argument `out` is NULL");
}

/* Strings that are not UTF-8 are refused, naming the argument. */
static void test_invalid_utf8(tg_engine *engine) {
    const char *bad = "caf\xe9";
    tg_engine *engine_out = NULL;
    tg_project *project_out = NULL;
    tg_open_options options = {0, 0};
    char *json = NULL;

    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open(bad, &engine_out));
    EXPECT_MESSAGE("argument `state_dir` is not valid UTF-8");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open_with(bad, &options, &engine_out));
    EXPECT_MESSAGE("argument `state_dir` is not valid UTF-8");
    CHECK(engine_out == NULL);
    EXPECT(TG_INVALID_ARGUMENT, tg_project_create(engine, bad));
    EXPECT_MESSAGE("argument `name` is not valid UTF-8");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_add(engine, bad, dv_key("U-1", 1)));
    EXPECT_MESSAGE("argument `project` is not valid UTF-8");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_add(engine, "alpha", bad));
    EXPECT_MESSAGE("argument `key_json` is not valid UTF-8");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_add_reserve(engine, "alpha", bad));
    EXPECT_MESSAGE("argument `key_json` is not valid UTF-8");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_replace(engine, bad, dv_key("U-1", 1)));
    EXPECT_MESSAGE("argument `project` is not valid UTF-8");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_remove_reserve(engine, "alpha", bad));
    EXPECT_MESSAGE("argument `key_id` is not valid UTF-8");
    EXPECT(TG_INVALID_ARGUMENT, tg_keys_json(engine, bad, &json));
    EXPECT_MESSAGE("argument `project` is not valid UTF-8");
    EXPECT(TG_INVALID_ARGUMENT, tg_project_open(engine, bad, &project_out));
    EXPECT_MESSAGE("argument `name` is not valid UTF-8");
    EXPECT(TG_INVALID_ARGUMENT, tg_project_view_json(engine, bad, &json));
    EXPECT_MESSAGE("argument `project` is not valid UTF-8");
    CHECK(json == NULL && project_out == NULL);
}

/* Malformed values are refused by the core, whose message names the field at fault. */
/* A key with a reset term: kept with the key, no period closed yet; an unknown key refused.
 * (Crossing a boundary needs a manual clock: core/tests/periods.rs.) */
static void test_reset_periods(tg_engine *engine) {
    EXPECT(TG_OK, tg_project_create(engine, "periodic"));
    EXPECT(TG_OK, tg_key_add(engine, "periodic",
                             "{\"id\": \"MONTHLY\", \"delivery\": \"online\", \"kind\": "
                             "\"commercial\", \"edition\": \"standard\", \"scheme\": "
                             "{\"data_volume\": {\"limit_bytes\": 1000}}, \"reset\": \"monthly\"}"));
    EXPECT_JSON(tg_keys_json(engine, "periodic", &json), "\"reset\":\"monthly\"");
    EXPECT_JSON(tg_key_periods_json(engine, "MONTHLY", &json), "[]");
    char *json = NULL;
    EXPECT(TG_INVALID_ARGUMENT, tg_key_periods_json(engine, "NO-SUCH-KEY", &json));
    CHECK(json == NULL);
    EXPECT_MESSAGE("no key \"NO-SUCH-KEY\" in this state");
    EXPECT(TG_INVALID_ARGUMENT,
           tg_key_add(engine, "periodic",
                      "{\"id\": \"HOURLY\", \"delivery\": \"online\", \"kind\": "
                      "\"commercial\", \"edition\": \"standard\", \"scheme\": "
                      "{\"data_volume\": {\"limit_bytes\": 1000}}, \"reset\": \"hourly\"}"));
    EXPECT_MESSAGE("unknown variant `hourly`");
}

static void test_invalid_values(tg_engine *engine) {
    EXPECT(TG_INVALID_ARGUMENT, tg_project_create(engine, ""));
    EXPECT_MESSAGE("invalid project name: must not be empty");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_add(engine, "alpha", "{\"id\": \"K\"}"));
    EXPECT_MESSAGE("invalid key JSON");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_add(engine, "alpha", dv_key("ZERO", 0)));
    EXPECT_MESSAGE("limit_bytes");
}

/* A refusal on one thread is not the last error of another. */
static void *last_error_of_new_thread(void *arg) {
    (void)arg;
    return (void *)(strcmp(tg_last_error_message(), "") == 0 ? "empty" : NULL);
}

static void test_last_error_is_per_thread(tg_engine *engine) {
    pthread_t thread;
    void *result = NULL;
    EXPECT(TG_NOT_FOUND, tg_project_open(engine, "no-such-project", &(tg_project *){NULL}));
    CHECK(pthread_create(&thread, NULL, last_error_of_new_thread, NULL) == 0);
    CHECK(pthread_join(thread, &result) == 0);
    CHECK(result != NULL);
    /* A success leaves the message alone. */
    EXPECT(TG_OK, tg_engine_flush(engine));
    EXPECT_MESSAGE("project \"no-such-project\" does not exist");
}

/* Active -> Reserved through the hot path, with exact usage at every step. */
static void test_switch(tg_engine *engine) {
    tg_project *alpha = NULL;
    char *json = NULL;
    uint64_t granted = 0;
    size_t count = 0;

    EXPECT(TG_OK, tg_project_create(engine, "alpha"));
    EXPECT(TG_ALREADY_EXISTS, tg_project_create(engine, "alpha"));
    EXPECT_MESSAGE("project \"alpha\" already exists");
    EXPECT(TG_NOT_FOUND, tg_project_open(engine, "nope", &alpha));
    EXPECT_MESSAGE("project \"nope\" does not exist");
    CHECK(alpha == NULL);
    EXPECT(TG_OK, tg_project_open(engine, "alpha", &alpha));
    CHECK(alpha != NULL);

    /* No key yet: nothing can be metered, and no reserve can be added. */
    expect_usage(alpha, 0, 0, 0, 0, false, 0);
    EXPECT(TG_NO_ACTIVE_KEY, tg_consume(alpha, 1));
    EXPECT_MESSAGE("no active license key");
    EXPECT(TG_NO_ACTIVE_KEY, tg_key_add_reserve(engine, "alpha", dv_key("A-0", 10)));

    EXPECT(TG_OK, tg_key_add(engine, "alpha", dv_key("A-1", 1000)));
    expect_usage(alpha, 0, 1000, 0, 0, false, 0);
    EXPECT(TG_OK, tg_key_add(engine, "alpha", dv_key("A-2", 500)));
    expect_usage(alpha, 0, 1000, 0, 500, true, 0);

    EXPECT(TG_OK, tg_project_view_json(engine, "alpha", &json));
    EXPECT_JSON_CONTAINS(json, "\"status\":\"reserved\"");
    EXPECT_JSON_CONTAINS(json, "\"status\":\"active\"");
    EXPECT_JSON_CONTAINS(json, "\"add_license_available\":false");
    EXPECT_JSON_CONTAINS(json, "Migration data for project alpha is processed under this "
                               "license key.");
    tg_string_free(json);

    EXPECT(TG_OK, tg_consume(alpha, 600));
    EXPECT(TG_OK, tg_consume(alpha, 300));
    expect_usage(alpha, 900, 1000, 0, 500, true, 0);

    /* All or nothing: 1600 > 100 + 500 left; nothing is charged. */
    EXPECT(TG_EXHAUSTED, tg_consume(alpha, 1600));
    EXPECT_MESSAGE("1600 bytes requested but only 600 remain");
    CHECK(strcmp(tg_status_name(TG_EXHAUSTED), "TG_EXHAUSTED") == 0);
    expect_usage(alpha, 900, 1000, 0, 500, true, 0);

    /* 250 crosses the limit: 100 to A-1, 150 to A-2, which becomes Active. */
    EXPECT(TG_OK, tg_consume(alpha, 250));
    expect_usage(alpha, 150, 500, 0, 0, false, 1);

    EXPECT(TG_OK, tg_project_view_json(engine, "alpha", &json));
    EXPECT_JSON_CONTAINS(json, "\"id\":\"A-2\"");
    EXPECT_JSON_CONTAINS(json, "\"add_license_available\":true");
    tg_string_free(json);
    EXPECT(TG_OK, tg_keys_json(engine, "alpha", &json));
    EXPECT_JSON_CONTAINS(json, "\"status\":\"retired\",\"used\":1000");
    EXPECT_JSON_CONTAINS(json, "\"status\":\"active\",\"used\":150");
    tg_string_free(json);

    /* Batch: 350 remain, so three of four 100-byte amounts fit; the prefix is charged. */
    uint64_t amounts[4] = {100, 100, 100, 100};
    count = 99;
    EXPECT(TG_EXHAUSTED, tg_consume_batch(alpha, amounts, 4, &count));
    CHECK(count == 3);
    EXPECT_MESSAGE("100 bytes requested but only 50 remain");
    expect_usage(alpha, 450, 500, 0, 0, false, 1);
    count = 99;
    EXPECT(TG_OK, tg_consume_batch(alpha, amounts, 0, &count));
    CHECK(count == 0);
    EXPECT(TG_OK, tg_consume_batch(alpha, NULL, 0, &count));
    CHECK(count == 0);
    uint64_t small[2] = {10, 15};
    EXPECT(TG_OK, tg_consume_batch(alpha, small, 2, &count));
    CHECK(count == 2);
    expect_usage(alpha, 475, 500, 0, 0, false, 1);

    /* Partial: 25 remain of the 400 asked; then nothing remains. */
    EXPECT(TG_OK, tg_consume_partial(alpha, 400, &granted));
    CHECK(granted == 25);
    expect_usage(alpha, 500, 500, 0, 0, false, 1);
    granted = 99;
    EXPECT(TG_EXHAUSTED, tg_consume_partial(alpha, 400, &granted));
    CHECK(granted == 0);
    EXPECT(TG_EXHAUSTED, tg_consume(alpha, 1));
    EXPECT_MESSAGE("1 bytes requested but only 0 remain");

    /* A new key takes over a spent pair at once. */
    EXPECT(TG_OK, tg_key_add(engine, "alpha", dv_key("A-3", 100)));
    EXPECT(TG_OK, tg_consume(alpha, 100));
    expect_usage(alpha, 100, 100, 0, 0, false, 2);

    tg_project_close(alpha);
}

/* Every admission rule of R6 (docs/rules.md) that C can reach, with its own status. */
static void test_admission_rules(tg_engine *engine) {
    EXPECT(TG_OK, tg_project_create(engine, "rules"));
    EXPECT(TG_OK, tg_key_add(engine, "rules", dv_key("R-1", 1000)));

    EXPECT(TG_TYPE_MISMATCH, tg_key_add(engine, "rules",
                                        key("R-2", "offline", "commercial", "standard", 10, NULL)));
    EXPECT_MESSAGE("reserve key \"R-2\" is offline but the active key \"R-1\" is online");
    EXPECT(TG_EDITION_MISMATCH,
           tg_key_add(engine, "rules", key("R-2", "online", "commercial", "enterprise", 10, NULL)));
    EXPECT_MESSAGE("enterprise");
    EXPECT(TG_SCHEME_MISMATCH,
           tg_key_add_reserve(engine, "rules",
                              "{\"id\": \"R-2\", \"delivery\": \"online\", \"kind\": "
                              "\"commercial\", \"edition\": \"standard\", \"scheme\": "
                              "{\"per_core\": {\"max_cores\": 8}}}"));
    EXPECT_MESSAGE("per_core");
    EXPECT(TG_DUPLICATE_KEY, tg_key_add(engine, "rules", dv_key("R-1", 10)));
    EXPECT_MESSAGE("key id \"R-1\" is already used");
    EXPECT(TG_EXPIRED, tg_key_add(engine, "rules",
                                  key("R-OLD", "online", "commercial", "standard", 10,
                                      "2001-01-01T00:00:00Z")));
    EXPECT_MESSAGE("key \"R-OLD\" expired at 2001-01-01T00:00:00Z: request a new license key or "
                   "contact your vendor");

    EXPECT(TG_OK, tg_key_add_reserve(engine, "rules", dv_key("R-2", 10)));
    EXPECT(TG_RESERVE_OCCUPIED, tg_key_add(engine, "rules", dv_key("R-3", 10)));
    EXPECT_MESSAGE("already has reserve key \"R-2\"");

    /* Removing the reserve frees the slot; removing it again finds nothing. */
    EXPECT(TG_OK, tg_key_remove_reserve(engine, "rules", "R-2"));
    EXPECT(TG_NOT_FOUND, tg_key_remove_reserve(engine, "rules", "R-2"));
    EXPECT_MESSAGE("project \"rules\" has no reserve key \"R-2\"");
    EXPECT(TG_NOT_FOUND, tg_key_add(engine, "ghost", dv_key("G-1", 10)));

    EXPECT(TG_OK, tg_project_create(engine, "subscribed"));
    EXPECT(TG_OK, tg_key_add(engine, "subscribed",
                             key("S-1", "online", "subscription", "standard", 10, NULL)));
    EXPECT(TG_SUBSCRIPTION, tg_key_add(engine, "subscribed", dv_key("S-2", 10)));
    EXPECT_MESSAGE("key \"S-1\" is a subscription key");

    /* Renewal: the reserve expires before the new key's term ends, so it goes. */
    EXPECT(TG_OK, tg_key_add(engine, "rules",
                             key("R-4", "online", "commercial", "standard", 10,
                                 "2099-01-01T00:00:00Z")));
    EXPECT(TG_OK, tg_key_replace(engine, "rules", dv_key("R-5", 2000)));
    tg_project *rules = NULL;
    EXPECT(TG_OK, tg_project_open(engine, "rules", &rules));
    expect_usage(rules, 0, 2000, 0, 0, false, 0);
    tg_project_close(rules);
    EXPECT(TG_DUPLICATE_KEY, tg_key_replace(engine, "rules", dv_key("R-5", 2000)));
    EXPECT(TG_OK, tg_project_create(engine, "empty"));
    EXPECT(TG_NO_ACTIVE_KEY, tg_key_replace(engine, "empty", dv_key("E-1", 10)));

    /* Project list. */
    char *json = NULL;
    EXPECT(TG_OK, tg_project_list_json(engine, &json));
    EXPECT_JSON_CONTAINS(json, "[\"alpha\",\"empty\",\"rules\",\"subscribed\"]");
    tg_string_free(json);
}

/* An Active key whose expiry passes refuses with TG_EXPIRED when no reserve can take over. */
static void test_expiry(tg_engine *engine) {
    tg_project *soon = NULL;
    time_t expiry = time(NULL) + 2;
    EXPECT(TG_OK, tg_project_create(engine, "soon"));
    EXPECT(TG_OK, tg_key_add(engine, "soon", key("T-1", "online", "trial", "standard", 1000,
                                                 rfc3339(expiry))));
    EXPECT(TG_OK, tg_project_open(engine, "soon", &soon));
    EXPECT(TG_OK, tg_consume(soon, 10));
    while (time(NULL) <= expiry + 1) {
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    EXPECT(TG_EXPIRED, tg_consume(soon, 10));
    EXPECT_MESSAGE("license expired: the active key has expired and no unexpired reserve key can "
                   "take over; request a new license key or contact your vendor");
    expect_usage(soon, 10, 1000, 0, 0, false, 0);
    tg_project_close(soon);
}

/* Opening: options, capacity, a damaged state, a path that is a file. */
static void test_open_errors(void) {
    tg_engine *engine = NULL;
    tg_open_options options = {1, 50};
    EXPECT(TG_OK, tg_engine_open_with(path_in_base("tiny"), &options, &engine));
    EXPECT(TG_OK, tg_project_create(engine, "one"));
    EXPECT(TG_CAPACITY, tg_project_create(engine, "two"));
    EXPECT_MESSAGE("maximum of 1 ");
    EXPECT(TG_OK, tg_engine_flush(engine));
    tg_engine_close(engine);

    /* A hot-state file without its catalog is refused and left alone. */
    CHECK(mkdir(path_in_base("damaged"), 0700) == 0);
    FILE *junk = fopen(path_in_base("damaged/hot.tgs"), "w");
    CHECK(junk != NULL);
    CHECK(fputs("not a tollgate state file", junk) >= 0);
    CHECK(fclose(junk) == 0);
    engine = (tg_engine *)&options; /* any non-NULL value: a failed open must reset it */
    EXPECT(TG_CORRUPT_STATE, tg_engine_open(path_in_base("damaged"), &engine));
    CHECK(engine == NULL);
    EXPECT_MESSAGE("corrupt state");

    /* A state directory path that is a regular file: a bad argument, and nothing created. */
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open(path_in_base("damaged/hot.tgs"), &engine));
    CHECK(engine == NULL);
    EXPECT_MESSAGE("is a regular file, not a directory");

    /* An empty path: nothing is created in the working directory. */
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open("", &engine));
    CHECK(engine == NULL);
    EXPECT_MESSAGE("invalid state directory: the path is empty: name a directory");
    CHECK(access("admin.lock", F_OK) != 0 && access("hot.tgs", F_OK) != 0);
}

/* Hot-path events reach the audit log; all of them are there once the engine has closed. */
static void test_events(void) {
    tg_engine *engine = NULL;
    char *json = NULL;
    EXPECT(TG_OK, tg_engine_open(path_in_base("main"), &engine));
    EXPECT(TG_OK, tg_events_json(engine, 0, 1000, &json));
    EXPECT_JSON_CONTAINS(json, "\"kind\":\"project_created\"");
    EXPECT_JSON_CONTAINS(json, "\"kind\":\"key_added\"");
    EXPECT_JSON_CONTAINS(json, "\"kind\":\"switched\",\"from\":\"A-1\",\"to\":\"A-2\"");
    EXPECT_JSON_CONTAINS(json, "\"kind\":\"threshold\"");
    EXPECT_JSON_CONTAINS(json, "\"kind\":\"refused\"");
    tg_string_free(json);
    /* Audit position 1 is the ratchet written when the state was created: not an event. */
    EXPECT(TG_OK, tg_events_json(engine, 0, 1, &json));
    EXPECT_JSON_CONTAINS(json, "\"seq\":2,");
    CHECK(strstr(json, "\"seq\":3,") == NULL);
    tg_string_free(json);
    EXPECT(TG_OK, tg_events_json(engine, UINT64_MAX / 2, 10, &json));
    CHECK(strcmp(json, "[]") == 0);
    tg_string_free(json);

    /* The usage survived the reopen exactly. */
    tg_project *alpha = NULL;
    EXPECT(TG_OK, tg_project_open(engine, "alpha", &alpha));
    expect_usage(alpha, 100, 100, 0, 0, false, 2);

    /* A project handle outlives its engine. */
    tg_engine_close(engine);
    expect_usage(alpha, 100, 100, 0, 0, false, 2);
    EXPECT(TG_EXHAUSTED, tg_consume(alpha, 1));
    tg_project_close(alpha);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s STATE_DIR\n", argv[0]);
        return 2;
    }
    snprintf(base_dir, sizeof base_dir, "%s", argv[1]);

    test_static_strings();

    tg_engine *engine = NULL;
    EXPECT(TG_OK, tg_engine_open(path_in_base("main"), &engine));
    CHECK(engine != NULL);
    test_switch(engine);

    tg_project *alpha = NULL;
    EXPECT(TG_OK, tg_project_open(engine, "alpha", &alpha));
    test_null_arguments(engine, alpha);
    tg_project_close(alpha);
    test_invalid_utf8(engine);
    test_invalid_values(engine);
    test_last_error_is_per_thread(engine);
    test_admission_rules(engine);
    test_expiry(engine);
    test_reset_periods(engine);
    EXPECT(TG_OK, tg_engine_flush(engine));
    tg_engine_close(engine);

    test_open_errors();
    test_events();

    printf("test_api: %d checks passed\n", checks);
    return 0;
}
