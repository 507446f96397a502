//! The catalog: the activation codes the vendor has issued, the keys each one has produced, and
//! how many renewals each has left — one JSON file, rewritten whole (temporary file, `fsync`,
//! rename) on every change, so that a crash leaves either the old file or the new one.
//!
//! ```text
//! {"codes": [{"code": "ACT-1",
//!             "key": {…key JSON; id, delivery, activation_code and expires_at are set per key…},
//!             "term_days": 365,
//!             "renewals_left": 5,
//!             "issued": [{"id": "ACT-1-1", "expires_at": "2027-01-01T00:00:00Z",
//!                         "renewed_by": "ACT-1-2"}, …]}]}
//! ```
//!
//! `issued` is the service's own record (absent in a catalog nobody has used yet): a renewal
//! starts where the service says the old key ends, whatever the customer's copy claims, and a
//! renewal that is asked for again — a client retrying after a lost answer — gets the key it
//! already got instead of spending another renewal.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};
use tollgate_core::{Delivery, Key};

use crate::error::ServiceError;
use crate::wire;

/// The longest term a code may give, in days: a hundred years, so that no expiry computed
/// from it comes near the end of the calendar `time` supports.
const MAX_TERM_DAYS: u32 = 36_525;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    codes: Vec<CodeEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeEntry {
    code: String,
    /// Kept as the operator wrote it, and only parsed into a `Key` when one is issued.
    key: Map<String, Value>,
    term_days: u32,
    renewals_left: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    issued: Vec<IssuedKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuedKey {
    id: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    renewed_by: Option<String>,
}

/// Why the service will not issue a key; each becomes an HTTP status and a wire code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    UnknownCode { code: String },
    UnknownKey { code: String, key_id: String },
    NoRenewalsLeft { code: String },
    Storage(String),
    Internal(String),
}

impl Refusal {
    /// The HTTP status, the wire code and the message.
    pub(crate) fn describe(&self) -> (StatusCode, &'static str, String) {
        match self {
            Refusal::UnknownCode { code } => (
                StatusCode::NOT_FOUND,
                wire::UNKNOWN_CODE,
                format!("activation code \"{code}\" is not known to this service"),
            ),
            Refusal::UnknownKey { code, key_id } => (
                StatusCode::NOT_FOUND,
                wire::UNKNOWN_KEY,
                format!("key \"{key_id}\" was not issued for activation code \"{code}\""),
            ),
            Refusal::NoRenewalsLeft { code } => (
                StatusCode::CONFLICT,
                wire::NO_RENEWALS_LEFT,
                format!("activation code \"{code}\" has no renewals left"),
            ),
            Refusal::Storage(reason) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                wire::STORAGE_FAILED,
                format!("the service could not record the change, and made none: {reason}"),
            ),
            Refusal::Internal(reason) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                wire::INTERNAL,
                reason.clone(),
            ),
        }
    }
}

/// The catalog file and its contents in memory.
#[derive(Debug)]
pub(crate) struct Catalog {
    path: PathBuf,
    file: CatalogFile,
}

impl Catalog {
    /// Reads and checks the catalog: unique codes, terms of 1 to 36,525 days, and templates
    /// that make valid keys. Refused whole if any code is wrong, naming the code.
    pub(crate) fn open(path: &Path) -> Result<Catalog, ServiceError> {
        let invalid = |reason: String| ServiceError::Catalog {
            path: path.to_owned(),
            reason,
        };
        let text = fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let file: CatalogFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        for (i, entry) in file.codes.iter().enumerate() {
            if file.codes[..i].iter().any(|e| e.code == entry.code) {
                return Err(invalid(format!(
                    "activation code \"{}\" is listed twice",
                    entry.code
                )));
            }
            if !(1..=MAX_TERM_DAYS).contains(&entry.term_days) {
                return Err(invalid(format!(
                    "activation code \"{}\" has a term of {} days; a term is 1 to {MAX_TERM_DAYS} days",
                    entry.code, entry.term_days
                )));
            }
            // The longest id the code can ever produce must still be a valid key id.
            let longest_id = key_id(&entry.code, u32::MAX as usize);
            entry
                .issue(&longest_id, OffsetDateTime::UNIX_EPOCH)
                .map_err(|reason| {
                    invalid(format!(
                        "activation code \"{}\" does not make a valid key: {reason}",
                        entry.code
                    ))
                })?;
        }
        Ok(Catalog {
            path: path.to_owned(),
            file,
        })
    }

