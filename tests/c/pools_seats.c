/*
 * Exercises the seat, instance, pool and group functions of include/tollgate.h from C (rules
 * R8, R16, R17 and R22–R26 in docs/rules.md): seats up to the Active key's bound and the switch on
 * expiry, per-instance licensing from pools, the payment-mode and OS-fit rules, the pool
 * listing, and bulk reserve activation over a group. Every returned string is freed, so that
 * valgrind reports no leak.
 *
 * Usage: pools_seats STATE_DIR   (a fresh, empty directory; the test makes subdirectories)
 * Exits 0 when every check holds; otherwise prints the failed check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "tollgate.h"

static char base_dir[4096];

/* Key JSON for a seat key in a static buffer; `scheme` is its scheme object, `expires_at` may be
 * NULL (never expires). */
static const char *seat_key(const char *id, const char *scheme, const char *expires_at) {
    static char json[1024];
    char expiry[64] = "null";
    if (expires_at != NULL) {
        snprintf(expiry, sizeof expiry, "\"%s\"", expires_at);
    }
    snprintf(json, sizeof json,
             "{\"id\": \"%s\", \"delivery\": \"online\", \"kind\": \"commercial\", "
             "\"edition\": \"standard\", \"scheme\": %s, \"expires_at\": %s}",
             id, scheme, expiry);
    return json;
}

static const char *servers(unsigned n) {
    static char scheme[128];
    snprintf(scheme, sizeof scheme, "{\"per_machine\": {\"os\": \"server\", \"max_machines\": %u}}",
             n);
    return scheme;
}

