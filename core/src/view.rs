//! What a user interface needs (rule R27 in docs/rules.md): license cards, their status and the
//! texts of rule R28.

use serde::Serialize;

use crate::key::{rfc3339, Key, KeyKind, LicenseClass};

/// Pop-up shown after a reserve key is added, with the project name filled in: the text of rule R28
/// for data volume; for seat and instance keys, which switch only when the first key expires,
/// a text of the same form that names what they license.
pub fn reserve_added_message(project: &str, class: LicenseClass) -> String {
    match class {
        LicenseClass::DataVolume => format!(
            "You have added an additional license key for project {project}. After the first key\u{2019}s data usage is exhausted, migration will automatically continue with the reserved key."
        ),
        LicenseClass::ServerMachines | LicenseClass::DesktopMachines => format!(
            "You have added an additional license key for project {project}. After the first key expires, protection of {} will automatically continue with the reserved key.",
            machines(class)
        ),
        LicenseClass::Cores => format!(
            "You have added an additional license key for project {project}. After the first key expires, processor cores will automatically be counted under the reserved key."
        ),
        LicenseClass::Instance => format!(
            "You have added an additional license key for instance {project}. After the first key expires, the instance will automatically be licensed under the reserved key."
        ),
    }
}

/// Tooltip of the Active card: the text of rule R28 for data volume, one that names what seat and
/// instance keys license for theirs.
pub fn active_tooltip(project: &str, class: LicenseClass) -> String {
    match class {
        LicenseClass::DataVolume => {
            format!("Migration data for project {project} is processed under this license key.")
        }
        LicenseClass::ServerMachines | LicenseClass::DesktopMachines => format!(
            "Protected {} of project {project} are counted under this license key.",
            machines(class)
        ),
        LicenseClass::Cores => {
            format!("Processor cores of project {project} are counted under this license key.")
        }
        LicenseClass::Instance => format!("Instance {project} is licensed under this license key."),
    }
}

/// Tooltip of the Reserved card of a data-volume pair (rule R28 in docs/rules.md).
pub const RESERVED_TOOLTIP: &str = "This is a reserved key. Migration will automatically continue with this key after the first key expires.";

/// Tooltip of the Reserved card: [`RESERVED_TOOLTIP`] for data volume, one that names what seat
/// and instance keys license for theirs.
pub fn reserved_tooltip(project: &str, class: LicenseClass) -> String {
    match class {
        LicenseClass::DataVolume => RESERVED_TOOLTIP.to_owned(),
        LicenseClass::ServerMachines | LicenseClass::DesktopMachines => format!(
            "This is a reserved key. Protection of {} will automatically continue with this key after the first key expires.",
            machines(class)
        ),
        LicenseClass::Cores => "This is a reserved key. Processor cores will automatically be counted under this key after the first key expires.".to_owned(),
        LicenseClass::Instance => format!(
            "This is a reserved key. Instance {project} will automatically be licensed under this key after the first key expires."
        ),
    }
}

/// What a per-machine class protects, in the texts above.
fn machines(class: LicenseClass) -> &'static str {
    if class == LicenseClass::DesktopMachines {
        "desktop machines"
    } else {
        "server machines"
    }
}

/// The status shown on a card. In JSON `"active"` and `"reserved"`, the casing of every other
/// status ([`KeyStatus`](crate::KeyStatus) of `key list` included); audit entries written
/// before, as `"Active"` and `"Reserved"`, still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The key currently metered.
    #[serde(alias = "Active")]
    Active,
    /// The backup key that takes over automatically.
    #[serde(alias = "Reserved")]
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
    /// The Expiration date field: "Reserved" on the reserve card (rule R28), else the RFC 3339
    /// expiry or "Never".
    pub expiration: String,
    /// Amount used: bytes for data-volume keys.
    pub used: u64,
    /// Amount allowed: bytes, machines, cores or 1 instance.
    pub limit: u64,
    /// Whether the key's expiry has passed.
    pub expired: bool,
    /// On the Active card of an expired key still in its grace (`grace_days`): when the grace
    /// ends, RFC 3339 ("In grace until …"); else `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<String>,
    /// The key's overage (`overage_percent` of its limit, in bytes) and how much of it its
    /// account used, across every project holding it ("Overage 12 MB of 100 MB allowed");
    /// `None` for a key without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overage: Option<Overage>,
    /// On the card of a key with a `reset`: when its usage next returns to 0, RFC 3339
    /// ("Resets monthly, next on …"; `used` is the current period's); else `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resets_at: Option<String>,
}

/// A key's overage on its card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Overage {
    /// Bytes used beyond the limit, across every project holding the key.
    pub used: u64,
    /// Bytes the key may be used beyond its limit.
    pub allowed: u64,
}

/// The cards of one slot pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairView {
    /// The license class of the pair.
    pub class: String,
    /// Active card first, then the Reserved card if any.
    pub cards: Vec<LicenseCard>,
    /// Whether "Add License" is offered: exactly when the pair holds one key and it is not a
    /// subscription key, which takes no reserve (rule R6 in docs/rules.md).
    pub add_license_available: bool,
}

/// Everything a project card shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectView {
    /// The project name.
    pub project: String,
    /// One entry per license class that holds a key, data volume first; a project with no key
    /// at all shows its empty pair, where the first key goes.
    pub pairs: Vec<PairView>,
}