    /// Issues a new key for `code`, its term starting `now`.
    pub(crate) fn activate(&mut self, code: &str, now: OffsetDateTime) -> Result<Key, Refusal> {
        self.change(|file| {
            let entry = file.entry(code)?;
            let expires_at = entry.term_from(now);
            entry.push_new(expires_at)
        })
    }

    /// Issues the successor of `key_id`, its term starting when `key_id` ends, or `now` if
    /// that is later. A key renewed before gets the successor it already has (the last of the
    /// chain, if that one was renewed too), and no renewal is spent.
    pub(crate) fn renew(
        &mut self,
        code: &str,
        key_id: &str,
        now: OffsetDateTime,
    ) -> Result<Key, Refusal> {
        self.change(|file| {
            let entry = file.entry(code)?;
            let unknown = || Refusal::UnknownKey {
                code: code.to_owned(),
                key_id: key_id.to_owned(),
            };
            let mut at = entry.issued.iter().position(|k| k.id == key_id).ok_or_else(unknown)?;
            if entry.issued[at].renewed_by.is_some() {
                while let Some(next) = &entry.issued[at].renewed_by {
                    at = entry
                        .issued
                        .iter()
                        .position(|k| &k.id == next)
                        .ok_or_else(|| Refusal::Internal(format!("the catalog says key \"{}\" was renewed by \"{next}\", which it does not list", entry.issued[at].id)))?;
                }
                let latest = &entry.issued[at];
                return entry.issue(&latest.id, latest.expires_at).map_err(Refusal::Internal);
            }
            if entry.renewals_left == 0 {
                return Err(Refusal::NoRenewalsLeft {
                    code: code.to_owned(),
                });
            }
            let expires_at = entry.term_from(entry.issued[at].expires_at.max(now));
            let key = entry.push_new(expires_at)?;
            entry.issued[at].renewed_by = Some(key.id.clone());
            entry.renewals_left -= 1;
            Ok(key)
        })
    }

    /// Applies `change` to a copy of the catalog, writes the copy, and only then keeps it: a
    /// refusal or a failed write leaves the catalog, in memory and on disk, as it was.
    fn change(
        &mut self,
        change: impl FnOnce(&mut CatalogFile) -> Result<Key, Refusal>,
    ) -> Result<Key, Refusal> {
        let mut next = self.file.clone();
        let key = change(&mut next)?;
        write_atomically(&self.path, &next).map_err(|e| Refusal::Storage(e.to_string()))?;
        self.file = next;
        Ok(key)
    }
}

impl CatalogFile {
    fn entry(&mut self, code: &str) -> Result<&mut CodeEntry, Refusal> {
        self.codes
            .iter_mut()
            .find(|e| e.code == code)
            .ok_or_else(|| Refusal::UnknownCode {
                code: code.to_owned(),
            })
    }
}

impl CodeEntry {
    /// The expiry of a term of this code that starts at `start`, to the whole second.
    fn term_from(&self, start: OffsetDateTime) -> OffsetDateTime {
        start
            .saturating_add(Duration::days(self.term_days.into()))
            .replace_nanosecond(0)
            .expect("0 is a valid nanosecond")
    }

    /// Records and returns a new key of this code, numbered after those it already issued.
    fn push_new(&mut self, expires_at: OffsetDateTime) -> Result<Key, Refusal> {
        let id = key_id(&self.code, self.issued.len() + 1);
        let key = self.issue(&id, expires_at).map_err(Refusal::Internal)?;
        self.issued.push(IssuedKey {
            id,
            expires_at,
            renewed_by: None,
        });
        Ok(key)
    }

    /// The key `id` of this code: the template with the id, online delivery, the code and the
    /// expiry set, whatever the template says of them (so the template may leave them out).
    fn issue(&self, id: &str, expires_at: OffsetDateTime) -> Result<Key, String> {
        let mut template = self.key.clone();
        template.insert("id".into(), id.into());
        template.insert("delivery".into(), "online".into());
        let mut key: Key = serde_json::from_value(Value::Object(template))
            .map_err(|e| format!("the key template is not key JSON: {e}"))?;
        key.delivery = Delivery::Online;
        key.activation_code = Some(self.code.clone());
        key.expires_at = Some(expires_at);
        key.validate().map_err(|e| e.to_string())?;
        Ok(key)
    }
}

