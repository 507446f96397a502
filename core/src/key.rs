//! The license key model of rule R2 in docs/rules.md, its JSON form and its validation.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use unicode_general_category::{get_general_category, GeneralCategory};
use unicode_normalization::{is_nfc, UnicodeNormalization};

use crate::error::{Error, Result};
use crate::period::Period;

/// The largest `limit_bytes` a data-volume key may carry: one byte under 64 TiB.
///
/// A slot pair meters both of its keys in one 47-bit cursor (see `slot`), so the two limits
/// together must stay below 2^47. A larger allowance is sold as several keys.
pub const MAX_LIMIT_BYTES: u64 = (1 << 46) - 1;

/// Longest project name, key id or company name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// One license key (rule R2 in docs/rules.md). Serialises to and from the key JSON shared by the
/// Rust API, the C ABI and the CLI:
///
/// ```
/// let key: tollgate_core::Key = serde_json::from_str(r#"{"id": "A-1", "delivery": "online",
///     "kind": "commercial", "edition": "standard",
///     "scheme": {"data_volume": {"limit_bytes": 1073741824}},
///     "expires_at": "2027-01-01T00:00:00Z", "auto_renew": false, "company": "Acme",
///     "activation_code": null}"#).unwrap();
/// assert_eq!(key.scheme.class().to_string(), "data_volume");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// Unique id, 1..=64 bytes, no NUL, control or format characters, in NFC (see
    /// [`check_name`]).
    pub id: String,
    /// Online or offline delivery (its Type, rule R2 in docs/rules.md).
    pub delivery: Delivery,
    /// Commercial, trial or subscription.
    pub kind: KeyKind,
    /// Standard or enterprise.
    pub edition: Edition,
    /// What the key limits.
    pub scheme: Scheme,
    /// When the key stops being valid (UTC); `None` never expires.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Whether the vendor renews the key automatically.
    #[serde(default)]
    pub auto_renew: bool,
    /// The company that owns the key, if any.
    #[serde(default)]
    pub company: Option<String>,
    /// Code that lets an online key be renewed by the activation service.
    #[serde(default)]
    pub activation_code: Option<String>,
    /// Days an expired Active data-volume key keeps granting when no valid reserve can take
    /// over, 1..=[`MAX_GRACE_DAYS`] (see [`Key::grace_ends_at`]); `None` for no grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_days: Option<u32>,
    /// How far past its limit a data-volume key may be used, in percent of the limit
    /// (1..=[`MAX_OVERAGE_PERCENT`]), once no reserve is held to take over (see
    /// [`Key::overage_bytes`]); `None` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overage_percent: Option<u32>,
    /// When a data-volume key's usage returns to 0 (UTC period boundaries, see [`Period`]);
    /// `None` never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<Period>,
}

/// The longest grace a key may carry, in days.
pub const MAX_GRACE_DAYS: u32 = 365;

/// The largest overage a key may carry, in percent of its limit.
pub const MAX_OVERAGE_PERCENT: u32 = 100;

/// How a key is delivered and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Activated against the vendor's service.
    Online,
    /// Activated from a license file.
    Offline,
}

/// The commercial nature of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Bought outright.
    Commercial,
    /// Evaluation.
    Trial,
    /// Paid per period; takes no reserve key (rule R20 in docs/rules.md).
    Subscription,
}

/// The product edition a key unlocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Edition {
    /// Standard edition.
    Standard,
    /// Enterprise edition.
    Enterprise,
}

/// Operating-system class of protected machines (rule R2 in docs/rules.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineOs {
    /// Server operating systems.
    Server,
    /// Desktop operating systems.
    Desktop,
}

/// What a key limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Scheme {
    /// Cumulative bytes migrated (rule R2 in docs/rules.md).
    DataVolume {
        /// Bytes the key allows, 1..=[`MAX_LIMIT_BYTES`].
        limit_bytes: u64,
    },
    /// Concurrent protected machines of one OS class (rule R2 in docs/rules.md).
    PerMachine {
        /// Which machines the key covers.
        os: MachineOs,
        /// How many at once.
        max_machines: u32,
    },
    /// Concurrent processor cores, any OS (rule R2 in docs/rules.md).
    PerCore {
        /// How many cores at once.
        max_cores: u32,
    },
    /// One instance, no amount (rule R2 in docs/rules.md).
    PerInstance,
}

