/*
 * tg_engine_options, the opaque open options: each setter and what it does. Capacity (the
 * 17th project of a 16-record state is refused), the flush thread (present only when asked
 * for), the installation directory (used instead of the environment's; a state opened with
 * another one is TG_INSTALLATION_MISMATCH), open-existing (a
 * missing state is refused and nothing is created), the admin-lock timeout (a second process
 * holding the admin lock makes the open and an admin call fail with TG_BUSY, and they succeed
 * once it lets go), and a trusted vendor key.
 *
 * Usage: options STATE_DIR FIXTURES_DIR   (a fresh, empty directory; tests/fixtures/licenses)
 * Exits 0 when every check holds; otherwise prints the failed check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tollgate.h"

static char base_dir[4096];
static char fixtures[4096];

static const char *path_in_base(const char *name) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", base_dir, name);
    return path;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* How many threads of this process have the name `name`. */
static int threads_named(const char *name) {
    DIR *tasks = opendir("/proc/self/task");
    CHECK(tasks != NULL);
    int count = 0;
    struct dirent *task;
    while ((task = readdir(tasks)) != NULL) {
        if (task->d_name[0] == '.') {
            continue;
        }
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", task->d_name);
        FILE *file = fopen(path, "r");
        if (file == NULL) {
            continue; /* the thread ended meanwhile */
        }
        if (fgets(comm, sizeof comm, file) != NULL) {
            comm[strcspn(comm, "\n")] = '\0';
            count += strcmp(comm, name) == 0;
        }
        fclose(file);
    }
    closedir(tasks);
    return count;
}

static void test_null_arguments(void) {
    tg_engine_options *options = NULL;
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_new(NULL));
    EXPECT(TG_OK, tg_engine_options_new(&options));
    CHECK(options != NULL);
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_set_capacity(NULL, 16));
    EXPECT_MESSAGE("argument `options` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_set_flush_interval_ms(NULL, 1));
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_set_installation_dir(NULL, "x"));
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_set_open_existing(NULL, true));
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_set_admin_lock_timeout_ms(NULL, 1));
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_trust(NULL, "x"));
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_trust(options, NULL));
    EXPECT_MESSAGE("argument `public_key` is NULL");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_trust(options, "not a vendor key"));
    EXPECT_MESSAGE("public_key");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_options_set_installation_dir(options, "\xff"));
    EXPECT_MESSAGE("argument `dir` is not valid UTF-8");
    tg_engine *engine = (tg_engine *)1;
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open_with_options(NULL, options, &engine));
    CHECK(engine == NULL);
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open_with_options(path_in_base("x"), options, NULL));
    tg_engine_options_free(options);
    tg_engine_options_free(NULL);
}

static void test_capacity_and_flush_thread(void) {
    tg_engine_options *options = NULL;
    EXPECT(TG_OK, tg_engine_options_new(&options));
    EXPECT(TG_OK, tg_engine_options_set_capacity(options, 16));
    tg_engine *engine = NULL;
    EXPECT(TG_OK, tg_engine_open_with_options(path_in_base("small"), options, &engine));
    CHECK(threads_named("tollgate-flush") == 0);
    char name[32];
    for (int i = 0; i < 16; i++) {
        snprintf(name, sizeof name, "p%d", i);
        EXPECT(TG_OK, tg_project_create(engine, name));
    }
    EXPECT(TG_CAPACITY, tg_project_create(engine, "p16"));
    tg_engine_close(engine);

    /* The same options, reused, plus a flush interval: one flush thread while it is open. */
    EXPECT(TG_OK, tg_engine_options_set_flush_interval_ms(options, 10));
    EXPECT(TG_OK, tg_engine_open_with_options(path_in_base("flushed"), options, &engine));
    /* A new thread names itself once it runs: wait for that. */
    for (int waited = 0; waited < 20000 && threads_named("tollgate-flush") == 0; waited += 5) {
        sleep_ms(5);
    }
    CHECK(threads_named("tollgate-flush") == 1);
    tg_engine_close(engine);
    CHECK(threads_named("tollgate-flush") == 0);
    tg_engine_options_free(options);
}