/// A key in a pair, as the view builder gets it.
pub(crate) struct SlotContent<'a> {
    pub key: &'a Key,
    pub role: Role,
    pub used: u64,
    /// What the key's account used, across every project holding it.
    pub account_used: u64,
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
                Role::Active => active_tooltip(project, class),
                Role::Reserved => reserved_tooltip(project, class),
            },
            expiration: match (slot.role, slot.key.expires_at) {
                (Role::Reserved, _) => "Reserved".to_owned(),
                (Role::Active, Some(at)) => rfc3339(at),
                (Role::Active, None) => "Never".to_owned(),
            },
            used: slot.used,
            limit: slot.key.scheme.amount(),
            expired: slot.key.is_expired_at(now_secs),
            grace_until: match slot.role {
                Role::Active if slot.key.is_expired_at(now_secs) => slot
                    .key
                    .grace_ends_at()
                    .filter(|end| end.unix_timestamp() > now_secs)
                    .map(rfc3339),
                _ => None,
            },
            overage: match slot.key.overage_bytes() {
                0 => None,
                allowed => Some(Overage {
                    used: slot.account_used.saturating_sub(slot.key.scheme.amount()),
                    allowed,
                }),
            },
            resets_at: slot.key.reset.map(|reset| {
                let next = reset.next_after(reset.start_of(now_secs));
                rfc3339(
                    time::OffsetDateTime::from_unix_timestamp(next)
                        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                )
            }),
        })
        .collect::<Vec<_>>();
    PairView {
        class: class.to_string(),
        add_license_available: matches!(
            slots,
            [only] if only.key.kind != KeyKind::Subscription
        ),
        cards,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One casing for statuses in JSON; the audit log's older entries read.
    #[test]
    fn roles_are_lowercase_in_json_and_old_entries_still_read() {
        assert_eq!(serde_json::to_string(&Role::Active).unwrap(), r#""active""#);
        assert_eq!(
            serde_json::to_string(&Role::Reserved).unwrap(),
            r#""reserved""#
        );
        for (text, role) in [
            (r#""active""#, Role::Active),
            (r#""Active""#, Role::Active),
            (r#""reserved""#, Role::Reserved),
            (r#""Reserved""#, Role::Reserved),
        ] {
            assert_eq!(serde_json::from_str::<Role>(text).unwrap(), role);
        }
    }

    /// The texts of rule R28 stay verbatim for data volume; seat and instance keys,
    /// which meter no migration data, get texts that say what they license.
    #[test]
    fn texts_fit_each_license_class() {
        use LicenseClass::*;
        // (class, Active tooltip, Reserved tooltip, pop-up after a reserve is added)
        let table = [
            (
                DataVolume,
                "Migration data for project X is processed under this license key.",
                "This is a reserved key. Migration will automatically continue with this key after the first key expires.",
                "You have added an additional license key for project X. After the first key\u{2019}s data usage is exhausted, migration will automatically continue with the reserved key.",
            ),
            (
                ServerMachines,
                "Protected server machines of project X are counted under this license key.",
                "This is a reserved key. Protection of server machines will automatically continue with this key after the first key expires.",
                "You have added an additional license key for project X. After the first key expires, protection of server machines will automatically continue with the reserved key.",
            ),
            (
                DesktopMachines,
                "Protected desktop machines of project X are counted under this license key.",
                "This is a reserved key. Protection of desktop machines will automatically continue with this key after the first key expires.",
                "You have added an additional license key for project X. After the first key expires, protection of desktop machines will automatically continue with the reserved key.",
            ),
            (
                Cores,
                "Processor cores of project X are counted under this license key.",
                "This is a reserved key. Processor cores will automatically be counted under this key after the first key expires.",
                "You have added an additional license key for project X. After the first key expires, processor cores will automatically be counted under the reserved key.",
            ),
            (
                Instance,
                "Instance X is licensed under this license key.",
                "This is a reserved key. Instance X will automatically be licensed under this key after the first key expires.",
                "You have added an additional license key for instance X. After the first key expires, the instance will automatically be licensed under the reserved key.",
            ),
        ];
        for (class, active, reserved, added) in table {
            assert_eq!(active_tooltip("X", class), active, "{class}");
            assert_eq!(reserved_tooltip("X", class), reserved, "{class}");
            assert_eq!(reserve_added_message("X", class), added, "{class}");
        }
        assert_eq!(reserved_tooltip("X", DataVolume), RESERVED_TOOLTIP);
    }

    /// Add License is offered exactly when the pair holds one key that can take a reserve.
    #[test]
    fn add_license_needs_one_key_that_takes_a_reserve() {
        let commercial = Key::data_volume("A", 100);
        let subscription = Key {
            kind: KeyKind::Subscription,
            ..Key::data_volume("S", 100)
        };
        let reserve = Key::data_volume("R", 100);
        let slot = |key, role| SlotContent {
            key,
            role,
            used: 0,
            account_used: 0,
        };
        let cases: [(&str, Vec<SlotContent<'_>>, bool); 4] = [
            ("no key", vec![], false),
            ("one key", vec![slot(&commercial, Role::Active)], true),
            (
                "one subscription key",
                vec![slot(&subscription, Role::Active)],
                false,
            ),
            (
                "two keys",
                vec![
                    slot(&commercial, Role::Active),
                    slot(&reserve, Role::Reserved),
                ],
                false,
            ),
        ];
        for (name, slots, offered) in cases {
            let view = pair_view("P", LicenseClass::DataVolume, &slots, 0);
            assert_eq!(view.add_license_available, offered, "{name}");
        }
    }
}