/// The license class a slot pair is kept for: the scheme, and for per-machine keys also the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LicenseClass {
    /// Data-volume keys.
    DataVolume,
    /// Per-machine keys for server OSes.
    ServerMachines,
    /// Per-machine keys for desktop OSes.
    DesktopMachines,
    /// Per-core keys.
    Cores,
    /// Per-instance keys.
    Instance,
}

impl LicenseClass {
    /// The stable name used in storage, JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseClass::DataVolume => "data_volume",
            LicenseClass::ServerMachines => "per_machine server",
            LicenseClass::DesktopMachines => "per_machine desktop",
            LicenseClass::Cores => "per_core",
            LicenseClass::Instance => "per_instance",
        }
    }

    /// The seat classes by their short names, as the C ABI, Python and the command line take
    /// them: `server`, `desktop`, `cores`, `instance`.
    pub fn from_seat_name(name: &str) -> Option<Self> {
        match name {
            "server" => Some(LicenseClass::ServerMachines),
            "desktop" => Some(LicenseClass::DesktopMachines),
            "cores" => Some(LicenseClass::Cores),
            "instance" => Some(LicenseClass::Instance),
            _ => None,
        }
    }

    /// Parses [`LicenseClass::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        [
            LicenseClass::DataVolume,
            LicenseClass::ServerMachines,
            LicenseClass::DesktopMachines,
            LicenseClass::Cores,
            LicenseClass::Instance,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for LicenseClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Scheme {
    /// The slot-pair class this scheme belongs to.
    pub fn class(&self) -> LicenseClass {
        match self {
            Scheme::DataVolume { .. } => LicenseClass::DataVolume,
            Scheme::PerMachine {
                os: MachineOs::Server,
                ..
            } => LicenseClass::ServerMachines,
            Scheme::PerMachine {
                os: MachineOs::Desktop,
                ..
            } => LicenseClass::DesktopMachines,
            Scheme::PerCore { .. } => LicenseClass::Cores,
            Scheme::PerInstance => LicenseClass::Instance,
        }
    }

    /// The amount the key allows: bytes, machines, cores, or 1 instance.
    pub fn amount(&self) -> u64 {
        match *self {
            Scheme::DataVolume { limit_bytes } => limit_bytes,
            Scheme::PerMachine { max_machines, .. } => max_machines.into(),
            Scheme::PerCore { max_cores } => max_cores.into(),
            Scheme::PerInstance => 1,
        }
    }
}

impl Delivery {
    /// Lower-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Online => "online",
            Delivery::Offline => "offline",
        }
    }

    /// The label a card shows in its Type field (rule R27 in docs/rules.md).
    pub fn label(self) -> &'static str {
        match self {
            Delivery::Online => "Online",
            Delivery::Offline => "Offline",
        }
    }
}

impl Edition {
    /// Lower-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Standard => "standard",
            Edition::Enterprise => "enterprise",
        }
    }
}

impl Key {
    /// An online, commercial, standard-edition data-volume key of `limit_bytes` that never
    /// expires: the common case, to adjust with struct update syntax.
    ///
    /// ```
    /// let key = tollgate_core::Key::data_volume("A-1", 1 << 30);
    /// assert_eq!(key.scheme.amount(), 1 << 30);
    /// ```
    pub fn data_volume(id: &str, limit_bytes: u64) -> Key {
        Key {
            id: id.into(),
            delivery: Delivery::Online,
            kind: KeyKind::Commercial,
            edition: Edition::Standard,
            scheme: Scheme::DataVolume { limit_bytes },
            expires_at: None,
            auto_renew: false,
            company: None,
            activation_code: None,
            grace_days: None,
            overage_percent: None,
            reset: None,
        }
    }

    /// Parses and validates key JSON.
    pub fn from_json(json: &str) -> Result<Key> {
        let key: Key =
            serde_json::from_str(json).map_err(|e| Error::invalid("key JSON", e.to_string()))?;
        key.validate()?;
        Ok(key)
    }

