/*
 * Signed offline keys from C (rule R30 in docs/rules.md): a state opened with a trusted vendor key
 * takes an offline key only as a license file signed by that key and unchanged since; an unsigned,
 * altered, re-signed or malformed one is TG_BAD_SIGNATURE and changes nothing. The trust is kept
 * in the state, so a later tg_engine_open without the key still enforces it; development mode
 * (no trusted key) accepts unsigned keys. The licenses are the fixtures of
 * tests/fixtures/licenses. Every returned string and every file read is freed, so that valgrind
 * reports no leak.
 *
 * Usage: signatures STATE_DIR FIXTURES_DIR   (STATE_DIR a fresh, empty directory)
 * Exits 0 when every check holds; otherwise prints the failed check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tollgate.h"

static char fixtures[4096];

/* The whole of fixture file `name`, NUL-terminated; free it. */
static char *fixture(const char *name) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    char *text = NULL;
    size_t size = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, file)) > 0) {
        char *grown = realloc(text, size + n + 1);
        CHECK(grown != NULL);
        text = grown;
        memcpy(text + size, chunk, n);
        size += n;
    }
    fclose(file);
    CHECK(text != NULL);
    text[size] = '\0';
    return text;
}

/* A copy of `text` with the first `from` replaced by `to`, of the same length; free it. */
static char *edited(const char *text, const char *from, const char *to) {
    CHECK(strlen(from) == strlen(to));
    char *copy = strdup(text);
    CHECK(copy != NULL);
    char *at = strstr(copy, from);
    CHECK(at != NULL);
    memcpy(at, to, strlen(to));
    return copy;
}

static void expect_no_keys(tg_engine *engine, const char *project) {
    char *json = NULL;
    EXPECT(TG_OK, tg_keys_json(engine, project, &json));
    CHECK(json != NULL && strcmp(json, "[]") == 0);
    tg_string_free(json);
}

struct licenses {
    char *vendor_pub, *stranger_pub;
    char *off1_json, *off1_lic, *off2_json, *off2_lic, *off2_stranger_lic, *on1_json, *on1_lic;
    char *altered, *malformed;
    char vendor_fingerprint[128];
};

static void load(struct licenses *l) {
    l->vendor_pub = fixture("vendor.pub");
    l->stranger_pub = fixture("stranger.pub");
    l->off1_json = fixture("OFF-1.json");
    l->off1_lic = fixture("OFF-1.lic");
    l->off2_json = fixture("OFF-2.json");
    l->off2_lic = fixture("OFF-2.lic");
    l->off2_stranger_lic = fixture("OFF-2.stranger.lic");
    l->on1_json = fixture("ON-1.json");
    l->on1_lic = fixture("ON-1.lic");
    /* Same length: the limit raised from 1 GiB to 2 GiB. */
    l->altered = edited(l->off1_lic, "1073741824", "2147483648");
    l->malformed = edited(l->off1_lic, "tollgate-license-2", "tollgate-license-9");
    /* The public key is the second line of vendor.pub. */
    const char *line = strchr(l->vendor_pub, '\n');
    CHECK(line != NULL);
    snprintf(l->vendor_fingerprint, sizeof l->vendor_fingerprint, "%.*s",
             (int)strcspn(line + 1, "\r\n"), line + 1);
}

static void unload(struct licenses *l) {
    char *all[] = {l->vendor_pub, l->stranger_pub, l->off1_json, l->off1_lic, l->off2_json,
                   l->off2_lic, l->off2_stranger_lic, l->on1_json, l->on1_lic, l->altered,
                   l->malformed};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        free(all[i]);
    }
}

/* Bad arguments to the trust functions, each refused before anything is opened. */
static void test_arguments(const char *dir, const struct licenses *l) {
    tg_engine *engine = (tg_engine *)&engine; /* garbage: a failed open must reset it */
    const char *keys[] = {l->vendor_pub};
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open_trusted(NULL, NULL, keys, 1, &engine));
    CHECK(engine == NULL);
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open_trusted(dir, NULL, NULL, 1, &engine));
    EXPECT_MESSAGE("public_keys");
    const char *null_key[] = {NULL};
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open_trusted(dir, NULL, null_key, 1, &engine));
    EXPECT_MESSAGE("element 0 is NULL");
    const char *secret[] = {l->vendor_pub, "tollgate-vendor-secret-1\nAAAA\n"};
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open_trusted(dir, NULL, secret, 2, &engine));
    EXPECT_MESSAGE("element 1");
    EXPECT_MESSAGE("a vendor secret key where a public key was expected");
    CHECK(engine == NULL);
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_open_trusted(dir, NULL, keys, 1, NULL));
}

