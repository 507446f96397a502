//! License pools (rules R22–R26 in docs/rules.md): buying licenses, listing them, and how many to
//! buy.
//!
//! `purchase_json` is the purchase JSON of the core (`tollgate_core::Purchase`):
//! `{"license_type": "server"|"desktop"|"workstation", "quantity": 5, "payment_mode":
//! "monthly"|"annual", "kind": "commercial"|"trial", "company": "Acme", "expires_at":
//! "2027-12-31T00:00:00Z", "auto_renew": false, "premium_support": false, "onboarding": false}`;
//! all but the first three fields are optional.

use std::ffi::c_char;

use tollgate_core::{LicenseFilter, Purchase};

use crate::boundary::json_out;
use crate::engine::tg_engine;
use crate::status::tg_status;

/// Buys licenses into the global pool, or into a company's pool when the purchase names one,
/// and stores in `*out_json` a JSON array of the new license ids (NULL on failure; free it
/// with `tg_string_free`). The first purchase fixes the payment mode: a later purchase with the
/// other mode is refused with `TG_PAYMENT_MODE_MISMATCH` and buys nothing.
///
/// Blocks while another process, or another thread, makes an admin change to the state (it
/// waits for the admin lock), at most the engine's admin-lock timeout (`TG_BUSY`).
///
/// # Safety
/// `engine` is NULL or an open engine; `purchase_json` is NULL or a NUL-terminated string;
/// `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_pool_buy(
    engine: *mut tg_engine,
    purchase_json: *const c_char,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        let purchase = Purchase::from_json(text!(purchase_json))?;
        json_out(&engine.core.buy_licenses(&purchase)?, &mut out_json)
    })
}

/// Stores in `*out_json` the pool licenses that pass `filter_json`, grouped by type: a JSON
/// array of `{"license_type": type, "count": n, "used": n, "licenses": [...], "message":
/// text|null}`, where `message` is "You have not purchased licenses of this type" for a type
/// never bought (as the filter's kind, when it has one). The filter's fields are all optional
/// and combine: `{"license_type": type, "company": name (its pool and the licenses assigned to
/// its instances), "kind": "commercial"|"trial", "valid": bool, "used": bool (commercial
/// licenses only), "auto_renew_only": bool, "search": text}`; `"{}"` or NULL lists everything.
/// NULL on failure. Free it with `tg_string_free`.
///
/// # Safety
/// `engine` is NULL or an open engine; `filter_json` is NULL or a NUL-terminated string;
/// `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_pool_list_json(
    engine: *const tg_engine,
    filter_json: *const c_char,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        let filter = match optional_text!(filter_json) {
            Some(json) => LicenseFilter::from_json(json)?,
            None => LicenseFilter::default(),
        };
        json_out(&engine.core.list_licenses(&filter)?, &mut out_json)
    })
}

/// Stores in `*out_json` how many licenses of each type to buy so that every instance is
/// licensed for the next `days` days: `{"days": n, "types": [{"license_type": type, "needed":
/// n, "covered": n, "to_buy": n}, ...], "needs": [{"instance": name, "reason":
/// "unlicensed"|"expires_soon", "license_type": type, "company": name|null, "covered_by":
/// id|null}, ...]}`. NULL on failure. Free it with `tg_string_free`.
///
/// # Safety
/// `engine` is NULL or an open engine; `out_json` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn tg_pool_shortfall_json(
    engine: *const tg_engine,
    days: u32,
    out_json: *mut *mut c_char,
) -> tg_status {
    boundary!({
        let mut out_json = out!(out_json);
        out_json.write(std::ptr::null_mut());
        let engine = held!(engine);
        json_out(&engine.core.shortfall(days)?, &mut out_json)
    })
}