    /// The key as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a key always serialises")
    }

    /// Checks every field's bounds; the error names the field at fault.
    pub fn validate(&self) -> Result<()> {
        check_name("key id", &self.id)?;
        if let Some(company) = &self.company {
            check_name("company", company)?;
        }
        if let Some(code) = &self.activation_code {
            if code.is_empty() || code.len() > 256 || code.chars().any(char::is_control) {
                return Err(Error::invalid(
                    "activation_code",
                    "must be 1..=256 bytes without control characters",
                ));
            }
        }
        self.validate_grace()?;
        self.validate_overage()?;
        if self.reset.is_some() {
            self.term_of_data_volume("reset", "a reset")?;
        }
        match self.scheme {
            Scheme::DataVolume { limit_bytes: 0 } => Err(Error::invalid(
                "limit_bytes",
                format!("key \"{}\" has a limit of 0 bytes", self.id),
            )),
            Scheme::DataVolume { limit_bytes } if limit_bytes > MAX_LIMIT_BYTES => {
                Err(Error::invalid(
                    "limit_bytes",
                    format!(
                        "key \"{}\" has a limit of {limit_bytes} bytes, above the maximum of {MAX_LIMIT_BYTES} (64 TiB less one byte)",
                        self.id
                    ),
                ))
            }
            Scheme::PerMachine { max_machines: 0, .. } => Err(Error::invalid(
                "max_machines",
                format!("key \"{}\" allows 0 machines", self.id),
            )),
            Scheme::PerCore { max_cores: 0 } => Err(Error::invalid(
                "max_cores",
                format!("key \"{}\" allows 0 cores", self.id),
            )),
            _ => Ok(()),
        }
    }

    /// The grace's bounds: days in 1..=[`MAX_GRACE_DAYS`], on a data-volume key that expires.
    fn validate_grace(&self) -> Result<()> {
        let Some(days) = self.grace_days else {
            return Ok(());
        };
        let id = &self.id;
        if days == 0 || days > MAX_GRACE_DAYS {
            return Err(Error::invalid(
                "grace_days",
                format!("key \"{id}\" has {days} days of grace; it may have 1 to {MAX_GRACE_DAYS} (omit the field for none)"),
            ));
        }
        self.term_of_data_volume("grace_days", "a grace")?;
        if self.expires_at.is_none() {
            return Err(Error::invalid(
                "grace_days",
                format!("key \"{id}\" never expires, so it has no grace to give (set expires_at or omit grace_days)"),
            ));
        }
        Ok(())
    }

    /// Refuses `term` (the key JSON `field`) on a key that is not a data-volume key.
    fn term_of_data_volume(&self, field: &'static str, term: &str) -> Result<()> {
        let class = self.scheme.class();
        if class == LicenseClass::DataVolume {
            return Ok(());
        }
        Err(Error::invalid(
            field,
            format!(
                "key \"{}\" is a {class} key; only data_volume keys take {term}",
                self.id
            ),
        ))
    }

    /// The overage's bounds: 1..=[`MAX_OVERAGE_PERCENT`] percent, on a data-volume key.
    fn validate_overage(&self) -> Result<()> {
        let Some(percent) = self.overage_percent else {
            return Ok(());
        };
        let id = &self.id;
        if percent == 0 || percent > MAX_OVERAGE_PERCENT {
            return Err(Error::invalid(
                "overage_percent",
                format!("key \"{id}\" has an overage of {percent} %; it may have 1 to {MAX_OVERAGE_PERCENT} % (omit the field for none)"),
            ));
        }
        self.term_of_data_volume("overage_percent", "an overage")?;
        Ok(())
    }

    /// The bytes a data-volume key may be used beyond its limit when no reserve is held:
    /// `overage_percent` of the limit, rounded down; 0 for none.
    pub fn overage_bytes(&self) -> u64 {
        match (self.scheme, self.overage_percent) {
            (Scheme::DataVolume { limit_bytes }, Some(percent)) => {
                // u128: the product cannot overflow; the result is at most the limit.
                (u128::from(limit_bytes) * u128::from(percent.min(MAX_OVERAGE_PERCENT)) / 100)
                    as u64
            }
            _ => 0,
        }
    }

    /// When the grace of an expired key ends: `expires_at` plus `grace_days`; `None` for a key
    /// without both.
    pub fn grace_ends_at(&self) -> Option<OffsetDateTime> {
        let days = self.grace_days?;
        Some(self.expires_at? + time::Duration::days(i64::from(days)))
    }

    /// Whether the key has expired at `now_secs` (Unix seconds).
    pub fn is_expired_at(&self, now_secs: i64) -> bool {
        self.expires_at
            .is_some_and(|at| at.unix_timestamp() <= now_secs)
    }

    /// The grace as the hot state stores it: days, 0 for none.
    pub(crate) fn grace_days_hot(&self) -> u16 {
        // Validated to at most MAX_GRACE_DAYS, which fits.
        self.grace_days.map_or(0, |d| d.min(MAX_GRACE_DAYS) as u16)
    }

    /// The expiry as the hot state stores it: Unix seconds clamped into `u32`, `u32::MAX` = never.
    pub(crate) fn expiry_secs(&self) -> u32 {
        match self.expires_at {
            None => crate::clock::NEVER,
            Some(at) => at
                .unix_timestamp()
                .clamp(0, i64::from(crate::clock::NEVER - 1)) as u32,
        }
    }
}

