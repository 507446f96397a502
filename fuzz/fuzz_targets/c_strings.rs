//! Every C entry point that takes a string, called through the `tollgate` crate's `extern "C"`
//! functions with arbitrary NUL-terminated byte strings (invalid UTF-8, control characters,
//! over-long names, broken key JSON), on one engine opened once for the whole run.
//!
//! Input: byte 0 picks the function (mod 8, in the order of `Call`); byte 1 holds flags (bit 0:
//! name the known project instead; bit 1: put the text in a key JSON as its id, unescaped);
//! byte 2 is the length of the project name that follows; the rest is the text (key JSON or
//! key id). A missing byte reads as 0.
//!
//! Asserted for every call: the status is one of `tg_status`, never `TG_PANIC` (a panic caught
//! at the boundary), `TG_IO` or `TG_CORRUPT_STATE`; an argument that is not UTF-8 gives
//! `TG_INVALID_ARGUMENT`; a failure leaves a non-empty last-error message; an out-pointer is
//! set exactly on success, to JSON that parses or to a handle that closes.
#![no_main]

use std::ffi::{c_char, CStr};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate::{
    tg_engine, tg_engine_open, tg_key_add, tg_key_add_reserve, tg_key_remove_reserve,
    tg_key_replace, tg_keys_json, tg_last_error_message, tg_project, tg_project_close,
    tg_project_create, tg_project_open, tg_project_view_json, tg_status, tg_status_name,
    tg_string_free,
};
use tollgate_fuzz::{key_json_with_raw_id, max_key_json, state_dir};

/// A project that exists and holds an Active key, so that calls naming it get past the lookup.
const KNOWN: &str = "fuzz";

#[derive(Debug, Clone, Copy)]
enum Call {
    ProjectCreate,
    KeyAdd,
    KeyAddReserve,
    KeyReplace,
    KeyRemoveReserve,
    ProjectOpen,
    ProjectViewJson,
    KeysJson,
}

const CALLS: [Call; 8] = [
    Call::ProjectCreate,
    Call::KeyAdd,
    Call::KeyAddReserve,
    Call::KeyReplace,
    Call::KeyRemoveReserve,
    Call::ProjectOpen,
    Call::ProjectViewJson,
    Call::KeysJson,
];

/// One call, decoded from the fuzzer's bytes as the module documentation says.
struct Input<'a> {
    call: Call,
    /// Use the known project instead of `project`.
    known_project: bool,
    project: &'a [u8],
    /// Put `text` in a key JSON as its id, unescaped, instead of passing it as it is.
    text_as_key_id: bool,
    text: &'a [u8],
}

impl<'a> Input<'a> {
    fn decode(data: &'a [u8]) -> Input<'a> {
        let byte = |i: usize| data.get(i).copied().unwrap_or(0);
        let rest = data.get(3..).unwrap_or(&[]);
        let (project, text) = rest.split_at(usize::from(byte(2)).min(rest.len()));
        Input {
            call: CALLS[usize::from(byte(0)) % CALLS.len()],
            known_project: byte(1) & 1 != 0,
            project,
            text_as_key_id: byte(1) & 2 != 0,
            text,
        }
    }
}

/// The engine, shared by every input; a raw pointer as C holds it.
struct Engine(*mut tg_engine);

// SAFETY: a `tg_engine` may be used from any thread (tollgate.h); libFuzzer runs inputs on one
// thread anyway.
unsafe impl Send for Engine {}
// SAFETY: as above.
unsafe impl Sync for Engine {}

fn engine() -> *mut tg_engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let dir = state_dir("c_strings");
            let dir = c_string(dir.to_str().expect("a UTF-8 temporary path").as_bytes());
            let mut engine = std::ptr::null_mut();
            // SAFETY: `dir` is NUL-terminated and `engine` is writable.
            let status = unsafe { tg_engine_open(dir.as_ptr(), &mut engine) };
            assert_eq!(status, tg_status::TG_OK, "{}", last_error());
            let known = c_string(KNOWN.as_bytes());
            let key = c_string(max_key_json("fuzz-active").as_bytes());
            // SAFETY: an open engine and NUL-terminated strings.
            unsafe {
                assert_eq!(tg_project_create(engine, known.as_ptr()), tg_status::TG_OK);
                assert_eq!(
                    tg_key_add(engine, known.as_ptr(), key.as_ptr()),
                    tg_status::TG_OK
                );
            }
            Engine(engine)
        })
        .0
}

/// `bytes` followed by a NUL: what a C caller passes. An interior NUL ends the string early,
/// as it would in C.
fn c_string(bytes: &[u8]) -> Vec<c_char> {
    bytes
        .iter()
        .map(|&b| b as c_char)
        .chain(std::iter::once(0))
        .collect()
}

