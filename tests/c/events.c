/*
 * The event callback of include/tollgate.h: tg_engine_on_event delivers every event this
 * process records, in order, typed, on one thread of its own. While 4 threads consume, the
 * Active -> Reserved switch arrives exactly once, on neither a consuming thread nor the main
 * thread; the events seen are exactly the audit log's; no call comes after the callback is
 * removed; a callback may close its own engine.
 *
 * Usage: events STATE_DIR   (a fresh, empty directory; the test makes subdirectories)
 * Exits 0 when every check holds; otherwise prints the failed check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "tollgate.h"

#define CONSUMERS 4
#define LIMIT 1000
#define GRANT 10

static char base_dir[4096];

static const char *path_in_base(const char *name) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", base_dir, name);
    return path;
}

/* What the callback saw, under `lock`. */
struct seen {
    pthread_mutex_t lock;
    int calls;
    pthread_t thread;
    int threads_differ;
    uint64_t last_seq;
    int out_of_order;
    int bad_event;
    int created;
    int added_active;
    int added_reserved;
    int switches;
    int refusals;
    int thresholds;
    char switched_from[80];
    char switched_to[80];
    char switch_reason[32];
    char switch_project[80];
    int switch_json_ok;
};

static void on_event(const tg_event *event, void *user_data) {
    struct seen *seen = user_data;
    pthread_mutex_lock(&seen->lock);
    if (seen->calls == 0) {
        seen->thread = pthread_self();
    } else if (!pthread_equal(seen->thread, pthread_self())) {
        seen->threads_differ = 1;
    }
    seen->calls++;
    if (event->seq <= seen->last_seq) {
        seen->out_of_order = 1;
    }
    seen->last_seq = event->seq;
    if (event->project == NULL || event->json == NULL || event->at_unix_secs < 1700000000) {
        seen->bad_event = 1;
    }
    switch (event->kind) {
    case TG_EVENT_PROJECT_CREATED:
        seen->created++;
        break;
    case TG_EVENT_KEY_ADDED:
        if (strcmp(event->key, "A-1") == 0 && strcmp(event->reason, "active") == 0) {
            seen->added_active++;
        } else if (strcmp(event->key, "A-2") == 0 && strcmp(event->reason, "reserved") == 0) {
            seen->added_reserved++;
        } else {
            seen->bad_event = 1;
        }
        break;
    case TG_EVENT_SWITCHED:
        seen->switches++;
        snprintf(seen->switched_from, sizeof seen->switched_from, "%s", event->previous_key);
        snprintf(seen->switched_to, sizeof seen->switched_to, "%s", event->key);
        snprintf(seen->switch_reason, sizeof seen->switch_reason, "%s", event->reason);
        snprintf(seen->switch_project, sizeof seen->switch_project, "%s", event->project);
        seen->switch_json_ok = strstr(event->json, "\"kind\":\"switched\"") != NULL &&
                               strstr(event->json, "\"from\":\"A-1\"") != NULL;
        break;
    case TG_EVENT_REFUSED:
        seen->refusals++;
        if (strcmp(event->reason, "exhausted") != 0 || event->key != NULL) {
            seen->bad_event = 1;
        }
        break;
    case TG_EVENT_THRESHOLD:
        seen->thresholds++;
        if (event->percent != 80 && event->percent != 90 && event->percent != 100) {
            seen->bad_event = 1;
        }
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&seen->lock);
}

struct consumer {
    tg_project *project;
    pthread_t thread;
    uint64_t granted;
    tg_status last;
};

static void *consume_until_refused(void *arg) {
    struct consumer *consumer = arg;
    tg_status status;
    while ((status = tg_consume(consumer->project, GRANT)) == TG_OK) {
        consumer->granted += GRANT;
    }
    consumer->last = status;
    return NULL;
}

/* How many events the audit log holds after `seq`. */
static int log_entries_after(const tg_engine *engine, uint64_t seq) {
    char *json = NULL;
    EXPECT(TG_OK, tg_events_json(engine, seq, 100000, &json));
    int entries = 0;
    for (const char *at = json; (at = strstr(at, "\"seq\":")) != NULL; at++) {
        entries++;
    }
    tg_string_free(json);
    return entries;
}

/* The highest sequence number in the audit log. */
static uint64_t last_seq(const tg_engine *engine) {
    char *json = NULL;
    EXPECT(TG_OK, tg_events_json(engine, 0, 100000, &json));
    uint64_t last = 0;
    for (const char *at = json; (at = strstr(at, "\"seq\":")) != NULL; at++) {
        last = strtoull(at + 6, NULL, 10);
    }
    tg_string_free(json);
    return last;
}

static int count(struct seen *seen, const int *field) {
    pthread_mutex_lock(&seen->lock);
    int value = *field;
    pthread_mutex_unlock(&seen->lock);
    return value;
}

