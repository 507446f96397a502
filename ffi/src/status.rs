//! The one status enum of the C ABI, its names, and the mapping from core errors.

use std::ffi::{c_char, CStr};

use tollgate_core::{Error, Refusal};

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
    /// No such project, instance, group or reserve key, or the instance holds no pool license;
    /// or no state in a directory opened with `tg_engine_options_set_open_existing`.
    TG_NOT_FOUND = 2,
    /// A project of that name already exists.
    TG_ALREADY_EXISTS = 3,
    /// The request needs more than the Active and Reserved keys have left, or more seats than
    /// the Active key has free; nothing was charged or taken.
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
    /// The state's project table, or its table of seat holders, is full.
    TG_CAPACITY = 15,
    /// A Rust panic was caught at the boundary; the message says where.
    TG_PANIC = 16,
    /// The operation is not available for the key's license class.
    TG_UNSUPPORTED = 17,
    /// A release gave back more seats than the handle's owner holds; nothing was released.
    TG_NOT_HELD = 18,
    /// A purchase chose another payment mode than the first purchase, which fixed it.
    TG_PAYMENT_MODE_MISMATCH = 19,
    /// No valid, unassigned license of a fitting type is in the instance's company pool or in
    /// the global pool.
    TG_NO_LICENSE_AVAILABLE = 20,
    /// The license type asked for cannot license the instance's OS (macOS and Linux need a
    /// desktop or server license).
    TG_LICENSE_TYPE_UNFIT = 21,
    /// The instance already holds a valid license.
    TG_ALREADY_ASSIGNED = 22,
    /// The state trusts vendor keys and the key lacks a valid signature: an unsigned offline
    /// key, a license altered after signing, one signed by an untrusted key, or a malformed
    /// license file; the message says which. Nothing changed.
    TG_BAD_SIGNATURE = 23,
    /// The state directory was restored from an older copy, its hot file from an older one, or
    /// its ratchets edited; it is refused until an operator accepts it (`tollgate state
    /// accept-rollback`). Nothing changed.
    TG_TAMPERED = 24,
    /// The automatic renewal of an online key failed: the activation service was unreachable,
    /// slow, refused or answered garbage, or its license was refused. Nothing changed; the
    /// message says that manual renewal is needed.
    TG_RENEWAL_FAILED = 25,
    /// An activation code could not be activated: the activation service was unreachable,
    /// slow, refused the code (unknown, no activations left) or answered with something that is
    /// not a license for it. Nothing changed; the message gives the service's reason.
    TG_ACTIVATION_FAILED = 26,
    /// Another process, or another thread of this one, held the state's admin lock for longer
    /// than the admin-lock timeout of `tg_engine_options_set_admin_lock_timeout_ms`. Nothing
    /// changed; try again later.
    TG_BUSY = 27,
    /// The state was made by another installation than the one it was opened with (the
    /// installation directory of `tg_engine_options_set_installation_dir`, else
    /// `TOLLGATE_INSTALLATION`): the message names both directories. Open it with the
    /// installation directory that made it. Nothing changed.
    TG_INSTALLATION_MISMATCH = 28,
    /// Fleet mode: this host's leases of the key are spent and the fleet store cannot be
    /// reached (or has not answered yet) to lease more. Nothing was granted; not a license
    /// decision — try again. Never an unmetered grant.
    TG_UNAVAILABLE = 29,
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
    const ALL: [tg_status; 30] = [
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
        tg_status::TG_NOT_HELD,
        tg_status::TG_PAYMENT_MODE_MISMATCH,
        tg_status::TG_NO_LICENSE_AVAILABLE,
        tg_status::TG_LICENSE_TYPE_UNFIT,
        tg_status::TG_ALREADY_ASSIGNED,
        tg_status::TG_BAD_SIGNATURE,
        tg_status::TG_TAMPERED,
        tg_status::TG_RENEWAL_FAILED,
        tg_status::TG_ACTIVATION_FAILED,
        tg_status::TG_BUSY,
        tg_status::TG_INSTALLATION_MISMATCH,
        tg_status::TG_UNAVAILABLE,
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
            tg_status::TG_NOT_HELD => c"TG_NOT_HELD",
            tg_status::TG_PAYMENT_MODE_MISMATCH => c"TG_PAYMENT_MODE_MISMATCH",
            tg_status::TG_NO_LICENSE_AVAILABLE => c"TG_NO_LICENSE_AVAILABLE",
            tg_status::TG_LICENSE_TYPE_UNFIT => c"TG_LICENSE_TYPE_UNFIT",
            tg_status::TG_ALREADY_ASSIGNED => c"TG_ALREADY_ASSIGNED",
            tg_status::TG_BAD_SIGNATURE => c"TG_BAD_SIGNATURE",
            tg_status::TG_TAMPERED => c"TG_TAMPERED",
            tg_status::TG_RENEWAL_FAILED => c"TG_RENEWAL_FAILED",
            tg_status::TG_ACTIVATION_FAILED => c"TG_ACTIVATION_FAILED",
            tg_status::TG_BUSY => c"TG_BUSY",
            tg_status::TG_INSTALLATION_MISMATCH => c"TG_INSTALLATION_MISMATCH",
            tg_status::TG_UNAVAILABLE => c"TG_UNAVAILABLE",
        }
    }
}

