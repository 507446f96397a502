//! What the engine's calls return about keys and usage.

use super::*;

/// Usage of a project's data-volume slot pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Bytes charged to the Active key.
    pub active_used: u64,
    /// The Active key's limit (0 without a key).
    pub active_limit: u64,
    /// Bytes charged to the Reserved key (0 until it becomes Active).
    pub reserved_used: u64,
    /// The Reserved key's limit (0 without one).
    pub reserved_limit: u64,
    /// Whether a Reserved key is present.
    pub has_reserved: bool,
    /// How many Active→Reserved switches this pair has made.
    pub switches: u64,
}

impl From<&PairState> for Usage {
    fn from(state: &PairState) -> Usage {
        Usage {
            active_used: state.active.map_or(0, |a| a.used),
            active_limit: state.active.map_or(0, |a| a.limit),
            reserved_used: state.reserve.map_or(0, |r| r.used),
            reserved_limit: state.reserve.map_or(0, |r| r.limit),
            has_reserved: state.reserve.is_some(),
            switches: u64::from(state.switches),
        }
    }
}

/// Where a key is or was. Serialized as [`KeyStatus::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// In the Active slot.
    Active,
    /// In the Reserved slot.
    Reserved,
    /// Used up, expired or replaced: its usage is final.
    Retired,
    /// Removed from the Reserved slot before use.
    Removed,
}

impl KeyStatus {
    /// The status as JSON outputs and metrics labels spell it: `active`, `reserved`, `retired`
    /// or `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Reserved => "reserved",
            KeyStatus::Retired => "retired",
            KeyStatus::Removed => "removed",
        }
    }
}

impl Serialize for KeyStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A key with its usage, as [`Engine::keys`] lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyUsage {
    /// The key.
    pub key: Key,
    /// Where it is.
    pub status: KeyStatus,
    /// Amount this project charged to it (bytes for data-volume keys).
    pub used: u64,
    /// The key's account across every project that holds or held it (data-volume keys).
    pub account: Option<AccountUsage>,
}

/// The result of adding a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyAdded {
    /// The slot the key took.
    pub role: Role,
    /// Set when the key went straight to Active because the previous Active key was used up or
    /// expired: the key that it replaced.
    pub switched_from: Option<String>,
    /// The pop-up text of rule R28 in docs/rules.md, for a key that became the reserve.
    pub message: Option<String>,
}

/// The result of replacing an Active key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyReplaced {
    /// The key that was Active.
    pub old: String,
    /// The reserve that was removed because it expires before the new key's term ends.
    pub removed_reserve: Option<String>,
}
