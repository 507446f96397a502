//! Opening, flushing and closing a state directory.

use std::ffi::c_char;
use std::time::Duration;

use tollgate_core::{Engine, Options, DEFAULT_CAPACITY};

use crate::boundary::{drop_handle, new_handle};
use crate::events::Listener;
use crate::status::tg_status;

/// An open state directory. Opaque: made by `tg_engine_open`, released by `tg_engine_close`.
/// One engine may be used from any number of threads at once.
#[allow(non_camel_case_types)]
pub struct tg_engine {
    /// The engine itself.
    pub(crate) core: Engine,
    /// The thread calling the `tg_engine_on_event` callback, if one is set.
    pub(crate) listener: Listener,
}

impl tg_engine {
    /// Hands `core` to C as an engine handle.
    pub(crate) fn handle(core: Engine) -> *mut tg_engine {
        new_handle(tg_engine {
            core,
            listener: Listener::default(),
        })
    }
}

/// How to open a state directory (`tg_engine_open_with`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tg_open_options {
    /// Number of slot-pair records when the state is created (a project uses one per license
    /// class it holds); 0 means the default (65536). Ignored when the state already exists.
    pub capacity: u32,
    /// If not 0, a background thread makes the state durable against an operating-system crash
    /// (as `tg_engine_flush` does) every this many milliseconds; 0 means no background flush.
    pub flush_interval_ms: u64,
}

impl From<tg_open_options> for Options {
    fn from(options: tg_open_options) -> Options {
        Options {
            capacity: match options.capacity {
                0 => DEFAULT_CAPACITY,
                n => n,
            },
            flush_interval: (options.flush_interval_ms > 0)
                .then(|| Duration::from_millis(options.flush_interval_ms)),
            ..Options::default()
        }
    }
}

/// Opens (creating if needed) the state directory `state_dir` with default options and stores
/// the engine in `*out` (NULL on failure). A damaged or foreign state is refused with
/// `TG_CORRUPT_STATE` and left untouched.
///
/// # Safety
/// `state_dir` is NULL or a NUL-terminated string; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_open(
    state_dir: *const c_char,
    out: *mut *mut tg_engine,
) -> tg_status {
    boundary!({
        let mut out = out!(out);
        out.write(std::ptr::null_mut());
        let state_dir = text!(state_dir);
        out.write(tg_engine::handle(Engine::open(state_dir)?));
        Ok(())
    })
}

/// Opens (creating if needed) the state directory `state_dir` with `options` and stores the
/// engine in `*out` (NULL on failure).
///
/// # Safety
/// `state_dir` is NULL or a NUL-terminated string; `options` is NULL or points to a
/// `tg_open_options`; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_open_with(
    state_dir: *const c_char,
    options: *const tg_open_options,
    out: *mut *mut tg_engine,
) -> tg_status {
    boundary!({
        let mut out = out!(out);
        out.write(std::ptr::null_mut());
        let state_dir = text!(state_dir);
        let options = *borrow!(options);
        out.write(tg_engine::handle(Engine::open_with(
            state_dir,
            options.into(),
        )?));
        Ok(())
    })
}

/// Closes an engine. Project handles opened from it stay valid until they are closed
/// themselves: each keeps the state open. Events the hot path queued are written to the audit
/// log before the last of them goes. The event callback (`tg_engine_on_event`) is not called
/// after this returns; if a call to it is in progress on another thread, this waits for it to
/// return. Called from inside the callback, it returns at once and the callback is not called
/// again. NULL is a no-op.
///
/// In a child of `fork()`, closing an engine the parent opened frees nothing and touches
/// nothing the parent uses: no thread is joined, no lock released, nothing written (see "Fork"
/// in the header's preamble).
///
/// # Safety
/// `engine` is NULL or from `tg_engine_open`, not closed yet, and no other thread is using it.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_close(engine: *mut tg_engine) {
    boundary!({
        // SAFETY: the caller hands back a handle from `tg_engine_open`, used by no one else.
        unsafe { drop_handle(engine) }
    })
}

/// Makes the state durable against an operating-system crash: writes the hot file's dirty pages
/// (`msync`) and checkpoints the catalog. Without it, every acknowledged grant still survives
/// the death of the process.
///
/// # Safety
/// `engine` is NULL or an open engine.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_flush(engine: *mut tg_engine) -> tg_status {
    boundary!({
        let engine = borrow!(engine);
        engine.core.flush()?;
        Ok(())
    })
}
