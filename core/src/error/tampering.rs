//! What [`Error::Tampered`](super::Error::Tampered) found: a state rolled back, or its ratchets,
//! time or license terms edited (docs/tampering.md). Each case is a variant a caller can match;
//! `Display` gives the message the engine has always given, which the audit log also records
//! when an operator accepts a rollback.

use std::fmt;
use std::path::PathBuf;

use crate::event::PeriodMark;
use crate::view::Role;

/// Why a state was refused as tampered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tampering {
    /// A rolled-back or replaced state, or an edited time or audit log: an operator may accept
    /// it with `Engine::accept_rollback` (`tollgate state accept-rollback`).
    Acceptable(Rollback),
    /// License terms edited in `hot.tgs` or `catalog.db`: never accepted, the file is to be
    /// restored from a backup.
    Unacceptable(EditedTerms),
    /// The installation's anchor of the state cannot be read.
    UnreadableAnchor {
        /// The anchor file.
        path: PathBuf,
    },
    /// The installation's copy of the latest time seen cannot be read.
    UnreadableTimeAnchor {
        /// The time anchor file.
        path: PathBuf,
    },
    /// The audit entry the catalog names as the last ratchet is not a ratchet.
    LastRatchetNotOne,
}

/// A rollback, replacement or edit that an operator may accept (see [`Tampering::Acceptable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// An operator decision the chain names is missing from the audit log.
    DecisionMissing {
        /// Its audit entry.
        seq: u64,
    },
    /// The audit entry a ratchet names as an operator decision is not one.
    NotADecision {
        /// The audit entry.
        seq: u64,
    },
    /// An operator decision names a later one as its predecessor.
    DecisionOutOfOrder {
        /// The decision's audit entry.
        seq: u64,
    },
    /// An operator decision's MAC does not verify.
    DecisionEdited {
        /// The decision's audit entry.
        seq: u64,
    },
    /// The last ratchet's MAC does not verify.
    RatchetDoesNotVerify {
        /// The ratchet's sequence number.
        seq: u64,
    },
    /// The hot state holds less usage in all than the last ratchet recorded.
    UsageBelowRatchet {
        /// Bytes charged now.
        total: u64,
        /// The ratchet's sequence number.
        seq: u64,
        /// Bytes charged when it was made.
        recorded: u64,
    },
    /// A key holds less usage than the last ratchet recorded for it.
    KeyBelowRatchet {
        /// The key's row in the catalog.
        row: u32,
        /// Bytes charged to it now.
        used: u64,
        /// The ratchet's sequence number.
        seq: u64,
        /// Bytes charged to it when the ratchet was made.
        recorded: u64,
    },
    /// The state holds keys but no ratchet.
    RatchetsDeleted,
    /// This installation made ratchet `seq` of the state but holds no anchor for its id.
    AnchorMissing {
        /// The ratchet's sequence number.
        seq: u64,
        /// The state id.
        state_id: String,
    },
    /// This installation saw ratchet `seq` of the state, which now has none.
    RatchetsGone {
        /// The ratchet the anchor names.
        seq: u64,
    },
    /// The state is at an older ratchet than this installation saw.
    RestoredCopy {
        /// The state's last ratchet.
        at: u64,
        /// The ratchet the anchor names.
        seen: u64,
    },
    /// The state's last ratchet is not the one this installation saw under that number.
    Replaced {
        /// The ratchet's sequence number.
        seq: u64,
    },
    /// The latest time seen in the catalog does not verify.
    TimeEdited {
        /// That time, RFC 3339.
        time: String,
    },
}