/// Whether the C string `bytes` (up to its first NUL) is UTF-8.
fn is_utf8(bytes: &[u8]) -> bool {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    std::str::from_utf8(&bytes[..end]).is_ok()
}

fn last_error() -> String {
    // SAFETY: never NULL; valid until the next Tollgate call on this thread, and copied here.
    unsafe { CStr::from_ptr(tg_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// Checks a returned status against the contract; `utf8` says whether every string argument
/// was UTF-8.
fn check_status(call: &Call, status: tg_status, utf8: bool) {
    let code = status as u32;
    // SAFETY: `tg_status_name` returns a static NUL-terminated string for any number.
    let name = unsafe { CStr::from_ptr(tg_status_name(code)) };
    assert_ne!(name.to_bytes(), b"TG_UNKNOWN", "{call:?} returned {code}");
    let message = last_error();
    assert!(
        !matches!(
            status,
            tg_status::TG_PANIC | tg_status::TG_IO | tg_status::TG_CORRUPT_STATE
        ),
        "{call:?} returned {name:?}: {message}"
    );
    if !utf8 {
        assert_eq!(
            status,
            tg_status::TG_INVALID_ARGUMENT,
            "{call:?}: {message}"
        );
    }
    if status != tg_status::TG_OK {
        assert!(
            !message.is_empty(),
            "{call:?} returned {name:?} without a message"
        );
    }
}

/// Checks a `char **out_json` after the call, and frees it.
fn check_json(call: &Call, status: tg_status, json: *mut c_char) {
    if status != tg_status::TG_OK {
        assert!(json.is_null(), "{call:?} failed but set out_json");
        return;
    }
    assert!(!json.is_null(), "{call:?} succeeded without out_json");
    // SAFETY: a NUL-terminated string Tollgate just returned.
    let text = unsafe { CStr::from_ptr(json) }.to_str().map(str::to_owned);
    // SAFETY: returned by Tollgate and not freed yet.
    unsafe { tg_string_free(json) };
    let text = text.unwrap_or_else(|_| panic!("{call:?} returned JSON that is not UTF-8"));
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
        panic!("{call:?} returned JSON that does not parse ({e}): {text}");
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input::decode(data);
    let engine = engine();
    let project_bytes = if input.known_project {
        KNOWN.as_bytes()
    } else {
        input.project
    };
    let text_bytes = if input.text_as_key_id {
        key_json_with_raw_id(input.text, 1 << 20)
    } else {
        input.text.to_vec()
    };
    let (project, text) = (c_string(project_bytes), c_string(&text_bytes));
    let (p, t) = (project.as_ptr(), text.as_ptr());
    let call = &input.call;
    let (mut json, mut handle): (*mut c_char, *mut tg_project) =
        (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: `engine` is open for the whole run; `p` and `t` are NUL-terminated and outlive
    // the call; the out-pointers point to locals.
    let status = unsafe {
        match call {
            Call::ProjectCreate => tg_project_create(engine, p),
            Call::KeyAdd => tg_key_add(engine, p, t),
            Call::KeyAddReserve => tg_key_add_reserve(engine, p, t),
            Call::KeyReplace => tg_key_replace(engine, p, t),
            Call::KeyRemoveReserve => tg_key_remove_reserve(engine, p, t),
            Call::ProjectOpen => tg_project_open(engine, p, &mut handle),
            Call::ProjectViewJson => tg_project_view_json(engine, p, &mut json),
            Call::KeysJson => tg_keys_json(engine, p, &mut json),
        }
    };
    let takes_text = matches!(
        call,
        Call::KeyAdd | Call::KeyAddReserve | Call::KeyReplace | Call::KeyRemoveReserve
    );
    let utf8 = is_utf8(project_bytes) && (!takes_text || is_utf8(&text_bytes));
    check_status(call, status, utf8);
    match call {
        Call::ProjectCreate if status == tg_status::TG_OK => {
            let end = project_bytes.iter().position(|&b| b == 0);
            let name = std::str::from_utf8(&project_bytes[..end.unwrap_or(project_bytes.len())])
                .expect("a created name is UTF-8");
            tollgate_core::check_name("project name", name)
                .expect("a created name passes check_name");
        }
        Call::ProjectOpen => {
            assert_eq!(handle.is_null(), status != tg_status::TG_OK);
            // SAFETY: NULL or a handle just opened and used by no one else.
            unsafe { tg_project_close(handle) };
        }
        Call::ProjectViewJson | Call::KeysJson => check_json(call, status, json),
        _ => {}
    }
});
