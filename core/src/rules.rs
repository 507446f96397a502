//! The admission rules R5–R7 and the replacement rules R18–R19 of docs/rules.md, as pure functions
//! over keys.

use crate::error::{Error, Result};
use crate::key::{rfc3339, Key, KeyKind};

/// Checks a key about to enter any slot: its id must be unused and it must not have expired.
pub(crate) fn admit_new(new: &Key, now_secs: i64, id_taken: bool) -> Result<()> {
    if id_taken {
        return Err(Error::DuplicateKey { id: new.id.clone() });
    }
    if new.is_expired_at(now_secs) {
        return Err(expired(new));
    }
    Ok(())
}

/// Checks `new` as the reserve of a pair whose Active key is `active` and whose Reserved slot
/// holds `reserve`. The checks run in the order of rule R6 in docs/rules.md; the first that fails
/// is the error.
pub(crate) fn admit_reserve(
    project: &str,
    active: &Key,
    reserve: Option<&Key>,
    new: &Key,
    now_secs: i64,
    id_taken: bool,
) -> Result<()> {
    check_pairing(active, new)?;
    if let Some(reserve) = reserve {
        return Err(Error::ReserveOccupied {
            project: project.to_owned(),
            reserve: reserve.id.clone(),
        });
    }
    admit_new(new, now_secs, id_taken)
}

/// The rules (R6 in docs/rules.md) that tie a Reserved key to the Active key beside it: neither is
/// a subscription key, and both share delivery, edition and license class. Checked when a reserve
/// is added, and again when the Active key is replaced, because a pair must satisfy them at all
/// times, not only when its reserve arrived.
pub(crate) fn check_pairing(active: &Key, reserve: &Key) -> Result<()> {
    for key in [active, reserve] {
        if key.kind == KeyKind::Subscription {
            return Err(Error::Subscription {
                key: key.id.clone(),
            });
        }
    }
    if reserve.delivery != active.delivery {
        return Err(Error::TypeMismatch {
            reserve: reserve.id.clone(),
            reserve_delivery: reserve.delivery.as_str(),
            active: active.id.clone(),
            active_delivery: active.delivery.as_str(),
        });
    }
    if reserve.edition != active.edition {
        return Err(Error::EditionMismatch {
            reserve: reserve.id.clone(),
            reserve_edition: reserve.edition.as_str(),
            active: active.id.clone(),
            active_edition: active.edition.as_str(),
        });
    }
    check_same_class(active, reserve)
}