/// Checks a project name, key id or company: 1..=64 bytes of UTF-8, no NUL or control
/// character, no format character (Unicode category Cf: bidi overrides such as U+202E, zero-width
/// characters such as U+200B), and in normalization form C.
///
/// A name that is not in NFC is refused rather than normalised: names are compared byte for
/// byte everywhere (the catalog, the C ABI, a vendor's signature over a key id), so a silently
/// rewritten name would no longer be the name the caller, or the vendor, wrote.
pub fn check_name(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(
            field,
            format!(
                "\"{}…\" is {} bytes, longer than {MAX_NAME_BYTES}",
                value.chars().take(16).collect::<String>(),
                value.len()
            ),
        ));
    }
    if value.contains('\0') {
        return Err(Error::invalid(
            field,
            format!("{value:?} contains a NUL byte"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("{value:?} contains a control character"),
        ));
    }
    if let Some(format) = value
        .chars()
        .find(|&c| get_general_category(c) == GeneralCategory::Format)
    {
        return Err(Error::invalid(
            field,
            format!(
                "{value:?} contains the invisible format character U+{:04X}, which makes a name look like another",
                u32::from(format)
            ),
        ));
    }
    if !is_nfc(value) {
        let composed: String = value.nfc().collect();
        return Err(Error::invalid(
            field,
            format!(
                "{value:?} is not in Unicode normalization form C: write it composed, as {composed:?}"
            ),
        ));
    }
    Ok(())
}

