//! The audit log.

use std::ffi::c_char;

use crate::boundary::json_out;
use crate::engine::tg_engine;
use crate::status::tg_status;

/// Stores in `*out_json` a JSON array of up to `max` audit events with a sequence number above
/// `after_seq`, oldest first, from every process sharing the state: `{"seq": n, "at": RFC 3339,
/// "project": name, "kind": "switched"|"key_added"|"threshold"|"refused"|…, …}`. Poll with the
/// last `seq` seen. Events of the hot path reach the log a few milliseconds after the call that
/// caused them (at the latest when the engine closes). NULL on failure. Free it with
/// `tg_string_free`.
///
/// # Safety
/// `engine` is NULL or an open engine; `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_events_json(
    engine: *mut tg_engine,
    after_seq: u64,
    max: usize,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = borrow!(engine);
        json_out(&engine.0.events_after(after_seq, max)?, &mut out_json)
    })
}
