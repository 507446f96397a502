/*
 * The checks the C clients of tests/c share: each counts itself in `checks`, and on failure
 * prints where it failed with the thread's last Tollgate error and exits 1.
 */
#ifndef TOLLGATE_TESTS_CHECK_H
#define TOLLGATE_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tollgate.h"

static int checks = 0;

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        checks++;                                                                             \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n  last error: %s\n", __FILE__,          \
                    __LINE__, #cond, tg_last_error_message());                                \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

/* Runs `call` and checks that it returns `want`. */
#define EXPECT(want, call)                                                                    \
    do {                                                                                      \
        checks++;                                                                             \
        tg_status got_ = (call);                                                              \
        if (got_ != (want)) {                                                                 \
            fprintf(stderr, "%s:%d: %s\n  returned %s, expected %s\n  last error: %s\n",      \
                    __FILE__, __LINE__, #call, tg_status_name(got_), tg_status_name(want),    \
                    tg_last_error_message());                                                 \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

/* Checks that the last error message contains `needle`. */
#define EXPECT_MESSAGE(needle)                                                                \
    do {                                                                                      \
        checks++;                                                                             \
        const char *message_ = tg_last_error_message();                                       \
        if (message_ == NULL || strstr(message_, (needle)) == NULL) {                         \
            fprintf(stderr, "%s:%d: last error \"%s\" lacks \"%s\"\n", __FILE__, __LINE__,    \
                    message_ ? message_ : "(NULL)", (needle));                                \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

/* Sleeps `ms` milliseconds (the including file defines _POSIX_C_SOURCE for nanosleep). */
static inline void sleep_ms(long ms) {
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

/* The JSON of an online, commercial, standard data-volume key, in a static buffer that the next
 * call reuses. */
static inline const char *data_volume_key(const char *id, unsigned long long limit) {
    static char json[512];
    snprintf(json, sizeof json,
             "{\"id\": \"%s\", \"delivery\": \"online\", \"kind\": \"commercial\", "
             "\"edition\": \"standard\", \"scheme\": {\"data_volume\": {\"limit_bytes\": %llu}}}",
             id, limit);
    return json;
}

#define EXPECT_JSON_CONTAINS(json, needle)                                                    \
    do {                                                                                      \
        checks++;                                                                             \
        if ((json) == NULL || strstr((json), (needle)) == NULL) {                             \
            fprintf(stderr, "%s:%d: JSON lacks %s:\n%s\n", __FILE__, __LINE__, (needle),      \
                    (json) ? (json) : "(NULL)");                                              \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

/* Runs `call_with_out`, which writes a string to `&json` (a variable this macro declares), checks
 * that it succeeds and that the string holds `needle`, and frees it. */
#define EXPECT_JSON(call_with_out, needle)                                                    \
    do {                                                                                      \
        char *json = NULL;                                                                    \
        EXPECT(TG_OK, call_with_out);                                                         \
        EXPECT_JSON_CONTAINS(json, needle);                                                   \
        tg_string_free(json);                                                                 \
    } while (0)

#endif /* TOLLGATE_TESTS_CHECK_H */