static void test_installation_dir_and_open_existing(void) {
    /* Without the option, the installation would go to $XDG_STATE_HOME/tollgate. */
    unsetenv("TOLLGATE_INSTALLATION");
    CHECK(setenv("XDG_STATE_HOME", path_in_base("xdg"), 1) == 0);
    char installation[4200];
    snprintf(installation, sizeof installation, "%s", path_in_base("installation"));

    tg_engine_options *options = NULL;
    EXPECT(TG_OK, tg_engine_options_new(&options));
    EXPECT(TG_OK, tg_engine_options_set_installation_dir(options, installation));
    EXPECT(TG_OK, tg_engine_options_set_open_existing(options, true));

    /* A misspelt path: refused, and nothing created. */
    char missing[4200];
    snprintf(missing, sizeof missing, "%s", path_in_base("typo/state"));
    tg_engine *engine = (tg_engine *)1;
    EXPECT(TG_NOT_FOUND, tg_engine_open_with_options(missing, options, &engine));
    EXPECT_MESSAGE("holds no Tollgate state");
    CHECK(engine == NULL);
    CHECK(!exists(path_in_base("typo")));

    /* Created without the option, opened with it. */
    EXPECT(TG_OK, tg_engine_options_set_open_existing(options, false));
    EXPECT(TG_OK, tg_engine_open_with_options(path_in_base("real"), options, &engine));
    EXPECT(TG_OK, tg_project_create(engine, "kept"));
    tg_engine_close(engine);
    EXPECT(TG_OK, tg_engine_options_set_open_existing(options, true));
    EXPECT(TG_OK, tg_engine_open_with_options(path_in_base("real"), options, &engine));
    EXPECT(TG_ALREADY_EXISTS, tg_project_create(engine, "kept"));
    tg_engine_close(engine);

    /* Opened with another installation directory than the one that made it (a program that
     * set the wrong one, or forgot it): its own status, naming both directories, not
     * TG_TAMPERED; and nothing changed, so the right installation still opens it. */
    char other[4200], message[16384];
    snprintf(other, sizeof other, "%s", path_in_base("other-installation"));
    EXPECT(TG_OK, tg_engine_options_set_installation_dir(options, other));
    engine = (tg_engine *)1;
    EXPECT(TG_INSTALLATION_MISMATCH, tg_engine_open_with_options(path_in_base("real"), options, &engine));
    CHECK(engine == NULL);
    /* The state directory is named as the engine resolved it, ending in "/real". */
    CHECK(strncmp(tg_last_error_message(), "state directory /", 17) == 0);
    snprintf(message, sizeof message,
             "/real was made by another installation than the installation directory %s it "
             "was opened with: open it with the installation directory that made it "
             "(Options::installation_dir, tg_engine_options_set_installation_dir or "
             "TOLLGATE_INSTALLATION)",
             other);
    EXPECT_MESSAGE(message);
    CHECK(TG_INSTALLATION_MISMATCH == 28);
    CHECK(strcmp(tg_status_name(TG_INSTALLATION_MISMATCH), "TG_INSTALLATION_MISMATCH") == 0);
    CHECK(strcmp(tg_status_message(TG_INSTALLATION_MISMATCH),
                 "the state was made by another installation; open it with the installation "
                 "directory that made it") == 0);
    CHECK(TG_UNAVAILABLE == 29);
    CHECK(strcmp(tg_status_name(TG_UNAVAILABLE), "TG_UNAVAILABLE") == 0);
    CHECK(strcmp(tg_status_message(30), "unknown status") == 0);
    EXPECT(TG_OK, tg_engine_options_set_installation_dir(options, installation));
    EXPECT(TG_OK, tg_engine_open_with_options(path_in_base("real"), options, &engine));
    EXPECT(TG_ALREADY_EXISTS, tg_project_create(engine, "kept"));
    tg_engine_close(engine);

    CHECK(exists(installation));
    CHECK(!exists(path_in_base("xdg")));
    tg_engine_options_free(options);
    CHECK(setenv("TOLLGATE_INSTALLATION", installation, 1) == 0);
}

static double seconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* The second process (this program, run with --hold-lock): takes the lock on `lock_path`,
 * says so on fd `locked`, and holds it until a byte arrives on fd `release`. */
static int hold_lock(const char *lock_path, int locked, int release) {
    int fd = open(lock_path, O_RDWR | O_CLOEXEC);
    char byte = fd >= 0 && flock(fd, LOCK_EX) == 0 ? 'L' : 'E';
    if (write(locked, &byte, 1) != 1 || read(release, &byte, 1) != 1) {
        return 2;
    }
    return byte == 'R' ? 0 : 3;
}

static const char *program;