/// Checks `new` as the replacement of the Active key `active` (a renewal) in a pair whose
/// Reserved slot holds `reserve`, and says whether that reserve stays.
///
/// A reserve that expires before `new`'s term ends is removed by the replacement (rule R19 in
/// docs/rules.md, see [`reserve_ends_first`]); the one it would keep must pair with `new` under
/// [`check_pairing`], else the replacement is refused with that rule's error and changes
/// nothing. Refusing rather than removing the reserve keeps a key the customer paid for: a
/// removed key's id stays used, so it could never be added anywhere again, and the operator
/// who meant to drop it says so with `remove_reserve` first.
pub(crate) fn admit_replacement(
    active: &Key,
    reserve: Option<&Key>,
    new: &Key,
    now_secs: i64,
    id_taken: bool,
) -> Result<bool> {
    check_same_class(active, new)?;
    admit_new(new, now_secs, id_taken)?;
    match reserve {
        Some(reserve) if !reserve_ends_first(reserve, new) => {
            check_pairing(new, reserve)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Rule R19 in docs/rules.md: when the Active key is replaced, a reserve that expires before the
/// new key's term ends is removed. A reserve without expiry always stays; one with an expiry goes
/// when the new key never expires.
pub(crate) fn reserve_ends_first(reserve: &Key, new_active: &Key) -> bool {
    match (reserve.expires_at, new_active.expires_at) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(r), Some(n)) => r < n,
    }
}

/// The error for a reserve offered to a pair of another class.
pub(crate) fn check_same_class(active: &Key, new: &Key) -> Result<()> {
    if new.scheme.class() != active.scheme.class() {
        return Err(Error::SchemeMismatch {
            reserve: new.id.clone(),
            reserve_class: new.scheme.class().to_string(),
            active: active.id.clone(),
            active_class: active.scheme.class().to_string(),
        });
    }
    Ok(())
}

fn expired(key: &Key) -> Error {
    Error::KeyExpired {
        id: key.id.clone(),
        expired_at: key.expires_at.map(rfc3339).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{Delivery, Edition, MachineOs, Scheme};
    use time::macros::datetime;

    const NOW: i64 = 1_800_000_000;

    fn key(id: &str) -> Key {
        Key::data_volume(id, 100)
    }

    /// Every rule of R6 (docs/rules.md) for a reserve, one fault at a time, with its exact error.
    #[test]
    fn reserve_rules_table() {
        let active = key("A");
        let subscription = Key {
            kind: KeyKind::Subscription,
            ..key("S")
        };
        let server = Key {
            scheme: Scheme::PerMachine {
                os: MachineOs::Server,
                max_machines: 5,
            },
            ..key("SRV")
        };
        let desktop = Key {
            scheme: Scheme::PerMachine {
                os: MachineOs::Desktop,
                max_machines: 5,
            },
            ..key("DSK")
        };
        let occupied = key("R0");
        type Case<'a> = (&'a str, &'a Key, Option<&'a Key>, Key, bool, &'a str);
        let cases: Vec<Case> = vec![
            ("fits", &active, None, key("R"), false, "ok"),
            (
                "active is a subscription",
                &subscription,
                None,
                key("R"),
                false,
                "Subscription { key: \"S\"",
            ),
            (
                "new is a subscription",
                &active,
                None,
                Key {
                    kind: KeyKind::Subscription,
                    ..key("R")
                },
                false,
                "Subscription { key: \"R\"",
            ),
            (
                "offline reserve for online active",
                &active,
                None,
                Key {
                    delivery: Delivery::Offline,
                    ..key("R")
                },
                false,
                "TypeMismatch",
            ),
            (
                "enterprise reserve for standard active",
                &active,
                None,
                Key {
                    edition: Edition::Enterprise,
                    ..key("R")
                },
                false,
                "EditionMismatch",
            ),
            (
                "per-core reserve for data volume",
                &active,
                None,
                Key {
                    scheme: Scheme::PerCore { max_cores: 4 },
                    ..key("R")
                },
                false,
                "SchemeMismatch",
            ),
            (
                "desktop reserve for server pair",
                &server,
                None,
                desktop.clone(),
                false,
                "SchemeMismatch",
            ),
            (
                "reserve slot taken",
                &active,
                Some(&occupied),
                key("R"),
                false,
                "ReserveOccupied",
            ),
            (
                "id already used",
                &active,
                None,
                key("R"),
                true,
                "DuplicateKey",
            ),
            (
                "already expired",
                &active,
                None,
                Key {
                    expires_at: Some(datetime!(2020-01-01 0:00 UTC)),
                    ..key("R")
                },
                false,
                "KeyExpired",
            ),
            (
                "expires exactly now",
                &active,
                None,
                Key {
                    expires_at: Some(time::OffsetDateTime::from_unix_timestamp(NOW).unwrap()),
                    ..key("R")
                },
                false,
                "KeyExpired",
            ),
        ];
        for (name, active, reserve, new, taken, expected) in cases {
            let got = match admit_reserve("P", active, reserve, &new, NOW, taken) {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("{e:?}"),
            };
            assert!(got.starts_with(expected), "{name}: got {got}");
        }
    }

    #[test]
    fn messages_name_the_values_at_fault() {
        let err = admit_reserve(
            "P",
            &key("K-1"),
            None,
            &Key {
                delivery: Delivery::Offline,
                ..key("K-2")
            },
            NOW,
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "reserve key \"K-2\" is offline but the active key \"K-1\" is online"
        );
    }

    #[test]
    fn replacement_must_keep_the_class() {
        let err = admit_replacement(
            &key("A"),
            None,
            &Key {
                scheme: Scheme::PerInstance,
                ..key("B")
            },
            NOW,
            false,
        )
        .unwrap_err();
        assert!(matches!(err, Error::SchemeMismatch { .. }));
        assert!(admit_replacement(&key("A"), None, &key("B"), NOW, false).is_ok());
    }

    #[test]
    fn reserve_removal_on_renewal_table() {
        let at = |y: i32| {
            Some(
                time::Date::from_calendar_date(y, time::Month::January, 1)
                    .unwrap()
                    .midnight()
                    .assume_utc(),
            )
        };
        let with = |expires_at| Key {
            expires_at,
            ..key("X")
        };
        let cases = [
            (None, None, false),
            (None, at(2030), false),
            (at(2030), None, true),
            (at(2029), at(2030), true),
            (at(2030), at(2030), false),
            (at(2031), at(2030), false),
        ];
        for (reserve, new, removed) in cases {
            assert_eq!(
                reserve_ends_first(&with(reserve), &with(new)),
                removed,
                "reserve {reserve:?}, new {new:?}"
            );
        }
    }
}