/// The id of the `n`th key (from 1) issued for `code`.
fn key_id(code: &str, n: usize) -> String {
    format!("{code}-{n}")
}

/// Replaces `path` with `file`: written beside it, synced, renamed over it, and the directory
/// synced, so that the rename itself survives a power cut.
fn write_atomically(path: &Path, file: &CatalogFile) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(file)?;
    text.push('\n');
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut out = File::create(&temporary)?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    drop(out);
    fs::rename(&temporary, path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const TEMPLATE: &str = r#"{"kind": "subscription", "edition": "enterprise",
        "scheme": {"per_core": {"max_cores": 16}}, "company": "Acme"}"#;

    fn catalog_text(renewals_left: u32) -> String {
        format!(
            r#"{{"codes": [{{"code": "ACT-1", "key": {TEMPLATE}, "term_days": 30, "renewals_left": {renewals_left}}},
                          {{"code": "ACT-2", "key": {TEMPLATE}, "term_days": 1, "renewals_left": 0}}]}}"#
        )
    }

    fn open(text: &str) -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("codes.json");
        fs::write(&path, text).unwrap();
        let catalog = Catalog::open(&path).unwrap();
        (dir, catalog)
    }

    fn reopen(catalog: &Catalog) -> Catalog {
        Catalog::open(&catalog.path).unwrap()
    }

    const NOW: OffsetDateTime = datetime!(2027-03-01 12:00:00.5 UTC);

    #[test]
    fn activation_fills_in_the_template_and_numbers_the_keys() {
        let (_dir, mut catalog) = open(&catalog_text(1));
        let first = catalog.activate("ACT-1", NOW).unwrap();
        let expected = Key {
            id: "ACT-1-1".into(),
            delivery: Delivery::Online,
            activation_code: Some("ACT-1".into()),
            expires_at: Some(datetime!(2027-03-31 12:00:00 UTC)),
            ..Key::from_json(&TEMPLATE.replacen('{', r#"{"id": "x", "delivery": "offline", "#, 1))
                .unwrap()
        };
        assert_eq!(first, expected);
        assert_eq!(catalog.activate("ACT-1", NOW).unwrap().id, "ACT-1-2");
        assert_eq!(catalog.activate("ACT-2", NOW).unwrap().id, "ACT-2-1");
        assert_eq!(
            reopen(&catalog).activate("ACT-1", NOW).unwrap().id,
            "ACT-1-3"
        );
    }

    #[test]
    fn a_template_cannot_override_what_the_service_sets() {
        let template = r#"{"id": "MINE", "delivery": "offline", "activation_code": "OTHER",
            "expires_at": "2099-01-01T00:00:00Z", "kind": "trial", "edition": "standard",
            "scheme": "per_instance"}"#;
        let (_dir, mut catalog) = open(&format!(
            r#"{{"codes": [{{"code": "C", "key": {template}, "term_days": 2, "renewals_left": 0}}]}}"#
        ));
        let key = catalog.activate("C", NOW).unwrap();
        assert_eq!(
            (
                key.id.as_str(),
                key.delivery,
                key.activation_code.as_deref()
            ),
            ("C-1", Delivery::Online, Some("C"))
        );
        assert_eq!(key.expires_at, Some(datetime!(2027-03-03 12:00:00 UTC)));
    }

    #[test]
    fn renewal_starts_at_the_old_expiry_or_now_and_spends_one_renewal() {
        let (_dir, mut catalog) = open(&catalog_text(2));
        let first = catalog.activate("ACT-1", NOW).unwrap();
        // Renewed early: the new term follows the old one.
        let second = catalog.renew("ACT-1", "ACT-1-1", NOW).unwrap();
        assert_eq!(second.id, "ACT-1-2");
        assert_eq!(
            second.expires_at.unwrap(),
            first.expires_at.unwrap() + Duration::days(30)
        );
        // Renewed late: the new term starts now.
        let late = datetime!(2027-06-01 00:00:00 UTC);
        let third = catalog.renew("ACT-1", "ACT-1-2", late).unwrap();
        assert_eq!(third.expires_at.unwrap(), late + Duration::days(30));
        assert_eq!(
            catalog.renew("ACT-1", "ACT-1-3", late),
            Err(Refusal::NoRenewalsLeft {
                code: "ACT-1".into()
            })
        );
        assert_eq!(reopen(&catalog).file.codes[0].renewals_left, 0);
    }

    #[test]
    fn renewing_a_renewed_key_again_returns_its_latest_successor_for_free() {
        let (_dir, mut catalog) = open(&catalog_text(2));
        catalog.activate("ACT-1", NOW).unwrap();
        let second = catalog.renew("ACT-1", "ACT-1-1", NOW).unwrap();
        assert_eq!(catalog.renew("ACT-1", "ACT-1-1", NOW).unwrap(), second);
        let third = catalog.renew("ACT-1", "ACT-1-2", NOW).unwrap();
        let mut reopened = reopen(&catalog);
        assert_eq!(reopened.renew("ACT-1", "ACT-1-1", NOW).unwrap(), third);
        assert_eq!(reopened.file.codes[0].renewals_left, 0);
    }

    #[test]
    fn unknown_codes_and_keys_are_refused_and_change_nothing() {
        let (_dir, mut catalog) = open(&catalog_text(1));
        catalog.activate("ACT-2", NOW).unwrap();
        let before = fs::read_to_string(&catalog.path).unwrap();
        assert_eq!(
            catalog.activate("ACT-9", NOW),
            Err(Refusal::UnknownCode {
                code: "ACT-9".into()
            })
        );
        // A key of another code is unknown to this one.
        assert_eq!(
            catalog.renew("ACT-1", "ACT-2-1", NOW),
            Err(Refusal::UnknownKey {
                code: "ACT-1".into(),
                key_id: "ACT-2-1".into()
            })
        );
        assert_eq!(fs::read_to_string(&catalog.path).unwrap(), before);
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let (dir, mut catalog) = open(&catalog_text(1));
        catalog.activate("ACT-1", NOW).unwrap();
        // A directory where the temporary file goes makes the write fail.
        fs::create_dir(dir.path().join("codes.json.tmp")).unwrap();
        assert!(matches!(
            catalog.renew("ACT-1", "ACT-1-1", NOW),
            Err(Refusal::Storage(_))
        ));
        fs::remove_dir(dir.path().join("codes.json.tmp")).unwrap();
        assert_eq!(catalog.file.codes[0].renewals_left, 1);
        assert_eq!(
            catalog.renew("ACT-1", "ACT-1-1", NOW).unwrap().id,
            "ACT-1-2"
        );
    }

    #[test]
    fn a_wrong_catalog_is_refused_naming_the_fault() {
        let entry = |code: &str, term: u32, key: &str| {
            format!(
                r#"{{"code": "{code}", "key": {key}, "term_days": {term}, "renewals_left": 1}}"#
            )
        };
        let cases = [
            ("not json".to_owned(), "expected"),
            (r#"{"codes": [], "extra": 1}"#.to_owned(), "unknown field"),
            (
                format!(
                    r#"{{"codes": [{}, {}]}}"#,
                    entry("A", 1, TEMPLATE),
                    entry("A", 1, TEMPLATE)
                ),
                "\"A\" is listed twice",
            ),
            (
                format!(r#"{{"codes": [{}]}}"#, entry("A", 0, TEMPLATE)),
                "term of 0 days",
            ),
            (
                format!(
                    r#"{{"codes": [{}]}}"#,
                    entry("A", 1, r#"{"kind": "trial"}"#)
                ),
                "\"A\" does not make a valid key: the key template is not key JSON",
            ),
            (
                format!(r#"{{"codes": [{}]}}"#, entry(&"L".repeat(60), 1, TEMPLATE)),
                "does not make a valid key",
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("codes.json");
        for (text, expected) in cases {
            fs::write(&path, &text).unwrap();
            let error = Catalog::open(&path).unwrap_err().to_string();
            assert!(
                error.contains(expected),
                "{text}: {error:?} lacks {expected:?}"
            );
        }
        let missing = Catalog::open(&dir.path().join("none.json")).unwrap_err();
        assert!(missing.to_string().contains("none.json"), "{missing}");
    }
}