static void test_admin_lock_timeout(void) {
    char state[4200];
    snprintf(state, sizeof state, "%s", path_in_base("locked"));
    tg_engine_options *options = NULL;
    EXPECT(TG_OK, tg_engine_options_new(&options));
    EXPECT(TG_OK, tg_engine_options_set_admin_lock_timeout_ms(options, 200));
    tg_engine *engine = NULL;
    EXPECT(TG_OK, tg_engine_open_with_options(state, options, &engine));

    /* A second process takes the admin lock, as its own admin change would, until told. It
     * is this program run anew (exec, so that valgrind does not count the memory the child
     * inherited as lost). */
    int locked[2], release[2];
    CHECK(pipe(locked) == 0 && pipe(release) == 0);
    char lock_path[4300], locked_fd[16], release_fd[16];
    snprintf(lock_path, sizeof lock_path, "%s/admin.lock", state);
    snprintf(locked_fd, sizeof locked_fd, "%d", locked[1]);
    snprintf(release_fd, sizeof release_fd, "%d", release[0]);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char *const args[] = {(char *)program, (char *)"--hold-lock", lock_path, locked_fd,
                              release_fd, NULL};
        execv(program, args);
        _exit(4);
    }
    char byte = 0;
    CHECK(read(locked[0], &byte, 1) == 1 && byte == 'L');

    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    EXPECT(TG_BUSY, tg_project_create(engine, "blocked"));
    CHECK(seconds_since(&start) >= 0.19);
    EXPECT_MESSAGE("admin.lock is still held by another process or thread after 200 ms");
    CHECK(strcmp(tg_status_name(TG_BUSY), "TG_BUSY") == 0);
    tg_engine *second = (tg_engine *)1;
    EXPECT(TG_BUSY, tg_engine_open_with_options(state, options, &second));
    CHECK(second == NULL);

    /* A zero timeout tries once. */
    EXPECT(TG_OK, tg_engine_options_set_admin_lock_timeout_ms(options, 0));
    EXPECT(TG_BUSY, tg_engine_open_with_options(state, options, &second));
    EXPECT_MESSAGE("after 0 ms");

    CHECK(write(release[1], "R", 1) == 1);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(locked[0]);
    close(locked[1]);
    close(release[0]);
    close(release[1]);

    /* Let go: both succeed, and nothing of the refused calls happened. */
    EXPECT(TG_OK, tg_project_create(engine, "after"));
    EXPECT(TG_OK, tg_engine_open_with_options(state, options, &second));
    char *json = NULL;
    EXPECT(TG_OK, tg_project_list_json(second, &json));
    CHECK(strcmp(json, "[\"after\"]") == 0);
    tg_string_free(json);
    tg_engine_close(second);
    tg_engine_close(engine);
    tg_engine_options_free(options);
}

/* The whole text of a fixture; free it. */
static char *fixture(const char *name) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    FILE *file = fopen(path, "rb");
    CHECK(file != NULL);
    static char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[n] = '\0';
    char *copy = strdup(text);
    CHECK(copy != NULL);
    return copy;
}

static void test_trust(void) {
    char *vendor_pub = fixture("vendor.pub");
    /* The fingerprint is the second line of vendor.pub. */
    const char *line = strchr(vendor_pub, '\n');
    CHECK(line != NULL);
    char fingerprint[128];
    snprintf(fingerprint, sizeof fingerprint, "%.*s", (int)strcspn(line + 1, "\r\n"), line + 1);

    tg_engine_options *options = NULL;
    EXPECT(TG_OK, tg_engine_options_new(&options));
    EXPECT(TG_OK, tg_engine_options_trust(options, vendor_pub));
    tg_engine *engine = NULL;
    EXPECT(TG_OK, tg_engine_open_with_options(path_in_base("trusting"), options, &engine));
    char *json = NULL;
    EXPECT(TG_OK, tg_trusted_keys_json(engine, &json));
    EXPECT_JSON_CONTAINS(json, fingerprint);
    tg_string_free(json);
    /* Trusting a key: an unsigned key is refused. */
    EXPECT(TG_OK, tg_project_create(engine, "p"));
    EXPECT(TG_BAD_SIGNATURE,
           tg_key_add(engine, "p",
                      "{\"id\": \"U-1\", \"delivery\": \"offline\", \"kind\": \"commercial\", "
                      "\"edition\": \"standard\", \"scheme\": {\"data_volume\": "
                      "{\"limit_bytes\": 100}}}"));
    tg_engine_close(engine);
    tg_engine_options_free(options);
    free(vendor_pub);
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--hold-lock") == 0) {
        return hold_lock(argv[2], atoi(argv[3]), atoi(argv[4]));
    }
    program = argv[0];
    if (argc != 3) {
        fprintf(stderr, "usage: %s STATE_DIR FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    snprintf(base_dir, sizeof base_dir, "%s", argv[1]);
    snprintf(fixtures, sizeof fixtures, "%s", argv[2]);
    test_null_arguments();
    test_capacity_and_flush_thread();
    test_installation_dir_and_open_existing();
    test_admin_lock_timeout();
    test_trust();
    printf("options: %d checks passed\n", checks);
    return 0;
}