/// Formats an instant as RFC 3339 (UTC).
pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// A Unix second as RFC 3339 text.
pub(crate) fn rfc3339_secs(secs: u32) -> String {
    // Every `u32` second is in `OffsetDateTime`'s range.
    rfc3339(
        OffsetDateTime::from_unix_timestamp(i64::from(secs)).unwrap_or(OffsetDateTime::UNIX_EPOCH),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dv(id: &str, limit: u64) -> Key {
        Key::data_volume(id, limit)
    }

    #[test]
    fn json_round_trips_every_scheme() {
        for scheme in [
            r#"{"data_volume": {"limit_bytes": 1073741824}}"#,
            r#"{"per_machine": {"os": "server", "max_machines": 50}}"#,
            r#"{"per_core": {"max_cores": 64}}"#,
            r#""per_instance""#,
        ] {
            let json = format!(
                r#"{{"id": "K", "delivery": "offline", "kind": "trial", "edition": "enterprise", "scheme": {scheme}}}"#
            );
            let key = Key::from_json(&json).unwrap();
            assert_eq!(Key::from_json(&key.to_json()).unwrap(), key);
        }
    }

    #[test]
    fn optional_fields_parse() {
        let key = Key::from_json(
            r#"{"id": "A-1", "delivery": "online", "kind": "commercial", "edition": "standard",
            "scheme": {"data_volume": {"limit_bytes": 10}}, "expires_at": "2027-01-01T00:00:00Z",
            "auto_renew": true, "company": "Acme", "activation_code": "ACT-1"}"#,
        )
        .unwrap();
        assert_eq!(key.expires_at.unwrap().unix_timestamp(), 1_798_761_600);
        assert!(key.auto_renew);
        assert_eq!(key.company.as_deref(), Some("Acme"));
    }

    #[test]
    fn bad_keys_name_the_field_at_fault() {
        let cases: Vec<(Key, &str)> = vec![
            (dv("", 1), "key id"),
            (dv(&"x".repeat(65), 1), "key id"),
            (dv("a\0b", 1), "key id"),
            (dv("a\nb", 1), "key id"),
            (dv("K", 0), "limit_bytes"),
            (dv("K", MAX_LIMIT_BYTES + 1), "limit_bytes"),
            (dv("K", u64::MAX), "limit_bytes"),
            (
                Key {
                    scheme: Scheme::PerCore { max_cores: 0 },
                    ..dv("K", 1)
                },
                "max_cores",
            ),
            (
                Key {
                    scheme: Scheme::PerMachine {
                        os: MachineOs::Desktop,
                        max_machines: 0,
                    },
                    ..dv("K", 1)
                },
                "max_machines",
            ),
            (
                Key {
                    company: Some(String::new()),
                    ..dv("K", 1)
                },
                "company",
            ),
            (
                Key {
                    activation_code: Some(String::new()),
                    ..dv("K", 1)
                },
                "activation_code",
            ),
        ];
        for (key, field) in cases {
            match key.validate() {
                Err(Error::InvalidArgument { field: f, .. }) => assert_eq!(f, field, "{key:?}"),
                other => panic!("{key:?} gave {other:?}"),
            }
        }
        assert!(dv("K", MAX_LIMIT_BYTES).validate().is_ok());
    }

    /// Each bad grace gets its own error, naming the field and saying what is allowed.
    #[test]
    fn grace_rules_of_a_key() {
        let expiring = |days| Key {
            expires_at: Some(time::macros::datetime!(2027-01-01 0:00 UTC)),
            grace_days: days,
            ..dv("K", 100)
        };
        let cases = [
            (expiring(Some(0)), Some("key \"K\" has 0 days of grace; it may have 1 to 365 (omit the field for none)")),
            (expiring(Some(366)), Some("key \"K\" has 366 days of grace; it may have 1 to 365 (omit the field for none)")),
            (
                Key { grace_days: Some(5), ..dv("K", 100) },
                Some("key \"K\" never expires, so it has no grace to give (set expires_at or omit grace_days)"),
            ),
            (
                Key {
                    scheme: Scheme::PerCore { max_cores: 4 },
                    ..expiring(Some(5))
                },
                Some("key \"K\" is a per_core key; only data_volume keys take a grace"),
            ),
            (expiring(Some(1)), None),
            (expiring(Some(365)), None),
            (expiring(None), None),
        ];
        for (key, expected) in cases {
            match (key.validate(), expected) {
                (Ok(()), None) => {}
                (Err(Error::InvalidArgument { field, reason }), Some(message)) => {
                    assert_eq!((field, reason.as_str()), ("grace_days", message));
                }
                (got, _) => panic!("{:?}: got {got:?}, expected {expected:?}", key.grace_days),
            }
        }
        let key = expiring(Some(2));
        assert_eq!(
            key.grace_ends_at(),
            Some(time::macros::datetime!(2027-01-03 0:00 UTC))
        );
        // The field round-trips through the key JSON and is left out when absent, so key JSON
        // and signed licenses written before it read and verify unchanged.
        assert_eq!(Key::from_json(&key.to_json()).unwrap(), key);
        assert!(!expiring(None).to_json().contains("grace_days"));
    }

    /// Each bad overage gets its own error; a good one gives its percent of the limit.
    #[test]
    fn overage_rules_of_a_key() {
        let over = |percent| Key {
            overage_percent: percent,
            ..dv("K", 1_000)
        };
        for (key, expected) in [
            (over(Some(0)), Some("key \"K\" has an overage of 0 %; it may have 1 to 100 % (omit the field for none)")),
            (over(Some(101)), Some("key \"K\" has an overage of 101 %; it may have 1 to 100 % (omit the field for none)")),
            (
                Key {
                    scheme: Scheme::PerMachine { os: MachineOs::Server, max_machines: 5 },
                    ..over(Some(10))
                },
                Some("key \"K\" is a per_machine server key; only data_volume keys take an overage"),
            ),
            (over(Some(1)), None),
            (over(Some(100)), None),
            (over(None), None),
        ] {
            match (key.validate(), expected) {
                (Ok(()), None) => {}
                (Err(Error::InvalidArgument { field, reason }), Some(message)) => {
                    assert_eq!((field, reason.as_str()), ("overage_percent", message));
                }
                (got, _) => panic!("{:?}: got {got:?}, expected {expected:?}", key.overage_percent),
            }
        }
        assert_eq!(over(Some(15)).overage_bytes(), 150);
        assert_eq!(over(Some(100)).overage_bytes(), 1_000);
        assert_eq!(over(None).overage_bytes(), 0);
        assert_eq!(
            Key {
                overage_percent: Some(33),
                ..dv("K", 10)
            }
            .overage_bytes(),
            3,
            "rounded down"
        );
        let key = over(Some(20));
        assert_eq!(Key::from_json(&key.to_json()).unwrap(), key);
        assert!(!over(None).to_json().contains("overage_percent"));
    }

    /// A reset is for data-volume keys; its word round-trips, an unknown one is refused.
    #[test]
    fn reset_rules_of_a_key() {
        let monthly = Key {
            reset: Some(Period::Monthly),
            ..dv("K", 1_000)
        };
        assert!(monthly.validate().is_ok());
        assert!(monthly.to_json().contains(r#""reset":"monthly""#));
        assert_eq!(Key::from_json(&monthly.to_json()).unwrap(), monthly);
        assert!(!dv("K", 1_000).to_json().contains("reset"));
        let seats = Key {
            scheme: Scheme::PerCore { max_cores: 4 },
            ..monthly.clone()
        };
        match seats.validate() {
            Err(Error::InvalidArgument { field, reason }) => assert_eq!(
                (field, reason.as_str()),
                (
                    "reset",
                    "key \"K\" is a per_core key; only data_volume keys take a reset"
                )
            ),
            other => panic!("got {other:?}"),
        }
        let hourly = monthly.to_json().replace("monthly", "hourly");
        match Key::from_json(&hourly) {
            Err(Error::InvalidArgument { field, reason }) => {
                assert_eq!(field, "key JSON");
                assert!(reason.starts_with("unknown variant `hourly`, expected one of `daily`, `weekly`, `monthly`, `yearly`"), "{reason}");
            }
            other => panic!("got {other:?}"),
        }
    }

    #[test]
    fn malformed_json_is_invalid_argument() {
        for json in [
            "",
            "{}",
            "[1]",
            r#"{"id": "K", "delivery": "sideways", "kind": "trial", "edition": "standard", "scheme": "per_instance"}"#,
            r#"{"id": "K", "delivery": "online", "kind": "trial", "edition": "standard", "scheme": "per_instance", "extra": 1}"#,
            r#"{"id": "K", "delivery": "online", "kind": "trial", "edition": "standard", "scheme": {"data_volume": {"limit_bytes": -1}}}"#,
            r#"{"id": "K", "delivery": "online", "kind": "trial", "edition": "standard", "scheme": "per_instance", "expires_at": "tomorrow"}"#,
        ] {
            assert!(
                matches!(
                    Key::from_json(json),
                    Err(Error::InvalidArgument {
                        field: "key JSON",
                        ..
                    })
                ),
                "{json}"
            );
        }
    }

    #[test]
    fn classes_split_per_machine_by_os() {
        let server = Scheme::PerMachine {
            os: MachineOs::Server,
            max_machines: 1,
        };
        let desktop = Scheme::PerMachine {
            os: MachineOs::Desktop,
            max_machines: 1,
        };
        assert_ne!(server.class(), desktop.class());
        for class in [server.class(), desktop.class(), Scheme::PerInstance.class()] {
            assert_eq!(LicenseClass::parse(class.as_str()), Some(class));
        }
    }
}
