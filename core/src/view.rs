//! What a user interface needs (SPEC §2.5): license cards, their status and the seed-000 texts.

use serde::Serialize;

use crate::key::{rfc3339, Key, LicenseClass};

/// Pop-up shown after a reserve key is added (seed 000), with the project name filled in.
pub fn reserve_added_message(project: &str) -> String {
    format!(
        "You have added an additional license key for project {project}. After the first key\u{2019}s data usage is exhausted, migration will automatically continue with the reserved key."
    )
}

/// Tooltip of the Active card (seed 000).
pub fn active_tooltip(project: &str) -> String {
    format!("Migration data for project {project} is processed under this license key.")
}

/// Tooltip of the Reserved card (seed 000).
pub const RESERVED_TOOLTIP: &str = "This is a reserved key. Migration will automatically continue with this key after the first key expires.";

/// The status shown on a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Role {
    /// The key currently metered.
    Active,
    /// The backup key that takes over automatically.
    Reserved,
}

/// One license card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LicenseCard {
    /// The key's details.
    pub key: Key,
    /// "Online" or "Offline" (the card's Type field).
    #[serde(rename = "type")]
    pub type_label: &'static str,
    /// Active or Reserved.
    pub status: Role,
    /// The tooltip text for the status.
    pub tooltip: String,
    /// The Expiration date field: "Reserved" on the reserve card (seed 000), else the RFC 3339
    /// expiry or "Never".
    pub expiration: String,
    /// Amount used: bytes for data-volume keys.
    pub used: u64,
    /// Amount allowed: bytes, machines, cores or 1 instance.
    pub limit: u64,
    /// Whether the key's expiry has passed.
    pub expired: bool,
}

/// The cards of one slot pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairView {
    /// The license class of the pair.
    pub class: String,
    /// Active card first, then the Reserved card if any.
    pub cards: Vec<LicenseCard>,
    /// Whether "Add License" is offered: exactly when the pair holds one key.
    pub add_license_available: bool,
}

/// Everything a project card shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectView {
    /// The project name.
    pub project: String,
    /// One entry per license class the project holds, data volume first.
    pub pairs: Vec<PairView>,
}

/// A key in a pair, as the view builder gets it.
pub(crate) struct SlotContent<'a> {
    pub key: &'a Key,
    pub role: Role,
    pub used: u64,
}

pub(crate) fn pair_view(
    project: &str,
    class: LicenseClass,
    slots: &[SlotContent<'_>],
    now_secs: i64,
) -> PairView {
    let cards = slots
        .iter()
        .map(|slot| LicenseCard {
            key: slot.key.clone(),
            type_label: slot.key.delivery.label(),
            status: slot.role,
            tooltip: match slot.role {
                Role::Active => active_tooltip(project),
                Role::Reserved => RESERVED_TOOLTIP.to_owned(),
            },
            expiration: match (slot.role, slot.key.expires_at) {
                (Role::Reserved, _) => "Reserved".to_owned(),
                (Role::Active, Some(at)) => rfc3339(at),
                (Role::Active, None) => "Never".to_owned(),
            },
            used: slot.used,
            limit: slot.key.scheme.amount(),
            expired: slot.key.is_expired_at(now_secs),
        })
        .collect::<Vec<_>>();
    PairView {
        class: class.to_string(),
        add_license_available: cards.len() == 1,
        cards,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_texts_are_verbatim() {
        assert_eq!(
            reserve_added_message("X"),
            "You have added an additional license key for project X. After the first key’s data usage is exhausted, migration will automatically continue with the reserved key."
        );
        assert_eq!(
            active_tooltip("X"),
            "Migration data for project X is processed under this license key."
        );
        assert_eq!(
            RESERVED_TOOLTIP,
            "This is a reserved key. Migration will automatically continue with this key after the first key expires."
        );
    }
}