/* A state that trusts the vendor: the four refusals, then the signed keys. */
static void test_trusted(const char *dir, const struct licenses *l) {
    tg_engine *engine = NULL;
    const tg_open_options options = {.capacity = 16, .flush_interval_ms = 0};
    const char *keys[] = {l->vendor_pub};
    EXPECT(TG_OK, tg_engine_open_trusted(dir, &options, keys, 1, &engine));
    EXPECT(TG_OK, tg_project_create(engine, "p"));

    EXPECT(TG_BAD_SIGNATURE, tg_key_add(engine, "p", l->off1_json));
    EXPECT_MESSAGE("key \"OFF-1\" refused: it is unsigned, and this state trusts vendor keys");
    EXPECT(TG_BAD_SIGNATURE, tg_key_add(engine, "p", l->altered));
    EXPECT_MESSAGE("the key was altered after signing");
    EXPECT(TG_BAD_SIGNATURE, tg_key_add(engine, "p", l->off2_stranger_lic));
    EXPECT_MESSAGE("which is not a trusted vendor key");
    EXPECT(TG_BAD_SIGNATURE, tg_key_add(engine, "p", l->malformed));
    EXPECT_MESSAGE("malformed license: the format is \"tollgate-license-9\"");
    CHECK(strcmp(tg_status_name(TG_BAD_SIGNATURE), "TG_BAD_SIGNATURE") == 0);
    expect_no_keys(engine, "p");

    EXPECT(TG_OK, tg_key_add(engine, "p", l->off1_lic));
    EXPECT(TG_BAD_SIGNATURE, tg_key_add_reserve(engine, "p", l->off2_json));
    EXPECT(TG_BAD_SIGNATURE, tg_key_replace(engine, "p", l->off2_json));
    char *json = (char *)&json;
    EXPECT(TG_BAD_SIGNATURE,
           tg_key_add_reserve_bulk(engine, "{\"all\": true}", l->off2_json, &json));
    CHECK(json == NULL);
    EXPECT(TG_OK, tg_key_add_reserve(engine, "p", l->off2_lic));
    EXPECT_JSON(tg_keys_json(engine, "p", &json),
                        "\"id\":\"OFF-1\",\"delivery\":\"offline\"");
    EXPECT_JSON(tg_keys_json(engine, "p", &json), "\"status\":\"reserved\"");

    /* Online keys too: they come signed from the activation service. */
    EXPECT(TG_OK, tg_project_create(engine, "q"));
    EXPECT(TG_BAD_SIGNATURE, tg_key_add(engine, "q", l->on1_json));
    EXPECT_MESSAGE("key \"ON-1\" refused: it is unsigned, and this state trusts vendor keys: an "
                   "online key must come from the activation service or as a license file "
                   "signed by one of them");
    expect_no_keys(engine, "q");
    EXPECT(TG_OK, tg_key_add(engine, "q", l->on1_lic));

    EXPECT_JSON(tg_trusted_keys_json(engine, &json), l->vendor_fingerprint);
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_trust(engine, "not a key"));
    EXPECT_MESSAGE("public_key");
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_trust(engine, NULL));
    EXPECT(TG_INVALID_ARGUMENT, tg_engine_trust(NULL, l->stranger_pub));
    EXPECT(TG_INVALID_ARGUMENT, tg_trusted_keys_json(engine, NULL));
    tg_engine_close(engine);

    /* Reopened without the key, as any tool would: the state still trusts it. */
    EXPECT(TG_OK, tg_engine_open(dir, &engine));
    EXPECT(TG_OK, tg_project_create(engine, "r"));
    EXPECT(TG_BAD_SIGNATURE, tg_key_add(engine, "r", l->off2_json));
    EXPECT_MESSAGE("it is unsigned");
    expect_no_keys(engine, "r");
    EXPECT_JSON(tg_trusted_keys_json(engine, &json), l->vendor_fingerprint);
    /* Trusting the stranger too makes its license acceptable. */
    EXPECT(TG_OK, tg_engine_trust(engine, l->stranger_pub));
    EXPECT(TG_OK, tg_engine_trust(engine, l->stranger_pub));
    EXPECT(TG_OK, tg_key_add_reserve_bulk(engine, "{\"project\": \"q\"}",
                                          l->off2_stranger_lic, &json));
    EXPECT_JSON_CONTAINS(json, "\"status\":\"TG_TYPE_MISMATCH\"");
    tg_string_free(json);
    EXPECT_JSON(tg_events_json(engine, 0, 100, &json), "\"kind\":\"vendor_key_trusted\"");
    tg_engine_close(engine);
}

/* Development mode: no trusted key, unsigned keys are accepted, an altered license is not. */
static void test_development(const char *dir, const struct licenses *l) {
    tg_engine *engine = NULL;
    EXPECT(TG_OK, tg_engine_open(dir, &engine));
    EXPECT_JSON(tg_trusted_keys_json(engine, &json), "[]");
    EXPECT(TG_OK, tg_project_create(engine, "p"));
    EXPECT(TG_OK, tg_key_add(engine, "p", l->off1_json));
    EXPECT(TG_BAD_SIGNATURE, tg_key_add(engine, "p", l->altered));
    EXPECT(TG_OK, tg_key_add(engine, "p", l->off2_stranger_lic));
    tg_engine_close(engine);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s STATE_DIR FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    snprintf(fixtures, sizeof fixtures, "%s", argv[2]);
    char trusted[4096], development[4096];
    snprintf(trusted, sizeof trusted, "%s/trusted", argv[1]);
    snprintf(development, sizeof development, "%s/development", argv[1]);

    struct licenses licenses;
    load(&licenses);
    test_arguments(trusted, &licenses);
    test_trusted(trusted, &licenses);
    test_development(development, &licenses);
    unload(&licenses);

    printf("signatures: %d checks passed\n", checks);
    return 0;
}
