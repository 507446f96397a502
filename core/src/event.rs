//! What an event says: [`EventKind`], the audited [`Event`] and what a ratchet records of keys
//! and periods, with their JSON forms (rule R29 in docs/rules.md). How events flow from the
//! hot path to the audit log and subscribers is `events`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::period::Period;
use crate::pool::{InstanceOs, LicenseType, PoolKind};
use crate::slot::{RefusalReason, SwitchReason};
use crate::view::Role;

/// Why a reserve key left its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// An operator removed it.
    Requested,
    /// The Active key was replaced by one whose term outlasts the reserve (rule R19 in
    /// docs/rules.md).
    ExpiresBeforeNewTerm,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A project was created.
    ProjectCreated,
    /// A key entered a slot.
    KeyAdded {
        /// The key id.
        key: String,
        /// The slot it took.
        role: Role,
    },
    /// The Reserved key became the Active key.
    Switched {
        /// The key that stopped being Active.
        from: String,
        /// The new Active key.
        to: String,
        /// Why.
        reason: SwitchReason,
    },
    /// A reserve key left its slot.
    ReserveRemoved {
        /// The key id.
        key: String,
        /// Why.
        reason: RemovalReason,
    },
    /// The Active key was replaced (renewal).
    KeyReplaced {
        /// The key replaced.
        old: String,
        /// The new Active key.
        new: String,
    },
    /// A key's usage reached a threshold for the first time.
    Threshold {
        /// The key id.
        key: String,
        /// 80, 90 or 100.
        percent: u8,
    },
    /// A request was refused (reported once per generation of the pair).
    Refused {
        /// Why.
        reason: RefusalReason,
    },
    /// After a crash, the catalog was brought back in line with the hot state; or, at an
    /// upgrade of the state format, the state was converted (the detail then starts with
    /// "upgraded from").
    Recovered {
        /// What was repaired.
        detail: String,
    },
    /// The system clock was set back by more than the tolerance; expiry is still judged by the
    /// latest time seen (the event's project is empty).
    ClockRolledBack {
        /// How many seconds the clock is behind the latest time seen.
        behind_secs: u32,
        /// The latest time seen, RFC 3339.
        latest_seen: String,
    },
    /// A usage ratchet (state rollback detection): its sequence, the bytes ever charged, and
    /// a MAC chained to the previous ratchet's, keyed by the installation. Its `kind` in the
    /// audit log and in JSON is `checkpoint`, the name it was first written under.
    #[serde(rename = "checkpoint")]
    Ratchet {
        /// One above the previous ratchet's.
        seq: u64,
        /// Bytes ever charged to data-volume keys.
        total_used: u64,
        /// The MAC of this ratchet.
        mac: String,
        /// The previous ratchet's MAC (empty for the first).
        prev_mac: String,
        /// What the MAC covers: 2 adds the state id and the operator decisions to the sequence
        /// and total of format 1 (0 in the log: a ratchet written before formats, format 1).
        #[serde(default)]
        format: u32,
        /// The audit sequence of the latest operator decision (an accepted rollback or clock),
        /// whose MAC this ratchet's covers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decision: Option<u64>,
        /// Each data-volume key in a slot, by catalog row: its usage and terms, covered by the
        /// MAC, so usage moved between keys or pairs is detected (format 2).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        keys: Vec<CheckedKey>,
        /// Each key with a reset, by key id: its term, its current period and what its closed
        /// periods used, covered by the MAC, so a reset cannot be made up by editing
        /// `catalog.db` (rule R40).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        periods: BTreeMap<String, PeriodMark>,
    },
    /// An operator accepted a state the engine had refused as rolled back or edited.
    RollbackAccepted {
        /// What had been found.
        reason: String,
        /// The audit sequence of the operator decision before this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prev_decision: Option<u64>,
        /// A MAC over this decision chained to the previous one's, keyed by the installation:
        /// the ratchets cover it, so deleting or editing the entry is detected.
        #[serde(default)]
        mac: String,
    },
    /// An operator lowered the latest time seen to the clock's reading (`tollgate state
    /// accept-clock`): the clock had once been set in the future, and every key expiring before
    /// that time had expired for good (the event's project is empty).
    ClockAccepted {
        /// The latest time seen before, RFC 3339.
        from: String,
        /// The latest time seen after: the clock's reading, RFC 3339.
        to: String,
        /// The audit sequence of the operator decision before this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prev_decision: Option<u64>,
        /// A MAC over this decision chained to the previous one's (see `RollbackAccepted`).
        #[serde(default)]
        mac: String,
    },
    /// Seats held by a process that ended without releasing them were taken back.
    SeatsReclaimed {
        /// The process.
        pid: u32,
        /// How many seats.
        units: u64,
    },
    /// Licenses were bought into a pool (the event's project is empty).
    LicensesPurchased {
        /// Their type.
        license_type: LicenseType,
        /// Commercial or trial.
        license_kind: PoolKind,
        /// How many.
        quantity: u32,
        /// The company pool, or none for the global pool.
        company: Option<String>,
        /// The first and last license ids.
        first: String,
        /// See `first`.
        last: String,
    },
    /// An instance (a project licensed per instance) was registered.
    InstanceAdded {
        /// Its OS.
        os: InstanceOs,
        /// Its company.
        company: Option<String>,
    },
    /// A pool license was assigned to the instance.
    LicenseAssigned {
        /// The license.
        license: String,
        /// Its type.
        license_type: LicenseType,
    },
    /// A pool license went back to its pool.
    LicenseUnassigned {
        /// The license.
        license: String,
    },
    /// The project joined a group.
    GroupJoined {
        /// The group.
        group: String,
    },
    /// The state now trusts a vendor public key: from then on every offline key added must be
    /// signed by a trusted key (the event's project is empty).
    VendorKeyTrusted {
        /// The key's fingerprint, as `tollgate trust list` and `vendor.pub` show it.
        public_key: String,
    },
    /// The automatic renewal of an online key failed and nothing changed: the operator must
    /// renew the license manually (rule R21 in docs/rules.md). Recorded once per key until a
    /// renewal of it succeeds.
    RenewalFailed {
        /// The key that was to be renewed.
        key: String,
        /// The manual-renewal message, with why the renewal failed.
        reason: String,
    },
    /// An expired key that no valid reserve could replace went on granting in its grace
    /// (`grace_days`); reported by the first request in the grace, once per generation of the
    /// pair.
    GraceStarted {
        /// The key.
        key: String,
        /// When the grace ends, RFC 3339.
        until: String,
    },
    /// An expired key's grace ended: reported with the first refusal after it.
    GraceEnded {
        /// The key.
        key: String,
    },
    /// A key with no reserve held granted its first byte past its limit, into its overage
    /// (`overage_percent`); reported once per key.
    OverageStarted {
        /// The key.
        key: String,
    },
    /// A usage period of a key with a `reset` term closed: the key's usage returned to 0
    /// (rule R40 in docs/rules.md). An event of the key, not of one project (its project is
    /// empty).
    PeriodClosed {
        /// The key.
        key: String,
        /// When the period started, RFC 3339.
        starts_at: String,
        /// When the next period started, RFC 3339.
        ends_at: String,
        /// Bytes used in the period, over every project holding the key.
        used: u64,
    },
}

