//! [`Refusal`]: what the hot-path handles refuse with.
//!
//! `ProjectHandle::consume` and its kin, `SeatHandle::acquire` and `release`, and
//! `InstanceHandle::check` neither allocate nor lock, so their refusal is plain `Copy` data.
//! Each case converts into the [`Error`] variant that says the same thing, with the same
//! message, so a caller that works in [`Error`] uses `?` as before.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Corruption, Error};
use crate::files::{HOLDERS_FILE, HOT_FILE};

/// Why a hot-path call granted nothing: every outcome `consume`, `consume_partial`,
/// `consume_many`, a seat `acquire` or `release` and an instance `check` can refuse with.
///
/// `Copy`, with no heap data: a refusal costs no allocation. Exhaustive, so a caller that maps
/// every case (the C ABI's status codes, the CLI's exit codes) is told by the compiler when one
/// is added. `Display` gives the message of the matching [`Error`] (`Error::from(refusal)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request needs more bytes than the Active and Reserved keys have left; nothing was
    /// charged. As [`Error::Exhausted`].
    Exhausted {
        /// Bytes asked for.
        requested: u64,
        /// Bytes still grantable at the moment of refusal.
        remaining: u64,
    },
    /// An `acquire` asked for more seats than the Active key has free; nothing was taken. As
    /// [`Error::SeatsExhausted`].
    SeatsExhausted {
        /// Seats asked for.
        requested: u64,
        /// Seats free at the moment of refusal.
        available: u64,
    },
    /// A `release` gave back more seats than the caller holds; nothing was released. As
    /// [`Error::NotHeld`].
    NotHeld {
        /// Seats the caller tried to release.
        requested: u64,
        /// Seats the caller holds.
        held: u64,
    },
    /// Every key that could cover the request has expired; nothing was charged. As
    /// [`Error::Expired`].
    Expired,
    /// The slot pair has no Active key. As [`Error::NoActiveKey`].
    NoActiveKey,
    /// A fleet host's stock of the key is spent and the fleet store has not leased more yet;
    /// nothing was granted, try again. As [`Error::Unavailable`].
    Unavailable,
    /// A slot pair's lease, read on the hot path, does not belong to its live generation: the
    /// state file is damaged. As [`Error::CorruptState`] with [`Corruption::LeaseNotLive`].
    CorruptLease,
    /// Another process truncated the state file while this one had it mapped: its counters are
    /// lost to this process. As [`Error::CorruptState`] with [`Corruption::TruncatedInUse`].
    StateTruncated,
    /// Another process truncated the seat-holder table while this one had it mapped: the
    /// seats it held are lost to this process. As [`Error::CorruptState`] with
    /// [`Corruption::HoldersTruncatedInUse`].
    SeatTableTruncated,
}

// Returned by value on the hot path: two numbers and the case, no more.
const _: () = assert!(std::mem::size_of::<Refusal>() <= 24);

/// The [`Error`] that says the same. The damaged-state cases name their file as it is called
/// in the state directory (the hot path does not know the directory's path).
impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Error {
        let corrupt = |file: &str, reason| Error::CorruptState {
            path: PathBuf::from(file),
            reason,
        };
        match refusal {
            Refusal::Exhausted {
                requested,
                remaining,
            } => Error::Exhausted {
                requested,
                remaining,
            },
            Refusal::SeatsExhausted {
                requested,
                available,
            } => Error::SeatsExhausted {
                requested,
                available,
            },
            Refusal::NotHeld { requested, held } => Error::NotHeld { requested, held },
            Refusal::Expired => Error::Expired,
            Refusal::NoActiveKey => Error::NoActiveKey,
            Refusal::Unavailable => Error::Unavailable,
            Refusal::CorruptLease => corrupt(HOT_FILE, Corruption::LeaseNotLive),
            Refusal::StateTruncated => corrupt(HOT_FILE, Corruption::TruncatedInUse),
            Refusal::SeatTableTruncated => corrupt(HOLDERS_FILE, Corruption::HoldersTruncatedInUse),
        }
    }
}

/// The message of the matching [`Error`]; rendering it allocates only for the damaged-state
/// cases (their file name), and only when it is asked for.
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Error::from(*self), f)
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_says_what_its_error_says() {
        let cases = [
            (
                Refusal::Exhausted {
                    requested: 10,
                    remaining: 3,
                },
                "license exhausted: 10 bytes requested but only 3 remain on the active and reserved keys",
            ),
            (
                Refusal::SeatsExhausted {
                    requested: 2,
                    available: 1,
                },
                "no free seats: 2 requested but only 1 of the active key's seats are free in all the projects that hold it",
            ),
            (
                Refusal::NotHeld {
                    requested: 4,
                    held: 1,
                },
                "cannot release 4 seats: only 1 are held",
            ),
            (
                Refusal::NoActiveKey,
                "no active license key: add a key before metering or adding a reserve",
            ),
            (
                Refusal::CorruptLease,
                "corrupt state at hot.tgs: a slot pair's lease does not belong to its live generation",
            ),
            (
                Refusal::SeatTableTruncated,
                "corrupt state at seats.tgs: the seat-holder table was truncated while in use; the seats it held are lost to this process",
            ),
        ];
        for (refusal, message) in cases {
            assert_eq!(refusal.to_string(), message);
            assert_eq!(Error::from(refusal).to_string(), message);
        }
        for refusal in [
            Refusal::Expired,
            Refusal::Unavailable,
            Refusal::StateTruncated,
        ] {
            assert_eq!(refusal.to_string(), Error::from(refusal).to_string());
        }
    }
}
