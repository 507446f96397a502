//! Online renewal: pointing an engine at the vendor's activation service, renewing now, and
//! what a user interface shows.
//!
//! Once enabled, a background thread of the engine renews every online Active key that has an
//! activation code and no reserve, ahead of its expiry: the successor, a license the service
//! signs and the engine verifies like any other, becomes the reserve, and the hot path
//! switches to it at expiry. When renewal fails nothing changes; an audit event
//! `renewal_failed` and `tg_renewal_status_json` carry the message saying manual renewal is
//! needed, and the thread tries again later.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use tollgate_activation::{ActivationClient, ClientOptions};
use tollgate_core::{Renewal, DEFAULT_RENEWAL_CHECK, DEFAULT_RENEWAL_LEAD, DEFAULT_RENEWAL_RETRY};

use crate::boundary::{invalid_value, json_out};
use crate::engine::tg_engine;
use crate::status::tg_status;

/// How an engine renews its keys (`tg_engine_enable_renewal`). Every field's 0 means its
/// default.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tg_renewal_options {
    /// How long before the Active key expires its renewal starts, in seconds; 0 means 7 days.
    pub lead_secs: u64,
    /// How long after a failed renewal it is tried again, in seconds; 0 means 1 hour.
    pub retry_secs: u64,
    /// How often the engine looks for keys to renew, in milliseconds; 0 means 60 000.
    pub check_every_ms: u64,
    /// The longest one request to the service may take, in milliseconds; 0 means 10 000.
    pub timeout_ms: u64,
    /// How many requests one renewal makes at most, with growing pauses between them, before
    /// it counts as failed; 0 means 5.
    pub attempts: u32,
}

impl tg_renewal_options {
    fn client_options(&self) -> ClientOptions {
        let default = ClientOptions::default();
        ClientOptions {
            timeout: or(self.timeout_ms, Duration::from_millis, default.timeout),
            retries: match self.attempts {
                0 => default.retries,
                n => n - 1,
            },
            ..default
        }
    }

    fn renewal(&self, client: ActivationClient) -> Renewal {
        Renewal {
            lead: or(self.lead_secs, Duration::from_secs, DEFAULT_RENEWAL_LEAD),
            retry: or(self.retry_secs, Duration::from_secs, DEFAULT_RENEWAL_RETRY),
            check_every: or(
                self.check_every_ms,
                Duration::from_millis,
                DEFAULT_RENEWAL_CHECK,
            ),
            ..Renewal::new(Arc::new(client))
        }
    }
}

/// `value` in its unit, or `default` when it is 0.
fn or(value: u64, unit: fn(u64) -> Duration, default: Duration) -> Duration {
    match value {
        0 => default,
        n => unit(n),
    }
}

/// Renews the engine's online keys through the activation service at `activation_url`
/// (`http://HOST:PORT` or `https://…`, as `tollgate serve-activation` prints it), from now on,
/// in a background thread; `options` may be NULL for the defaults. Enabling it again replaces
/// the service and options. A URL that is not one is `TG_INVALID_ARGUMENT`; nothing is sent
/// until a key is due.
///
/// # Safety
/// `engine` is NULL or an open engine; `activation_url` is NULL or a NUL-terminated string;
/// `options` is NULL or points to a `tg_renewal_options`.
#[no_mangle]
pub unsafe extern "C" fn tg_engine_enable_renewal(
    engine: *mut tg_engine,
    activation_url: *const c_char,
    options: *const tg_renewal_options,
) -> tg_status {
    boundary!({
        let engine = held!(engine);
        let url = text!(activation_url);
        // SAFETY: the caller guarantees `options` is NULL or points to a `tg_renewal_options`.
        let options = unsafe { options.as_ref() }.copied().unwrap_or_default();
        let client = ActivationClient::new(url, options.client_options())
            .map_err(|e| invalid_value("activation_url", e))?;
        engine.core.enable_renewal(options.renewal(client))?;
        Ok(())
    })
}

/// Renews `project`'s online Active keys that have an activation code and no reserve now,
/// whatever their expiry, waiting for the service, and stores in `*out_json` a JSON array of
/// what was renewed: `{"project", "old", "new", "role": "reserved"|"active"}` (`[]` when
/// nothing needed it). A failure is `TG_RENEWAL_FAILED`, changes nothing, and its message says
/// that manual renewal is needed. NULL on failure. Free it with `tg_string_free`.
///
/// Blocks for the vendor's activation service, up to its timeout, and while another process
/// or thread makes an admin change to the state, at most the engine's admin-lock timeout
/// (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `project` is NULL or a NUL-terminated string;
/// `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_renew_now(
    engine: *mut tg_engine,
    project: *const c_char,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        json_out(&engine.core.renew_now(text!(project))?, &mut out_json)
    })
}

/// Stores in `*out_json` a JSON array of the renewals that are due: each online Active key with
/// an activation code expiring within the renewal lead, `{"project", "key", "expires_at",
/// "state": "pending"|"renewed"|"failed", "successor", "message"}`, where a failed one's
/// `message` says that manual renewal is needed; `[]` when renewal is not enabled. NULL on
/// failure. Free it with `tg_string_free`.
///
/// # Safety
/// `engine` is NULL or an open engine; `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_renewal_status_json(
    engine: *const tg_engine,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        json_out(&engine.core.renewal_status()?, &mut out_json)
    })
}