static void test_switch_arrives_once_off_the_hot_path(void) {
    tg_engine *engine = NULL;
    EXPECT(TG_OK, tg_engine_open(path_in_base("switch"), &engine));
    uint64_t before = last_seq(engine);

    struct seen seen;
    memset(&seen, 0, sizeof seen);
    pthread_mutex_init(&seen.lock, NULL);
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_on_event(NULL, on_event, &seen));
    EXPECT_MESSAGE("engine");
    EXPECT(TG_OK, tg_engine_on_event(engine, on_event, &seen));

    EXPECT(TG_OK, tg_project_create(engine, "copy"));
    EXPECT(TG_OK, tg_key_add(engine, "copy", data_volume_key("A-1", LIMIT)));
    EXPECT(TG_OK, tg_key_add_reserve(engine, "copy", data_volume_key("A-2", LIMIT)));
    tg_project *project = NULL;
    EXPECT(TG_OK, tg_project_open(engine, "copy", &project));

    struct consumer consumers[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        consumers[i] = (struct consumer){project, 0, 0, TG_OK};
        CHECK(pthread_create(&consumers[i].thread, NULL, consume_until_refused, &consumers[i]) ==
              0);
    }
    uint64_t granted = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        CHECK(pthread_join(consumers[i].thread, NULL) == 0);
        CHECK(consumers[i].last == TG_EXHAUSTED);
        granted += consumers[i].granted;
    }
    CHECK(granted == 2 * LIMIT);

    /* The switch and the refusal after it reach the callback a moment later. */
    for (int waited = 0; waited < 20000; waited += 5) {
        if (count(&seen, &seen.switches) >= 1 && count(&seen, &seen.refusals) >= 1) {
            break;
        }
        sleep_ms(5);
    }
    EXPECT(TG_OK, tg_engine_on_event(engine, NULL, NULL));

    /* Removed: nothing is delivered any more. */
    pthread_mutex_lock(&seen.lock);
    int calls = seen.calls;
    pthread_mutex_unlock(&seen.lock);
    EXPECT(TG_OK, tg_project_create(engine, "after"));
    sleep_ms(50);
    CHECK(count(&seen, &seen.calls) == calls);

    CHECK(seen.switches == 1);
    CHECK(strcmp(seen.switched_from, "A-1") == 0);
    CHECK(strcmp(seen.switched_to, "A-2") == 0);
    CHECK(strcmp(seen.switch_reason, "exhausted") == 0);
    CHECK(strcmp(seen.switch_project, "copy") == 0);
    CHECK(seen.switch_json_ok);
    CHECK(seen.refusals == 1);
    CHECK(seen.created == 1);
    CHECK(seen.added_active == 1);
    CHECK(seen.added_reserved == 1);
    CHECK(!seen.bad_event);
    CHECK(!seen.out_of_order);
    CHECK(!seen.threads_differ);
    /* Off the hot path: on neither a consuming thread nor this one. */
    CHECK(!pthread_equal(seen.thread, pthread_self()));
    for (int i = 0; i < CONSUMERS; i++) {
        CHECK(!pthread_equal(seen.thread, consumers[i].thread));
    }
    /* Exactly the audit log's events, "after" excepted. */
    CHECK(log_entries_after(engine, before) == calls + 1);

    tg_usage usage;
    EXPECT(TG_OK, tg_usage_get(project, &usage));
    CHECK(usage.active_used == LIMIT && usage.active_limit == LIMIT);
    CHECK(usage.switches == 1 && !usage.has_reserved);

    tg_project_close(project);
    tg_engine_close(engine);
    pthread_mutex_destroy(&seen.lock);
    printf("events: switch seen once by the callback while %d threads consumed %llu bytes\n",
           CONSUMERS, (unsigned long long)granted);
}

/* A callback that closes its own engine at the first event. */
struct closer {
    pthread_mutex_t lock;
    tg_engine *engine;
    int calls;
};

static void close_from_callback(const tg_event *event, void *user_data) {
    (void)event;
    struct closer *closer = user_data;
    pthread_mutex_lock(&closer->lock);
    closer->calls++;
    tg_engine *engine = closer->engine;
    closer->engine = NULL;
    pthread_mutex_unlock(&closer->lock);
    tg_engine_close(engine);
}

static void test_callback_may_close_its_engine(void) {
    struct closer closer;
    memset(&closer, 0, sizeof closer);
    pthread_mutex_init(&closer.lock, NULL);
    tg_engine *engine = NULL;
    EXPECT(TG_OK, tg_engine_open(path_in_base("closer"), &engine));
    closer.engine = engine;
    EXPECT(TG_OK, tg_engine_on_event(engine, close_from_callback, &closer));
    EXPECT(TG_OK, tg_project_create(engine, "one"));
    for (int waited = 0; waited < 20000; waited += 5) {
        pthread_mutex_lock(&closer.lock);
        int closed = closer.engine == NULL;
        pthread_mutex_unlock(&closer.lock);
        if (closed) {
            break;
        }
        sleep_ms(5);
    }
    sleep_ms(50);
    pthread_mutex_lock(&closer.lock);
    CHECK(closer.calls == 1);
    CHECK(closer.engine == NULL);
    pthread_mutex_unlock(&closer.lock);

    /* The state is intact and the engine closed: it opens again. */
    EXPECT(TG_OK, tg_engine_open(path_in_base("closer"), &engine));
    EXPECT(TG_ALREADY_EXISTS, tg_project_create(engine, "one"));
    tg_engine_close(engine);
    pthread_mutex_destroy(&closer.lock);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s STATE_DIR\n", argv[0]);
        return 2;
    }
    snprintf(base_dir, sizeof base_dir, "%s", argv[1]);
    test_switch_arrives_once_off_the_hot_path();
    test_callback_may_close_its_engine();
    printf("events: %d checks passed\n", checks);
    return 0;
}