/// License terms that differ from the vendor's (see [`Tampering::Unacceptable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditedTerms {
    /// A slot names a key row the catalog does not hold for its project.
    UnknownKey {
        /// The slot.
        role: Role,
        /// The project.
        project: String,
        /// The key row the slot names.
        row: u32,
    },
    /// A slot's term differs from its key's license.
    Slot {
        /// The slot.
        role: Role,
        /// The key.
        key: String,
        /// The project.
        project: String,
        /// Which term.
        term: SlotTerm,
        /// Its value in `hot.tgs`.
        hot: u64,
        /// Its value in the license.
        signed: u64,
    },
    /// A slot draws its key from another account than the catalog's.
    Account {
        /// The slot.
        role: Role,
        /// The project.
        project: String,
        /// The key.
        key: String,
        /// The account (record + 1, 0 for none) in `hot.tgs`.
        hot: u32,
        /// The account the catalog names.
        named: u32,
    },
    /// A key's account has a term that differs from its license.
    AccountTerm {
        /// The key.
        key: String,
        /// Which term.
        term: AccountTerm,
        /// Its value in `hot.tgs`.
        hot: u64,
        /// Its value in the license.
        signed: u64,
    },
    /// A key's account forgives more usage of closed periods in `hot.tgs` than the catalog's
    /// closed periods used (rule R40).
    Forgiven {
        /// The key.
        key: String,
        /// Bytes the hot account forgives.
        forgiven: u64,
        /// Bytes the catalog's closed periods used.
        closed: u64,
    },
    /// A key's usage periods (term, start, closed usage) in the catalog differ from what the
    /// last ratchet recorded, beyond the change the ratchet being made records (rule R40).
    Periods {
        /// The key.
        key: String,
        /// The periods in the catalog now (`None`: none).
        now: Option<PeriodMark>,
        /// The ratchet's sequence number.
        seq: u64,
        /// The periods the ratchet recorded (`None`: none).
        recorded: Option<PeriodMark>,
    },
    /// A key's limit or expiry in the catalog differs from what the last ratchet recorded.
    License {
        /// The key's row in the catalog.
        row: u32,
        /// Its limit now.
        limit: u64,
        /// Its expiry now (Unix seconds).
        expiry: u32,
        /// The ratchet's sequence number.
        seq: u64,
        /// The limit the ratchet recorded.
        recorded_limit: u64,
        /// The expiry the ratchet recorded.
        recorded_expiry: u32,
    },
}

/// A term of a slot in `hot.tgs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotTerm {
    /// The limit.
    Limit,
    /// The expiry, in Unix seconds.
    Expiry,
    /// The grace, in days.
    Grace,
}

/// A term of a key's account in `hot.tgs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountTerm {
    /// The limit.
    Limit,
    /// The overage allowed.
    Overage,
}

impl fmt::Display for Tampering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tampering::Acceptable(rollback) => write!(
                f,
                "{rollback}; an operator can accept it with `tollgate state accept-rollback`"
            ),
            Tampering::Unacceptable(edit) => write!(
                f,
                "{edit}; edited license terms are never accepted: restore the file from a backup"
            ),
            Tampering::UnreadableAnchor { path } => {
                write!(f, "the anchor {} is unreadable", path.display())
            }
            Tampering::UnreadableTimeAnchor { path } => {
                write!(f, "the time anchor {} is unreadable", path.display())
            }
            Tampering::LastRatchetNotOne => {
                f.write_str("the audit entry the state names as its last checkpoint is not one")
            }
        }
    }
}

