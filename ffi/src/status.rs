//! The one status enum of the C ABI, its names, and the mapping from core errors.

use std::ffi::{c_char, CStr};

use tollgate_core::Error;

/// What every fallible Tollgate function returns. `TG_OK` is success; any other value is a
/// refusal or an error, described in words by `tg_last_error_message()` on the same thread.
///
/// The numbers are part of the ABI: they never change once released, and new statuses only
/// ever take new numbers.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum tg_status {
    /// Success.
    TG_OK = 0,
    /// An argument is NULL, not valid UTF-8, or malformed (bad name, bad key JSON, limit out of
    /// range); the message names the argument or field.
    TG_INVALID_ARGUMENT = 1,
    /// No such project, or no such reserve key in the project.
    TG_NOT_FOUND = 2,
    /// A project of that name already exists.
    TG_ALREADY_EXISTS = 3,
    /// The request needs more than the Active and Reserved keys have left; nothing was charged.
    TG_EXHAUSTED = 4,
    /// Every key that could cover the request has expired, or the key being added has.
    TG_EXPIRED = 5,
    /// The slot pair has no Active key.
    TG_NO_ACTIVE_KEY = 6,
    /// The pair already holds a Reserved key: one additional key per pair.
    TG_RESERVE_OCCUPIED = 7,
    /// The reserve's delivery (online/offline) differs from the Active key's.
    TG_TYPE_MISMATCH = 8,
    /// The reserve's edition differs from the Active key's.
    TG_EDITION_MISMATCH = 9,
    /// The reserve limits something else than the Active key (scheme or class).
    TG_SCHEME_MISMATCH = 10,
    /// A subscription key takes no reserve.
    TG_SUBSCRIPTION = 11,
    /// The key id is already used in this state.
    TG_DUPLICATE_KEY = 12,
    /// The state directory is damaged, truncated or of another format; it was left untouched.
    TG_CORRUPT_STATE = 13,
    /// An operating-system or embedded-store error.
    TG_IO = 14,
    /// The state's project table is full.
    TG_CAPACITY = 15,
    /// A Rust panic was caught at the boundary; the message says where.
    TG_PANIC = 16,
    /// The operation is not available for the key's license class.
    TG_UNSUPPORTED = 17,
}

// The C side declares `typedef enum tg_status {...} tg_status;`; `repr(C)` makes Rust use the C
// compiler's enum layout, and every supported target lays it out as 32 bits.
const _: () = assert!(std::mem::size_of::<tg_status>() == std::mem::size_of::<u32>());

/// A `tg_status` as C passes it in: any 32-bit value. Taking the raw number, rather than the
/// enum, means an out-of-range code from C is answered instead of being undefined behaviour.
/// cbindgen is told to print it as `tg_status` (see `cbindgen.toml`).
#[allow(non_camel_case_types)]
pub type tg_status_code = u32;

impl tg_status {
    /// Every status, in numeric order.
    const ALL: [tg_status; 18] = [
        tg_status::TG_OK,
        tg_status::TG_INVALID_ARGUMENT,
        tg_status::TG_NOT_FOUND,
        tg_status::TG_ALREADY_EXISTS,
        tg_status::TG_EXHAUSTED,
        tg_status::TG_EXPIRED,
        tg_status::TG_NO_ACTIVE_KEY,
        tg_status::TG_RESERVE_OCCUPIED,
        tg_status::TG_TYPE_MISMATCH,
        tg_status::TG_EDITION_MISMATCH,
        tg_status::TG_SCHEME_MISMATCH,
        tg_status::TG_SUBSCRIPTION,
        tg_status::TG_DUPLICATE_KEY,
        tg_status::TG_CORRUPT_STATE,
        tg_status::TG_IO,
        tg_status::TG_CAPACITY,
        tg_status::TG_PANIC,
        tg_status::TG_UNSUPPORTED,
    ];

    /// The status with number `code`, if there is one.
    pub fn from_code(code: u32) -> Option<tg_status> {
        usize::try_from(code)
            .ok()
            .and_then(|i| tg_status::ALL.get(i).copied())
    }

