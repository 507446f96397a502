//! The committed `include/tollgate.h` must be exactly what cbindgen generates from `ffi/src`.
//!
//! `TOLLGATE_BLESS=1 cargo test -p tollgate-ffi --test header` writes the fresh header instead
//! of comparing.

mod common;

use std::path::{Path, PathBuf};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn committed_header() -> PathBuf {
    manifest_dir().join("../include/tollgate.h")
}

/// Generates the header into memory with the pinned cbindgen and `ffi/cbindgen.toml`. Parses
/// `src/lib.rs` and its modules directly, so no `cargo metadata` run is needed.
fn generate() -> String {
    let config = cbindgen::Config::from_file(manifest_dir().join("cbindgen.toml"))
        .expect("read ffi/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(manifest_dir().join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn committed_header_matches_a_fresh_generation() {
    let fresh = generate();
    let path = committed_header();
    common::check_generated(
        &path,
        &fresh,
        "include/tollgate.h, generated from ffi/src,",
        "header",
    );
}

#[test]
fn header_declares_the_fixed_api() {
    let header = generate();
    for declaration in [
        "typedef enum tg_status {",
        "TG_OK = 0,",
        "TG_PANIC = 16,",
        "TG_UNSUPPORTED = 17,",
        "TG_NOT_HELD = 18,",
        "TG_PAYMENT_MODE_MISMATCH = 19,",
        "TG_NO_LICENSE_AVAILABLE = 20,",
        "TG_LICENSE_TYPE_UNFIT = 21,",
        "TG_ALREADY_ASSIGNED = 22,",
        "TG_BAD_SIGNATURE = 23,",
        "TG_TAMPERED = 24,",
        "TG_BUSY = 27,",
        "TG_INSTALLATION_MISMATCH = 28,",
        "} tg_status;",
        "typedef struct tg_engine tg_engine;",
        "typedef struct tg_project tg_project;",
        "typedef struct tg_seats tg_seats;",
        "typedef struct tg_instance tg_instance;",
        "typedef struct tg_usage {",
        "typedef struct tg_seat_usage {",
        "typedef struct tg_open_options {",
        // `style = "both"`: every type has a tag and a typedef; declarations use the tags.
        "enum tg_status tg_engine_open(const char *state_dir, struct tg_engine **out);",
        "enum tg_status tg_consume_batch(struct tg_project *project,",
        "enum tg_status tg_usage_get(const struct tg_project *project, struct tg_usage *out);",
        // Calls that change the state take a non-const handle (docs/c-abi.md, "Const handles").
        "enum tg_status tg_seat_acquire(struct tg_seats *seats, uint64_t units);",
        "enum tg_status tg_seat_release(struct tg_seats *seats, uint64_t units);",
        "enum tg_status tg_seats_open(struct tg_engine *engine,",
        "enum tg_status tg_engine_flush(struct tg_engine *engine);",
        "enum tg_status tg_instance_check(const struct tg_instance *instance);",
        "const char *tg_status_name(tg_status status);",
        "const char *tg_last_error_message(void);",
        "const char *tg_version(void);",
        "uint32_t tg_version_number(void);",
        "const char *tg_status_message(tg_status status);",
        "#define TOLLGATE_VERSION_MAJOR ",
        "#define TOLLGATE_VERSION_MINOR ",
        "#define TOLLGATE_VERSION_PATCH ",
        "#define TOLLGATE_VERSION_NUMBER ",
        "typedef struct tg_usage_v2 {",
        "#define TG_KEY_ID_SIZE 65",
        "char active_key[TG_KEY_ID_SIZE];",
        "enum tg_status tg_usage_v2_get(const struct tg_project *project, struct tg_usage_v2 *out);",
        "typedef struct tg_event {",
        "TG_EVENT_SWITCHED = 3,",
        "TG_EVENT_RENEWAL_FAILED = 20,",
        "typedef void (*tg_event_callback)(const struct tg_event *event, void *user_data);",
        "enum tg_status tg_engine_on_event(struct tg_engine *engine,",
        // Calls that only read the state take a const engine.
        "enum tg_status tg_events_json(const struct tg_engine *engine,",
        "enum tg_status tg_project_list_json(const struct tg_engine *engine, char **out_json);",
        "enum tg_status tg_project_open(const struct tg_engine *engine,",
        "enum tg_status tg_instance_open(const struct tg_engine *engine,",
        "void tg_string_free(char *s);",
        "#include <stdbool.h>",
        "#include <stdint.h>",
        "#include <stddef.h>",
        "#ifndef TOLLGATE_H",
        "extern \"C\" {",
    ] {
        assert!(
            header.contains(declaration),
            "the header lacks `{declaration}`:\n{header}"
        );
    }
}