impl fmt::Display for Rollback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rollback::DecisionMissing { seq } => write!(
                f,
                "the operator decision at audit entry {seq} is missing: it was deleted from the audit log"
            ),
            Rollback::NotADecision { seq } => write!(
                f,
                "audit entry {seq}, which a checkpoint names as an operator decision, is not one: the audit log was edited"
            ),
            Rollback::DecisionOutOfOrder { seq } => write!(
                f,
                "the operator decision at audit entry {seq} names a later one: the audit log was edited"
            ),
            Rollback::DecisionEdited { seq } => write!(
                f,
                "the operator decision at audit entry {seq} does not verify: it was edited"
            ),
            Rollback::RatchetDoesNotVerify { seq } => write!(
                f,
                "checkpoint {seq} in the audit log does not verify: it was edited, its state id was changed, or it was made by another installation"
            ),
            Rollback::UsageBelowRatchet { total, seq, recorded } => write!(
                f,
                "the hot state holds {total} bytes charged but checkpoint {seq} recorded {recorded}: the hot-state file was restored from an older copy"
            ),
            Rollback::KeyBelowRatchet { row, used, seq, recorded } => write!(
                f,
                "key row {row} has {used} bytes charged but checkpoint {seq} recorded {recorded}: usage was moved between keys or restored from an older copy"
            ),
            Rollback::RatchetsDeleted => f.write_str(
                "the state holds keys but no checkpoint: its checkpoints were deleted from the audit log (a state written before checkpoints existed is accepted once with accept-rollback)",
            ),
            Rollback::AnchorMissing { seq, state_id } => write!(
                f,
                "this installation made checkpoint {seq} of this state but holds no anchor for state id {state_id}: the state id was changed or the anchor deleted"
            ),
            Rollback::RatchetsGone { seq } => write!(
                f,
                "this installation saw checkpoint {seq} of this state, which now has none: the state directory was replaced by an older copy"
            ),
            Rollback::RestoredCopy { at, seen } => write!(
                f,
                "the state is at checkpoint {at} but this installation saw checkpoint {seen}: the state directory was restored from an older copy"
            ),
            Rollback::Replaced { seq } => write!(
                f,
                "checkpoint {seq} differs from the one this installation saw: the state directory was replaced"
            ),
            Rollback::TimeEdited { time } => write!(
                f,
                "the latest time seen in catalog.db ({time}) does not verify: meta.latest_seen was edited"
            ),
        }
    }
}

impl fmt::Display for EditedTerms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EditedTerms::UnknownKey { role, project, row } => write!(
                f,
                "the {} slot of project \"{project}\" names key row {row}, which the catalog does not hold for it: hot.tgs was edited",
                role_name(*role)
            ),
            EditedTerms::Slot { role, key, project, term, hot, signed } => {
                let what = match term {
                    SlotTerm::Limit => "a limit of",
                    SlotTerm::Expiry => "an expiry (Unix seconds) of",
                    SlotTerm::Grace => "a grace (days) of",
                };
                write!(
                    f,
                    "the {} key \"{key}\" of project \"{project}\" has {what} {hot} in hot.tgs but {signed} in its license: hot.tgs was edited",
                    role_name(*role)
                )
            }
            EditedTerms::Account { role, project, key, hot, named } => write!(
                f,
                "the {} slot of project \"{project}\" draws key \"{key}\" from account {hot} in hot.tgs but the catalog says {named}: hot.tgs was edited",
                role_name(*role)
            ),
            EditedTerms::AccountTerm { key, term, hot, signed } => {
                let what = match term {
                    AccountTerm::Limit => "a limit",
                    AccountTerm::Overage => "an overage",
                };
                write!(
                    f,
                    "the account of key \"{key}\" has {what} of {hot} in hot.tgs but {signed} in its license: hot.tgs was edited"
                )
            }
            EditedTerms::Forgiven { key, forgiven, closed } => write!(
                f,
                "the account of key \"{key}\" forgives {forgiven} bytes of closed periods in hot.tgs but the closed periods in catalog.db used {closed}: the state was edited"
            ),
            EditedTerms::Periods { key, now, seq, recorded } => {
                let show = |m: &Option<PeriodMark>| {
                    m.map_or("none".to_owned(), |m| {
                        format!("{} from {}, {} bytes closed", m.reset, m.start, m.closed)
                    })
                };
                write!(
                    f,
                    "the usage periods of key \"{key}\" are {} in catalog.db but checkpoint {seq} recorded {}: catalog.db was edited",
                    show(now),
                    show(recorded)
                )
            }
            EditedTerms::License { row, limit, expiry, seq, recorded_limit, recorded_expiry } => write!(
                f,
                "key row {row} has a limit of {limit} and an expiry of {expiry} but checkpoint {seq} recorded {recorded_limit} and {recorded_expiry}: its license in catalog.db was edited"
            ),
        }
    }
}

/// A slot's role as the messages name it.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Active => "Active",
        Role::Reserved => "Reserved",
    }
}