    /// The status's C name, e.g. `TG_EXHAUSTED`.
    pub fn name(self) -> &'static CStr {
        match self {
            tg_status::TG_OK => c"TG_OK",
            tg_status::TG_INVALID_ARGUMENT => c"TG_INVALID_ARGUMENT",
            tg_status::TG_NOT_FOUND => c"TG_NOT_FOUND",
            tg_status::TG_ALREADY_EXISTS => c"TG_ALREADY_EXISTS",
            tg_status::TG_EXHAUSTED => c"TG_EXHAUSTED",
            tg_status::TG_EXPIRED => c"TG_EXPIRED",
            tg_status::TG_NO_ACTIVE_KEY => c"TG_NO_ACTIVE_KEY",
            tg_status::TG_RESERVE_OCCUPIED => c"TG_RESERVE_OCCUPIED",
            tg_status::TG_TYPE_MISMATCH => c"TG_TYPE_MISMATCH",
            tg_status::TG_EDITION_MISMATCH => c"TG_EDITION_MISMATCH",
            tg_status::TG_SCHEME_MISMATCH => c"TG_SCHEME_MISMATCH",
            tg_status::TG_SUBSCRIPTION => c"TG_SUBSCRIPTION",
            tg_status::TG_DUPLICATE_KEY => c"TG_DUPLICATE_KEY",
            tg_status::TG_CORRUPT_STATE => c"TG_CORRUPT_STATE",
            tg_status::TG_IO => c"TG_IO",
            tg_status::TG_CAPACITY => c"TG_CAPACITY",
            tg_status::TG_PANIC => c"TG_PANIC",
            tg_status::TG_UNSUPPORTED => c"TG_UNSUPPORTED",
        }
    }
}

impl From<&Error> for tg_status {
    fn from(error: &Error) -> tg_status {
        match error {
            Error::InvalidArgument { .. } => tg_status::TG_INVALID_ARGUMENT,
            Error::ProjectNotFound { .. } | Error::ReserveNotFound { .. } => {
                tg_status::TG_NOT_FOUND
            }
            Error::ProjectExists { .. } => tg_status::TG_ALREADY_EXISTS,
            Error::Exhausted { .. } => tg_status::TG_EXHAUSTED,
            Error::Expired | Error::KeyExpired { .. } => tg_status::TG_EXPIRED,
            Error::NoActiveKey => tg_status::TG_NO_ACTIVE_KEY,
            Error::ReserveOccupied { .. } => tg_status::TG_RESERVE_OCCUPIED,
            Error::TypeMismatch { .. } => tg_status::TG_TYPE_MISMATCH,
            Error::EditionMismatch { .. } => tg_status::TG_EDITION_MISMATCH,
            Error::SchemeMismatch { .. } => tg_status::TG_SCHEME_MISMATCH,
            Error::Subscription { .. } => tg_status::TG_SUBSCRIPTION,
            Error::DuplicateKey { .. } => tg_status::TG_DUPLICATE_KEY,
            Error::CorruptState { .. } => tg_status::TG_CORRUPT_STATE,
            Error::Io { .. } | Error::Store { .. } => tg_status::TG_IO,
            Error::Capacity { .. } => tg_status::TG_CAPACITY,
            Error::Unsupported { .. } => tg_status::TG_UNSUPPORTED,
            // A variant added to the core after this table: still an error, and its message
            // (recorded by the caller) says what it is.
            _ => tg_status::TG_IO,
        }
    }
}

/// The C name of a status, e.g. `"TG_EXHAUSTED"`, as a static NUL-terminated string; a number
/// that is no status gives `"TG_UNKNOWN"`. Never NULL; never free it.
#[no_mangle]
pub extern "C" fn tg_status_name(status: tg_status_code) -> *const c_char {
    boundary!({
        tg_status::from_code(status)
            .map_or(c"TG_UNKNOWN", tg_status::name)
            .as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_positions_and_names_match() {
        for (i, status) in tg_status::ALL.into_iter().enumerate() {
            assert_eq!(status as usize, i);
            assert_eq!(tg_status::from_code(i as u32), Some(status));
            assert_eq!(
                status.name().to_str().unwrap(),
                format!("{status:?}"),
                "the C name is the Rust variant name"
            );
        }
        assert_eq!(tg_status::from_code(18), None);
        assert_eq!(tg_status::from_code(u32::MAX), None);
    }
}