/// A key with a reset as a ratchet records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodMark {
    /// Its `reset` term.
    pub reset: Period,
    /// When its current period started (Unix seconds).
    pub start: i64,
    /// Bytes its closed periods used, over every project.
    pub closed: u64,
}

/// A key as a ratchet records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckedKey {
    /// Its catalog row.
    pub row: u32,
    /// Bytes charged to it.
    pub used: u64,
    /// Its limit in bytes.
    pub limit: u64,
    /// Its expiry in Unix seconds (`u32::MAX`: none).
    pub expiry: u32,
}

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the audit log, increasing.
    pub seq: u64,
    /// When it was recorded (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The project concerned.
    pub project: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Serialize for SwitchReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            SwitchReason::Exhausted => "exhausted",
            SwitchReason::Expired => "expired",
        })
    }
}

impl<'de> Deserialize<'de> for SwitchReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "exhausted" => Ok(SwitchReason::Exhausted),
            "expired" => Ok(SwitchReason::Expired),
            other => Err(serde::de::Error::unknown_variant(
                other,
                &["exhausted", "expired"],
            )),
        }
    }
}

impl RefusalReason {
    /// The reason as the audit log and metrics labels spell it: `exhausted`, `expired` or
    /// `no_active_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Exhausted => "exhausted",
            RefusalReason::Expired => "expired",
            RefusalReason::NoActiveKey => "no_active_key",
        }
    }
}

impl Serialize for RefusalReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RefusalReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "exhausted" => Ok(RefusalReason::Exhausted),
            "expired" => Ok(RefusalReason::Expired),
            "no_active_key" => Ok(RefusalReason::NoActiveKey),
            other => Err(serde::de::Error::unknown_variant(
                other,
                &["exhausted", "expired", "no_active_key"],
            )),
        }
    }
}