/* `at` as RFC 3339 UTC in a static buffer. */
static const char *rfc3339(time_t at) {
    static char text[64];
    struct tm tm;
    gmtime_r(&at, &tm);
    strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

static void expect_seats(const tg_seats *seats, uint64_t held, uint64_t limit,
                         uint64_t reserved_limit, bool has_reserved, uint64_t switches) {
    tg_seat_usage usage;
    memset(&usage, 0xAB, sizeof usage);
    EXPECT(TG_OK, tg_seat_usage_get(seats, &usage));
    if (usage.held != held || usage.limit != limit || usage.reserved_limit != reserved_limit ||
        usage.has_reserved != has_reserved || usage.switches != switches) {
        fprintf(stderr,
                "seat usage is {%llu, %llu, %llu, %d, %llu}, expected {%llu, %llu, %llu, %d, "
                "%llu}\n",
                (unsigned long long)usage.held, (unsigned long long)usage.limit,
                (unsigned long long)usage.reserved_limit, (int)usage.has_reserved,
                (unsigned long long)usage.switches, (unsigned long long)held,
                (unsigned long long)limit, (unsigned long long)reserved_limit, (int)has_reserved,
                (unsigned long long)switches);
        exit(1);
    }
    checks++;
}

static void expect_held(const tg_seats *seats, uint64_t want) {
    uint64_t held = 0xABABABAB;
    EXPECT(TG_OK, tg_seat_held(seats, &held));
    CHECK(held == want);
}

static void test_statuses(void) {
    CHECK(TG_NOT_HELD == 18 && TG_PAYMENT_MODE_MISMATCH == 19 && TG_NO_LICENSE_AVAILABLE == 20 &&
          TG_LICENSE_TYPE_UNFIT == 21 && TG_ALREADY_ASSIGNED == 22);
    CHECK(strcmp(tg_status_name(TG_NOT_HELD), "TG_NOT_HELD") == 0);
    CHECK(strcmp(tg_status_name(TG_PAYMENT_MODE_MISMATCH), "TG_PAYMENT_MODE_MISMATCH") == 0);
    CHECK(strcmp(tg_status_name(TG_NO_LICENSE_AVAILABLE), "TG_NO_LICENSE_AVAILABLE") == 0);
    CHECK(strcmp(tg_status_name(TG_LICENSE_TYPE_UNFIT), "TG_LICENSE_TYPE_UNFIT") == 0);
    CHECK(strcmp(tg_status_name(TG_ALREADY_ASSIGNED), "TG_ALREADY_ASSIGNED") == 0);
    CHECK(TG_ACTIVATION_FAILED == 26);
    CHECK(strcmp(tg_status_name(TG_ACTIVATION_FAILED), "TG_ACTIVATION_FAILED") == 0);
    CHECK(TG_BUSY == 27);
    CHECK(strcmp(tg_status_name(TG_BUSY), "TG_BUSY") == 0);
    CHECK(TG_INSTALLATION_MISMATCH == 28);
    CHECK(strcmp(tg_status_name(TG_INSTALLATION_MISMATCH), "TG_INSTALLATION_MISMATCH") == 0);
    CHECK(strcmp(tg_status_name((tg_status)30), "TG_UNKNOWN") == 0);

    /* NULL is a no-op for the new release functions. */
    tg_seats_close(NULL);
    tg_instance_close(NULL);
}

/* Seats on per-machine and per-core pairs: the bound, the refusals, the pairs kept apart. */
static void test_seats(tg_engine *engine) {
    tg_seats *server = NULL, *desktop = NULL, *cores = NULL, *other = NULL;

    EXPECT(TG_OK, tg_project_create(engine, "svm"));
    EXPECT(TG_OK, tg_key_add(engine, "svm", seat_key("S-1", servers(3), NULL)));
    EXPECT(TG_OK, tg_key_add(engine, "svm",
                             seat_key("D-1",
                                      "{\"per_machine\": {\"os\": \"desktop\", "
                                      "\"max_machines\": 2}}",
                                      NULL)));
    EXPECT(TG_OK, tg_seats_open(engine, "svm", "server", &server));
    EXPECT(TG_OK, tg_seats_open(engine, "svm", "desktop", &desktop));
    CHECK(server != NULL && desktop != NULL);
    expect_seats(server, 0, 3, 0, false, 0);

    /* Up to the bound, all or nothing. */
    EXPECT(TG_OK, tg_seat_acquire(server, 2));
    EXPECT(TG_EXHAUSTED, tg_seat_acquire(server, 2));
    EXPECT_MESSAGE("no free seats: 2 requested but only 1 of the active key's seats are free in all the projects that hold it");
    EXPECT(TG_OK, tg_seat_acquire(server, 1));
    EXPECT(TG_EXHAUSTED, tg_seat_acquire(server, 1));
    expect_seats(server, 3, 3, 0, false, 0);
    expect_held(server, 3);

    /* The desktop pair is counted on its own. */
    EXPECT(TG_OK, tg_seat_acquire(desktop, 2));
    EXPECT(TG_EXHAUSTED, tg_seat_acquire(desktop, 1));
    expect_seats(desktop, 2, 2, 0, false, 0);

    /* Releasing more than held changes nothing. */
    EXPECT(TG_NOT_HELD, tg_seat_release(server, 4));
    EXPECT_MESSAGE("cannot release 4 seats: only 3 are held");
    expect_held(server, 3);
    EXPECT(TG_OK, tg_seat_release(server, 3));
    EXPECT(TG_NOT_HELD, tg_seat_release(server, 1));
    expect_seats(server, 0, 3, 0, false, 0);
    EXPECT(TG_OK, tg_seat_release(desktop, 2));

    /* Two handles of one process share its holding. */
    EXPECT(TG_OK, tg_seats_open(engine, "svm", "server", &other));
    EXPECT(TG_OK, tg_seat_acquire(other, 2));
    expect_held(server, 2);
    EXPECT(TG_OK, tg_seat_release(server, 2));
    tg_seats_close(other);

    /* A pair without a key refuses until a key of its class arrives. */
    EXPECT(TG_OK, tg_seats_open(engine, "svm", "cores", &cores));
    EXPECT(TG_NO_ACTIVE_KEY, tg_seat_acquire(cores, 1));
    EXPECT_MESSAGE("no active license key");
    EXPECT(TG_OK, tg_key_add(engine, "svm",
                             seat_key("C-1", "{\"per_core\": {\"max_cores\": 16}}", NULL)));
    EXPECT(TG_OK, tg_seat_acquire(cores, 16));
    EXPECT(TG_OK, tg_seat_release(cores, 16));
    tg_seats_close(cores);

    /* Seat classes by name; data volume is not one. */
    other = (tg_seats *)engine; /* any non-NULL value: a failed open must reset it */
    EXPECT(TG_INVALID_ARGUMENT, tg_seats_open(engine, "svm", "data_volume", &other));
    EXPECT_MESSAGE("invalid seat_class: \"data_volume\" is not a seat class");
    CHECK(other == NULL);
    EXPECT(TG_NOT_FOUND, tg_seats_open(engine, "ghost", "server", &other));
    EXPECT_MESSAGE("project \"ghost\" does not exist");
    EXPECT(TG_INVALID_ARGUMENT, tg_seat_acquire(NULL, 1));
    EXPECT_MESSAGE("argument `seats` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_seat_held(server, NULL));
    EXPECT_MESSAGE("argument `out` is NULL");

    /* No process holding seats has died. */
    EXPECT_JSON(tg_seats_reclaim_json(engine, &json), "[]");

    tg_seats_close(server);
    tg_seats_close(desktop);
}

/* An expired Active seat key switches to the reserve at the next acquire; the seats held carry
 * over to the reserve's bound. */
static void test_seat_expiry(tg_engine *engine) {
    tg_seats *seats = NULL;
    time_t expiry = time(NULL) + 2;
    EXPECT(TG_OK, tg_project_create(engine, "expiring"));
    EXPECT(TG_OK, tg_key_add(engine, "expiring", seat_key("X-1", servers(2), rfc3339(expiry))));
    EXPECT(TG_OK, tg_key_add(engine, "expiring", seat_key("X-2", servers(5), NULL)));
    EXPECT(TG_OK, tg_seats_open(engine, "expiring", "server", &seats));
    EXPECT(TG_OK, tg_seat_acquire(seats, 2));
    expect_seats(seats, 2, 2, 5, true, 0);
    while (time(NULL) <= expiry + 1) {
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    EXPECT(TG_OK, tg_seat_acquire(seats, 3));
    expect_seats(seats, 5, 5, 0, false, 1);
    EXPECT(TG_EXHAUSTED, tg_seat_acquire(seats, 1));
    EXPECT(TG_OK, tg_seat_release(seats, 5));
    tg_seats_close(seats);
}

/* Instances licensed from pools: the check before and after assignment, rules R23–R25 of
 * docs/rules.md, the listing and the shortfall. */
static void test_instances(tg_engine *engine) {
    tg_instance *web = NULL, *tux = NULL;
    char *json = NULL, *license = NULL;

    EXPECT(TG_OK, tg_instance_add(engine, "web", "windows", NULL));
    EXPECT(TG_OK, tg_instance_add(engine, "tux", "linux", "Acme"));
    EXPECT(TG_ALREADY_EXISTS, tg_instance_add(engine, "web", "windows", NULL));
    EXPECT(TG_INVALID_ARGUMENT, tg_instance_add(engine, "beos-box", "beos", NULL));
    EXPECT_MESSAGE("invalid os: \"beos\" is not an instance OS");
    EXPECT(TG_OK, tg_instance_open(engine, "web", &web));
    EXPECT(TG_OK, tg_instance_open(engine, "tux", &tux));
    EXPECT(TG_NOT_FOUND, tg_instance_open(engine, "svm", &(tg_instance *){NULL}));
    EXPECT_MESSAGE("instance \"svm\" does not exist");

    /* Unlicensed: refused. */
    EXPECT(TG_NO_ACTIVE_KEY, tg_instance_check(web));
    EXPECT(TG_NO_LICENSE_AVAILABLE, tg_instance_assign(engine, "web", NULL, &json));
    CHECK(json == NULL);

    /* The first purchase fixes the payment mode. */
    EXPECT_JSON(tg_pool_buy(engine,
                            "{\"license_type\": \"workstation\", \"quantity\": 2, "
                            "\"payment_mode\": \"annual\", \"onboarding\": true}",
                            &json),
                "[\"");
    EXPECT(TG_PAYMENT_MODE_MISMATCH,
           tg_pool_buy(engine,
                       "{\"license_type\": \"desktop\", \"quantity\": 1, \"payment_mode\": "
                       "\"monthly\"}",
                       &json));
    EXPECT_MESSAGE("payment mode monthly refused: the payment mode was fixed to annual at the "
                   "first purchase");
    CHECK(json == NULL);
    EXPECT(TG_INVALID_ARGUMENT, tg_pool_buy(engine, "{\"quantity\": 1}", &json));
    EXPECT_MESSAGE("invalid purchase");

    /* Assigned: allowed. */
    EXPECT_JSON(tg_instance_assign(engine, "web", NULL, &json),
                "\"instance\":\"web\",\"license\":\"");
    EXPECT(TG_OK, tg_instance_check(web));
    EXPECT(TG_ALREADY_ASSIGNED, tg_instance_assign(engine, "web", NULL, &json));
    EXPECT_MESSAGE("instance \"web\" already holds license");

    /* Linux needs a desktop or server license. */
    EXPECT(TG_NO_LICENSE_AVAILABLE, tg_instance_assign(engine, "tux", NULL, &json));
    EXPECT_MESSAGE("no license available for instance \"tux\": no valid, unassigned desktop or "
                   "server license in company \"Acme\"'s pool or the global pool");
    EXPECT(TG_LICENSE_TYPE_UNFIT, tg_instance_assign(engine, "tux", "workstation", &json));
    EXPECT_MESSAGE("a workstation license cannot license a linux instance");
    EXPECT(TG_INVALID_ARGUMENT, tg_instance_assign(engine, "tux", "laptop", &json));
    EXPECT_MESSAGE("invalid license_type: \"laptop\"");
    CHECK(json == NULL);
    EXPECT(TG_NO_ACTIVE_KEY, tg_instance_check(tux));

    /* The company's pool serves its instances first. */
    EXPECT_JSON(tg_pool_buy(engine,
                            "{\"license_type\": \"desktop\", \"quantity\": 1, "
                            "\"payment_mode\": \"annual\", \"company\": \"Acme\"}",
                            &json),
                "[\"");
    EXPECT_JSON(tg_instance_assign(engine, "tux", NULL, &json),
                "\"license_type\":\"desktop\",\"from_company_pool\":true");
    EXPECT(TG_OK, tg_instance_check(tux));

    /* The listing: a type never bought says so; filters apply. */
    EXPECT_JSON(tg_pool_list_json(engine, "{}", &json),
                "\"license_type\":\"server\",\"count\":0,\"used\":0,\"licenses\":[],"
                "\"message\":\"You have not purchased licenses of this type\"");
    EXPECT_JSON(tg_pool_list_json(engine, NULL, &json),
                "\"license_type\":\"workstation\",\"count\":2,\"used\":1");
    EXPECT_JSON(tg_pool_list_json(engine, "{\"company\": \"Acme\"}", &json),
                "\"assigned_to\":\"tux\"");
    EXPECT_JSON(tg_pool_list_json(engine, "{\"license_type\": \"workstation\"}", &json),
                "\"onboarding\":true");
    EXPECT(TG_INVALID_ARGUMENT, tg_pool_list_json(engine, "{\"colour\": \"red\"}", &json));
    EXPECT_MESSAGE("invalid filter");
    CHECK(json == NULL);
    EXPECT_JSON(tg_instances_json(engine, &json),
                "{\"name\":\"tux\",\"os\":\"linux\",\"company\":\"Acme\",\"license\":\"");
    EXPECT_JSON(tg_pool_shortfall_json(engine, 30, &json), "\"days\":30,\"types\":[");

    /* Unassigned: the license goes back and the instance is refused again. */
    EXPECT(TG_OK, tg_instance_unassign(engine, "web", &license));
    CHECK(license != NULL && strlen(license) > 0);
    EXPECT(TG_NO_ACTIVE_KEY, tg_instance_check(web));
    EXPECT(TG_NOT_FOUND, tg_instance_unassign(engine, "web", &json));
    EXPECT_MESSAGE("instance \"web\" holds no pool license");
    CHECK(json == NULL);
    EXPECT_JSON(tg_pool_shortfall_json(engine, 30, &json),
                "\"instance\":\"web\",\"reason\":\"unlicensed\"");
    /* ... and the same license serves it again. */
    EXPECT(TG_OK, tg_instance_assign(engine, "web", "workstation", &json));
    EXPECT_JSON_CONTAINS(json, license);
    tg_string_free(json);
    tg_string_free(license);
    EXPECT(TG_OK, tg_instance_check(web));

    EXPECT(TG_INVALID_ARGUMENT, tg_instance_check(NULL));
    EXPECT_MESSAGE("argument `instance` is NULL");
    tg_instance_close(web);
    tg_instance_close(tux);
}

/* Bulk reserve activation over a group: each project on its own, one refusal stops nothing. */
static void test_groups(tg_engine *engine) {
    char *json = NULL;

    EXPECT(TG_OK, tg_project_create(engine, "node-a"));
    EXPECT(TG_OK, tg_project_create(engine, "node-b"));
    EXPECT(TG_OK, tg_project_create(engine, "node-c"));
    EXPECT(TG_OK, tg_key_add(engine, "node-a", seat_key("NA-1", servers(4), NULL)));
    EXPECT(TG_OK, tg_key_add(engine, "node-c", seat_key("NC-1", servers(4), NULL)));

    EXPECT(TG_OK, tg_group_add(engine, "cluster", "[\"node-a\", \"node-b\"]"));
    EXPECT(TG_OK, tg_group_add(engine, "cluster", "[\"node-c\", \"node-a\"]"));
    EXPECT(TG_NOT_FOUND, tg_group_add(engine, "cluster", "[\"ghost\"]"));
    EXPECT_MESSAGE("project \"ghost\" does not exist");
    EXPECT(TG_INVALID_ARGUMENT, tg_group_add(engine, "cluster", "\"node-a\""));
    EXPECT_MESSAGE("invalid projects_json");
    EXPECT_JSON(tg_groups_json(engine, &json),
                "[{\"name\":\"cluster\",\"projects\":[\"node-a\",\"node-b\",\"node-c\"]}]");

    EXPECT(TG_OK, tg_key_add_reserve_bulk(engine, "{\"group\": \"cluster\"}",
                                          seat_key("NR-1", servers(8), NULL), &json));
    EXPECT_JSON_CONTAINS(json, "{\"project\":\"node-a\",\"status\":\"TG_OK\",\"code\":0,"
                               "\"role\":\"reserved\",\"message\":\"You have added an "
                               "additional license key for project node-a.");
    EXPECT_JSON_CONTAINS(json, "{\"project\":\"node-b\",\"status\":\"TG_NO_ACTIVE_KEY\","
                               "\"code\":6,\"role\":null,\"message\":\"no active license key");
    EXPECT_JSON_CONTAINS(json, "{\"project\":\"node-c\",\"status\":\"TG_OK\",\"code\":0,"
                               "\"role\":\"reserved\"");
    tg_string_free(json);

    /* The reserve took its place: node-a's server pair now holds it. */
    tg_seats *node_a = NULL;
    EXPECT(TG_OK, tg_seats_open(engine, "node-a", "server", &node_a));
    expect_seats(node_a, 0, 4, 8, true, 0);
    tg_seats_close(node_a);

    /* A second bulk run meets the occupied reserves, and every project is still tried. */
    EXPECT(TG_OK, tg_key_add_reserve_bulk(engine, "{\"all\": true}",
                                          seat_key("NR-2", servers(8), NULL), &json));
    EXPECT_JSON_CONTAINS(json, "{\"project\":\"node-a\",\"status\":\"TG_RESERVE_OCCUPIED\","
                               "\"code\":7");
    EXPECT_JSON_CONTAINS(json, "{\"project\":\"node-b\",\"status\":\"TG_NO_ACTIVE_KEY\"");
    EXPECT_JSON_CONTAINS(json, "{\"project\":\"node-c\",\"status\":\"TG_RESERVE_OCCUPIED\"");
    EXPECT_JSON_CONTAINS(json, "{\"project\":\"svm\",\"status\":\"TG_OK\",\"code\":0,"
                               "\"role\":\"reserved\"");
    /* An instance's only pair is per instance: the server key does not fit it. */
    EXPECT_JSON_CONTAINS(json, "{\"project\":\"web\",\"status\":\"TG_SCHEME_MISMATCH\"");
    tg_string_free(json);
    EXPECT_JSON(tg_key_add_reserve_bulk(engine, "{\"project\": \"node-b\"}",
                                        seat_key("NR-3", servers(8), NULL), &json),
                "[{\"project\":\"node-b\",\"status\":\"TG_NO_ACTIVE_KEY\"");

    /* The call itself fails only for a malformed or missing target or key. */
    json = (char *)engine; /* any non-NULL value: a failed call must reset it */
    EXPECT(TG_INVALID_ARGUMENT, tg_key_add_reserve_bulk(engine, "{\"cluster\": \"x\"}",
                                                        seat_key("NR-4", servers(8), NULL),
                                                        &json));
    EXPECT_MESSAGE("invalid target_json");
    CHECK(json == NULL);
    EXPECT(TG_INVALID_ARGUMENT,
           tg_key_add_reserve_bulk(engine, "{\"all\": true}", "{\"id\": \"K\"}", &json));
    EXPECT_MESSAGE("invalid key JSON");
    EXPECT(TG_NOT_FOUND, tg_key_add_reserve_bulk(engine, "{\"group\": \"nope\"}",
                                                 seat_key("NR-4", servers(8), NULL), &json));
    EXPECT_MESSAGE("group \"nope\" does not exist");
    EXPECT(TG_INVALID_ARGUMENT, tg_key_add_reserve_bulk(engine, NULL, "{}", &json));
    EXPECT_MESSAGE("argument `target_json` is NULL");
    CHECK(json == NULL);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s STATE_DIR\n", argv[0]);
        return 2;
    }
    snprintf(base_dir, sizeof base_dir, "%s/pools", argv[1]);

    test_statuses();

    tg_engine *engine = NULL;
    EXPECT(TG_OK, tg_engine_open(base_dir, &engine));
    test_seats(engine);
    test_seat_expiry(engine);
    test_instances(engine);
    test_groups(engine);
    tg_engine_close(engine);

    /* Everything is in the state: reopened, the instances and licenses are there. */
    char *json = NULL;
    EXPECT(TG_OK, tg_engine_open(base_dir, &engine));
    EXPECT(TG_OK, tg_instances_json(engine, &json));
    EXPECT_JSON_CONTAINS(json, "\"name\":\"web\",\"os\":\"windows\",\"company\":null,"
                               "\"license\":\"");
    tg_string_free(json);
    tg_engine_close(engine);

    printf("pools_seats: %d checks passed\n", checks);
    return 0;
}
