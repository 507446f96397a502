/* Drains one project through tg_consume until nothing is left, then prints what it was
 * granted: one of the four languages of ffi/tests/mixed_languages.rs.
 * Usage: drain STATE_DIR PROJECT SEED GO_FILE */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "tollgate.h"

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: drain STATE_DIR PROJECT SEED GO_FILE\n");
        return 2;
    }
    tg_engine *engine = NULL;
    tg_project *project = NULL;
    if (tg_engine_open(argv[1], &engine) != TG_OK || tg_project_open(engine, argv[2], &project) != TG_OK) {
        fprintf(stderr, "open: %s\n", tg_last_error_message());
        return 1;
    }
    uint64_t x = strtoull(argv[3], NULL, 10) * 0x9E3779B97F4A7C15ull | 1;
    while (access(argv[4], F_OK) != 0) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    uint64_t granted = 0;
    for (;;) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t want = 1 + x % 4096;
        tg_status status = tg_consume(project, want);
        if (status == TG_OK) {
            granted += want;
            continue;
        }
        if (status != TG_EXHAUSTED) {
            fprintf(stderr, "consume: %s\n", tg_last_error_message());
            return 1;
        }
        uint64_t rest = 0;
        status = tg_consume_partial(project, want, &rest);
        if (status == TG_OK) {
            granted += rest;
        } else if (status == TG_EXHAUSTED) {
            break;
        } else {
            fprintf(stderr, "consume_partial: %s\n", tg_last_error_message());
            return 1;
        }
    }
    printf("GRANTED %llu\n", (unsigned long long)granted);
    tg_project_close(project);
    tg_engine_close(engine);
    return 0;
}
