/*
 * The fork rules of include/tollgate.h: a child of fork() closes every handle it inherited
 * (engine with an event callback, project, seats) without a panic or an abort, and the parent
 * is unaffected: its seats are still held, its threads still deliver events, its usage is
 * exact. The child then execs this program, which meters through an engine of its own.
 *
 * Usage: fork STATE_DIR   (a fresh, empty directory; the test makes subdirectories)
 * Exits 0 when every check holds; otherwise prints the failed check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tollgate.h"

static char state_dir[4200];

static const char *server_key(const char *id, unsigned machines) {
    static char json[512];
    snprintf(json, sizeof json,
             "{\"id\": \"%s\", \"delivery\": \"online\", \"kind\": \"commercial\", "
             "\"edition\": \"standard\", \"scheme\": {\"per_machine\": {\"os\": \"server\", "
             "\"max_machines\": %u}}}",
             id, machines);
    return json;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int switches = 0;

static void on_event(const tg_event *event, void *user_data) {
    (void)user_data;
    if (event->kind == TG_EVENT_SWITCHED) {
        pthread_mutex_lock(&lock);
        switches++;
        pthread_mutex_unlock(&lock);
    }
}

static int switches_seen(void) {
    pthread_mutex_lock(&lock);
    int seen = switches;
    pthread_mutex_unlock(&lock);
    return seen;
}

/* After exec: meters through an engine of its own. */
static int meter_in_child(void) {
    tg_engine *own = NULL;
    EXPECT(TG_OK, tg_engine_open(state_dir, &own));
    tg_project *mine = NULL;
    EXPECT(TG_OK, tg_project_open(own, "copy", &mine));
    EXPECT(TG_OK, tg_consume(mine, 100));
    tg_project_close(mine);
    tg_engine_close(own);
    return 0;
}

/* The child: closes what it inherited, then execs this program to meter on its own. It execs
 * rather than exits because closing an inherited handle leaves its memory allocated in the
 * child, which valgrind would report as lost at exit; exec is also how a child usually goes on
 * (its open files are close-on-exec). */
static void child(const char *program, tg_engine *engine, tg_project *project, tg_seats *seats) {
    tg_seats_close(seats);
    tg_project_close(project);
    tg_engine_close(engine);
    char *const args[] = {(char *)program, (char *)"--child", state_dir, NULL};
    execv(program, args);
    perror("execv");
    _exit(3);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--child") == 0) {
        snprintf(state_dir, sizeof state_dir, "%s", argv[2]);
        return meter_in_child();
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s STATE_DIR\n", argv[0]);
        return 2;
    }
    snprintf(state_dir, sizeof state_dir, "%s/fork", argv[1]);

    tg_engine *engine = NULL;
    EXPECT(TG_OK, tg_engine_open(state_dir, &engine));
    EXPECT(TG_OK, tg_engine_on_event(engine, on_event, NULL));
    EXPECT(TG_OK, tg_project_create(engine, "copy"));
    EXPECT(TG_OK, tg_key_add(engine, "copy", data_volume_key("A-1", 1000)));
    EXPECT(TG_OK, tg_key_add_reserve(engine, "copy", data_volume_key("A-2", 1000)));
    EXPECT(TG_OK, tg_project_create(engine, "svm"));
    EXPECT(TG_OK, tg_key_add(engine, "svm", server_key("S-1", 2)));
    tg_project *project = NULL;
    EXPECT(TG_OK, tg_project_open(engine, "copy", &project));
    tg_seats *seats = NULL;
    EXPECT(TG_OK, tg_seats_open(engine, "svm", "server", &seats));
    EXPECT(TG_OK, tg_consume(project, 500));
    EXPECT(TG_OK, tg_seat_acquire(seats, 1));

    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        child(argv[0], engine, project, seats);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "the child ended with %s %d\n",
                WIFSIGNALED(status) ? "signal" : "status",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        return 1;
    }

    /* The parent's seat is still held, and the child's 100 bytes were charged. */
    uint64_t held = 0;
    EXPECT(TG_OK, tg_seat_held(seats, &held));
    CHECK(held == 1);
    tg_seat_usage seat_usage;
    EXPECT(TG_OK, tg_seat_usage_get(seats, &seat_usage));
    CHECK(seat_usage.held == 1 && seat_usage.limit == 2);
    tg_usage usage;
    EXPECT(TG_OK, tg_usage_get(project, &usage));
    CHECK(usage.active_used == 600 && usage.switches == 0);

    /* The parent's threads run on: the switch reaches its callback. */
    EXPECT(TG_OK, tg_consume(project, 700));
    for (int waited = 0; waited < 20000 && switches_seen() == 0; waited += 5) {
        sleep_ms(5);
    }
    CHECK(switches_seen() == 1);
    EXPECT(TG_OK, tg_usage_get(project, &usage));
    CHECK(usage.active_used == 300 && usage.active_limit == 1000 && usage.switches == 1);

    EXPECT(TG_OK, tg_seat_release(seats, 1));
    tg_seats_close(seats);
    tg_project_close(project);
    tg_engine_close(engine);
    printf("fork: the child closed its inherited handles, then metered 100 bytes of its own\n");
    printf("fork: %d checks passed\n", checks);
    return 0;
}