impl tg_status {
    /// What the status means, in words: lowercase, no trailing period, as `sqlite3_errstr`
    /// gives it. The message of a failed call (`tg_last_error_message`) names the values at
    /// fault; this one is the same for every call.
    pub fn message(self) -> &'static CStr {
        match self {
            tg_status::TG_OK => c"success",
            tg_status::TG_INVALID_ARGUMENT => {
                c"an argument is NULL, not valid UTF-8, or malformed"
            }
            tg_status::TG_NOT_FOUND => c"no such project, instance, group, reserve key or license",
            tg_status::TG_ALREADY_EXISTS => c"a project of that name already exists",
            tg_status::TG_EXHAUSTED => {
                c"the request needs more than the license keys have left; nothing was charged"
            }
            tg_status::TG_EXPIRED => c"every license key that could cover the request has expired",
            tg_status::TG_NO_ACTIVE_KEY => c"the slot pair has no active license key",
            tg_status::TG_RESERVE_OCCUPIED => c"the slot pair already holds a reserved key",
            tg_status::TG_TYPE_MISMATCH => {
                c"the reserved key is online and the active key offline, or the other way round"
            }
            tg_status::TG_EDITION_MISMATCH => {
                c"the reserved key's edition differs from the active key's"
            }
            tg_status::TG_SCHEME_MISMATCH => {
                c"the reserved key limits something else than the active key"
            }
            tg_status::TG_SUBSCRIPTION => c"a subscription key takes no reserved key",
            tg_status::TG_DUPLICATE_KEY => c"the key id is already used in this state",
            tg_status::TG_CORRUPT_STATE => {
                c"the state directory is damaged, truncated or of another format; it was left untouched"
            }
            tg_status::TG_IO => c"an operating-system or embedded-store error",
            tg_status::TG_CAPACITY => c"the state's table of projects or of seat holders is full",
            tg_status::TG_PANIC => {
                c"an internal error was caught at the library boundary; please report it"
            }
            tg_status::TG_UNSUPPORTED => {
                c"the operation is not available for the key's license class"
            }
            tg_status::TG_NOT_HELD => {
                c"the release gives back more seats than are held; nothing was released"
            }
            tg_status::TG_PAYMENT_MODE_MISMATCH => {
                c"the purchase chose another payment mode than the first purchase, which fixed it"
            }
            tg_status::TG_NO_LICENSE_AVAILABLE => {
                c"no valid, unassigned license of a fitting type is in the company or global pool"
            }
            tg_status::TG_LICENSE_TYPE_UNFIT => {
                c"the license type cannot license the instance's operating system"
            }
            tg_status::TG_ALREADY_ASSIGNED => c"the instance already holds a valid license",
            tg_status::TG_BAD_SIGNATURE => {
                c"the key lacks a valid signature by a trusted vendor key; nothing changed"
            }
            tg_status::TG_TAMPERED => {
                c"the state was restored from an older copy or edited; an operator must accept it"
            }
            tg_status::TG_RENEWAL_FAILED => {
                c"the automatic renewal of an online key failed; renew the license manually"
            }
            tg_status::TG_ACTIVATION_FAILED => {
                c"the activation code could not be activated; nothing changed"
            }
            tg_status::TG_BUSY => {
                c"the admin lock stayed held by another process or thread beyond the timeout; nothing changed"
            }
            tg_status::TG_INSTALLATION_MISMATCH => {
                c"the state was made by another installation; open it with the installation directory that made it"
            }
            tg_status::TG_UNAVAILABLE => {
                c"this host's fleet leases are spent and the fleet store could not lease more yet; nothing was granted"
            }
        }
    }
}

