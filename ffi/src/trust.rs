//! Trusted vendor keys: opening a state that trusts them, trusting one more, listing them.
//!
//! A vendor public key is passed as the text of its `vendor.pub` file (two lines: the header
//! `tollgate-vendor-public-1`, then the key in base64), as `tollgate license keygen` writes it.
//! Once a state trusts a vendor key, every offline key added to it (`tg_key_add`,
//! `tg_key_add_reserve`, `tg_key_replace`, `tg_key_add_reserve_bulk`) must be a license file
//! signed by a trusted key, else `TG_BAD_SIGNATURE`. A state keeps every key it was told to
//! trust: opening it later with `tg_engine_open` still enforces them.

use std::ffi::c_char;

use tollgate_core::{Engine, Options, VendorPublic};

use crate::boundary::{invalid_value, json_out, slice, text};
use crate::engine::{tg_engine, tg_open_options};
use crate::status::tg_status;

/// Opens (creating if needed) the state directory `state_dir` like `tg_engine_open_with`, and
/// records in it the `count` vendor public keys of `public_keys` (each the text of a
/// `vendor.pub` file) as trusted. `options` may be NULL for the defaults; `public_keys` may be
/// NULL only when `count` is 0. A key text that is not a vendor public key is
/// `TG_INVALID_ARGUMENT`, and the state is then not opened. Stores the engine in `*out` (NULL on
/// failure).
///
/// Blocks while another process makes an admin change to the state (it waits for the admin
/// lock); `tg_engine_open_with_options` can bound the wait.
///
/// # Safety
/// `state_dir` is NULL or a NUL-terminated string; `options` is NULL or points to a
/// `tg_open_options`; `public_keys` is NULL or points to `count` pointers, each NULL or a
/// NUL-terminated string; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_open_trusted(
    state_dir: *const c_char,
    options: *const tg_open_options,
    public_keys: *const *const c_char,
    count: usize,
    out: *mut *mut tg_engine,
) -> tg_status {
    boundary!({
        let mut out = out!(out);
        out.write(std::ptr::null_mut());
        let state_dir = text!(state_dir);
        // SAFETY: the caller guarantees `options` is NULL or points to a `tg_open_options`.
        let mut options: Options = match unsafe { options.as_ref() } {
            Some(options) => (*options).into(),
            None => Options::default(),
        };
        // SAFETY: the caller guarantees `public_keys` is NULL or holds `count` pointers.
        let texts = unsafe { slice(public_keys, count, "public_keys") }?;
        for (i, &key) in texts.iter().enumerate() {
            if key.is_null() {
                return Err(invalid_value(
                    "public_keys",
                    format_args!("element {i} is NULL"),
                ));
            }
            // SAFETY: non-NULL; the caller guarantees a NUL-terminated string.
            let key = unsafe { text(key, "public_keys") }?;
            let key = VendorPublic::parse(key)
                .map_err(|e| invalid_value("public_keys", format_args!("element {i}: {e}")))?;
            options.trusted_keys.push(key);
        }
        out.write(tg_engine::handle(Engine::open_with(state_dir, options)?));
        Ok(())
    })
}

/// Trusts the vendor public key `public_key` (the text of a `vendor.pub` file) in this state
/// from now on, for every process, with an audit event `vendor_key_trusted`; trusting a key
/// already trusted changes nothing. A trusted key is never forgotten.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `public_key` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_trust(
    engine: *mut tg_engine,
    public_key: *const c_char,
) -> tg_status {
    boundary!({
        let engine = held!(engine);
        let key =
            VendorPublic::parse(text!(public_key)).map_err(|e| invalid_value("public_key", e))?;
        engine.core.trust(&key)?;
        Ok(())
    })
}

/// Stores in `*out_json` a JSON array of the vendor keys the state trusts, in the order it
/// began to trust them: `{"key": base64 public key, "added_at": RFC 3339}`; `[]` in development
/// mode. NULL on failure. Free it with `tg_string_free`.
///
/// # Safety
/// `engine` is NULL or an open engine; `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_trusted_keys_json(
    engine: *const tg_engine,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        json_out(&engine.core.trusted_keys()?, &mut out_json)
    })
}