impl From<&Refusal> for tg_status {
    fn from(refusal: &Refusal) -> tg_status {
        match refusal {
            Refusal::Exhausted { .. } | Refusal::SeatsExhausted { .. } => tg_status::TG_EXHAUSTED,
            Refusal::NotHeld { .. } => tg_status::TG_NOT_HELD,
            Refusal::Expired => tg_status::TG_EXPIRED,
            Refusal::NoActiveKey => tg_status::TG_NO_ACTIVE_KEY,
            Refusal::Unavailable => tg_status::TG_UNAVAILABLE,
            Refusal::CorruptLease | Refusal::StateTruncated | Refusal::SeatTableTruncated => {
                tg_status::TG_CORRUPT_STATE
            }
        }
    }
}

impl From<&Error> for tg_status {
    fn from(error: &Error) -> tg_status {
        match error {
            Error::InvalidArgument { .. } => tg_status::TG_INVALID_ARGUMENT,
            Error::ProjectNotFound { .. }
            | Error::ReserveNotFound { .. }
            | Error::InstanceNotFound { .. }
            | Error::GroupNotFound { .. }
            | Error::NotAssigned { .. } => tg_status::TG_NOT_FOUND,
            Error::ProjectExists { .. } => tg_status::TG_ALREADY_EXISTS,
            Error::Exhausted { .. } | Error::SeatsExhausted { .. } => tg_status::TG_EXHAUSTED,
            Error::NotHeld { .. } => tg_status::TG_NOT_HELD,
            Error::Expired | Error::KeyExpired { .. } => tg_status::TG_EXPIRED,
            Error::NoActiveKey => tg_status::TG_NO_ACTIVE_KEY,
            Error::Unavailable => tg_status::TG_UNAVAILABLE,
            Error::ReserveOccupied { .. } => tg_status::TG_RESERVE_OCCUPIED,
            Error::TypeMismatch { .. } => tg_status::TG_TYPE_MISMATCH,
            Error::EditionMismatch { .. } => tg_status::TG_EDITION_MISMATCH,
            Error::SchemeMismatch { .. } => tg_status::TG_SCHEME_MISMATCH,
            Error::Subscription { .. } => tg_status::TG_SUBSCRIPTION,
            Error::DuplicateKey { .. } => tg_status::TG_DUPLICATE_KEY,
            Error::CorruptState { .. } => tg_status::TG_CORRUPT_STATE,
            Error::Io { .. } | Error::Store { .. } => tg_status::TG_IO,
            Error::Capacity { .. } | Error::HoldersFull { .. } | Error::SlotsFull { .. } => {
                tg_status::TG_CAPACITY
            }
            Error::Unsupported { .. } => tg_status::TG_UNSUPPORTED,
            Error::PaymentModeMismatch { .. } => tg_status::TG_PAYMENT_MODE_MISMATCH,
            Error::NoLicenseAvailable { .. } => tg_status::TG_NO_LICENSE_AVAILABLE,
            Error::LicenseTypeUnfit { .. } => tg_status::TG_LICENSE_TYPE_UNFIT,
            Error::AlreadyAssigned { .. } => tg_status::TG_ALREADY_ASSIGNED,
            Error::BadSignature { .. } => tg_status::TG_BAD_SIGNATURE,
            Error::Tampered { .. } => tg_status::TG_TAMPERED,
            Error::RenewalFailed { .. } => tg_status::TG_RENEWAL_FAILED,
            Error::ActivationFailed { .. } => tg_status::TG_ACTIVATION_FAILED,
            Error::AdminLockBusy { .. } => tg_status::TG_BUSY,
            Error::InstallationMismatch { .. } => tg_status::TG_INSTALLATION_MISMATCH,
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

/// What a status means, in words, as a static NUL-terminated string: `"success"` for `TG_OK`,
/// `"the slot pair has no active license key"` for `TG_NO_ACTIVE_KEY`; a number that is no
/// status gives `"unknown status"`. The same for every call, unlike `tg_last_error_message`,
/// which names the values at fault. Never NULL; never free it.
#[no_mangle]
pub extern "C" fn tg_status_message(status: tg_status_code) -> *const c_char {
    boundary!({
        tg_status::from_code(status)
            .map_or(c"unknown status", tg_status::message)
            .as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_its_own_message_in_the_house_style() {
        let mut seen = std::collections::HashSet::new();
        for status in tg_status::ALL {
            let message = status.message().to_str().unwrap();
            assert!(seen.insert(message), "{status:?} repeats {message:?}");
            assert!(!message.ends_with('.'), "{message:?}");
            assert!(
                message.starts_with(|c: char| c.is_lowercase()),
                "{message:?}"
            );
        }
    }

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
        assert_eq!(tg_status::from_code(tg_status::ALL.len() as u32), None);
        assert_eq!(tg_status::from_code(u32::MAX), None);
    }

    /// The core errors of seats, pools, instances, groups and signatures, each with its status.
    #[test]
    fn seat_pool_and_group_errors_map_to_their_statuses() {
        let text = || "x".to_owned();
        let cases = [
            (
                Error::SeatsExhausted {
                    requested: 2,
                    available: 1,
                },
                tg_status::TG_EXHAUSTED,
            ),
            (
                Error::NotHeld {
                    requested: 2,
                    held: 1,
                },
                tg_status::TG_NOT_HELD,
            ),
            (Error::HoldersFull { capacity: 1 }, tg_status::TG_CAPACITY),
            (Error::SlotsFull { capacity: 1 }, tg_status::TG_CAPACITY),
            (
                Error::PaymentModeMismatch {
                    chosen: "annual",
                    requested: "monthly",
                },
                tg_status::TG_PAYMENT_MODE_MISMATCH,
            ),
            (
                Error::NoLicenseAvailable {
                    instance: text(),
                    detail: text(),
                },
                tg_status::TG_NO_LICENSE_AVAILABLE,
            ),
            (
                Error::LicenseTypeUnfit {
                    license_type: "workstation",
                    os: "linux",
                },
                tg_status::TG_LICENSE_TYPE_UNFIT,
            ),
            (
                Error::AlreadyAssigned {
                    instance: text(),
                    license: text(),
                },
                tg_status::TG_ALREADY_ASSIGNED,
            ),
            (
                Error::NotAssigned { instance: text() },
                tg_status::TG_NOT_FOUND,
            ),
            (
                Error::InstanceNotFound { name: text() },
                tg_status::TG_NOT_FOUND,
            ),
            (
                Error::GroupNotFound { name: text() },
                tg_status::TG_NOT_FOUND,
            ),
            (
                Error::BadSignature {
                    key: text(),
                    reason: tollgate_core::SignatureRefusal::UnsignedOffline,
                },
                tg_status::TG_BAD_SIGNATURE,
            ),
            (
                Error::InstallationMismatch {
                    state: "s".into(),
                    installation: "i".into(),
                    ratchet: 1,
                },
                tg_status::TG_INSTALLATION_MISMATCH,
            ),
            (Error::Unavailable, tg_status::TG_UNAVAILABLE),
        ];
        for (error, status) in cases {
            assert_eq!(tg_status::from(&error), status, "{error:?}");
        }
    }

    /// A hot-path refusal gets the status of the core error that says the same.
    #[test]
    fn a_refusal_has_the_status_of_its_error() {
        let refusals = [
            Refusal::Exhausted {
                requested: 2,
                remaining: 1,
            },
            Refusal::SeatsExhausted {
                requested: 2,
                available: 1,
            },
            Refusal::NotHeld {
                requested: 2,
                held: 1,
            },
            Refusal::Expired,
            Refusal::NoActiveKey,
            Refusal::Unavailable,
            Refusal::CorruptLease,
            Refusal::StateTruncated,
            Refusal::SeatTableTruncated,
        ];
        for refusal in refusals {
            let error = Error::from(refusal);
            assert_eq!(
                tg_status::from(&refusal),
                tg_status::from(&error),
                "{refusal:?}"
            );
        }
    }
}
