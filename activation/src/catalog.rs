//! The catalog: the activation codes the vendor has issued, the keys each one has produced, and
//! how many renewals each has left — one JSON file, rewritten whole (temporary file, `fsync`,
//! rename) on every change, so that a crash leaves either the old file or the new one.
//!
//! ```text
//! {"codes": [{"code": "ACT-1",
//!             "key": {…key JSON; id, delivery, activation_code and expires_at are set per key…},
//!             "term_days": 365,
//!             "renewals_left": 5,
//!             "activations": 3,
//!             "issued": [{"id": "ACT-1-1", "expires_at": "2027-01-01T00:00:00Z",
//!                         "machine": "9f2c…", "renewed_by": "ACT-1-2"}, …]}]}
//! ```
//!
//! `activations` is how many machines the code activates on (1 if absent). `issued` is the
//! service's own record (absent in a catalog nobody has used yet): each activation with the
//! machine that asked, so that one past the limit is refused and a machine that asks again gets
//! the key it already has; a renewal starts where the service says the old key ends, whatever
//! the customer's copy claims, and a renewal that is asked for again — a client retrying after a
//! lost answer — gets the key it already got instead of spending another renewal.
//!
//! The file keeps its permissions across rewrites: a catalog the vendor made readable by the
//! service's user only stays so.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
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
    /// How many machines the code activates on.
    #[serde(default = "one")]
    activations: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    issued: Vec<IssuedKey>,
}

/// A code activates on one machine unless its entry says otherwise.
fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuedKey {
    id: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    /// The machine that activated the code, on a key an activation issued (a renewal's
    /// successor has none). Absent on activations recorded before machines were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    machine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    renewed_by: Option<String>,
}

/// Why the service will not issue a key; each becomes an HTTP status and a wire code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    UnknownCode { code: String },
    UnknownKey { code: String, key_id: String },
    NoRenewalsLeft { code: String },
    NoActivationsLeft { code: String, allowed: u32 },
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
            Refusal::NoActivationsLeft { code, allowed } => (
                StatusCode::CONFLICT,
                wire::NO_ACTIVATIONS_LEFT,
                match allowed {
                    1 => format!(
                        "activation code \"{code}\" has no activations left: its one activation \
is used by another machine"
                    ),
                    n => format!(
                        "activation code \"{code}\" has no activations left: all {n} are used by \
other machines"
                    ),
                },
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
            if entry.activations == 0 {
                return Err(invalid(format!(
                    "activation code \"{}\" allows 0 activations; a code allows at least 1",
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

    /// Activates `code` on `machine`: a new key, its term starting `now`, while the code has
    /// activations left. A machine that activated the code before gets its key again (the
    /// latest renewal of it) and spends nothing, so a client may retry an activation whose
    /// answer it lost.
    pub(crate) fn activate(
        &mut self,
        code: &str,
        machine: &str,
        now: OffsetDateTime,
    ) -> Result<Key, Refusal> {
        self.change(|file| {
            let entry = file.entry(code)?;
            if let Some(at) = entry
                .issued
                .iter()
                .position(|k| k.machine.as_deref() == Some(machine))
            {
                let latest = &entry.issued[entry.latest_successor(at)?];
                return entry
                    .issue(&latest.id, latest.expires_at)
                    .map_err(Refusal::Internal);
            }
            // Every issued key is an activation or one renewal's successor.
            let successors = entry
                .issued
                .iter()
                .filter(|k| k.renewed_by.is_some())
                .count();
            if entry.issued.len() - successors >= entry.activations as usize {
                return Err(Refusal::NoActivationsLeft {
                    code: code.to_owned(),
                    allowed: entry.activations,
                });
            }
            let expires_at = entry.term_from(now);
            entry.push_new(expires_at, Some(machine))
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
            let at = entry
                .issued
                .iter()
                .position(|k| k.id == key_id)
                .ok_or_else(unknown)?;
            if entry.issued[at].renewed_by.is_some() {
                let latest = &entry.issued[entry.latest_successor(at)?];
                return entry
                    .issue(&latest.id, latest.expires_at)
                    .map_err(Refusal::Internal);
            }
            if entry.renewals_left == 0 {
                return Err(Refusal::NoRenewalsLeft {
                    code: code.to_owned(),
                });
            }
            let expires_at = entry.term_from(entry.issued[at].expires_at.max(now));
            let key = entry.push_new(expires_at, None)?;
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

    /// The position of the last key of the renewal chain that starts at issued key `at`.
    fn latest_successor(&self, mut at: usize) -> Result<usize, Refusal> {
        while let Some(next) = &self.issued[at].renewed_by {
            at = self
                .issued
                .iter()
                .position(|k| &k.id == next)
                .ok_or_else(|| {
                    Refusal::Internal(format!(
                    "the catalog says key \"{}\" was renewed by \"{next}\", which it does not list",
                    self.issued[at].id
                ))
                })?;
        }
        Ok(at)
    }

    /// Records and returns a new key of this code, numbered after those it already issued;
    /// `machine` is the machine an activation issues it to.
    fn push_new(
        &mut self,
        expires_at: OffsetDateTime,
        machine: Option<&str>,
    ) -> Result<Key, Refusal> {
        let id = key_id(&self.code, self.issued.len() + 1);
        let key = self.issue(&id, expires_at).map_err(Refusal::Internal)?;
        self.issued.push(IssuedKey {
            id,
            expires_at,
            machine: machine.map(str::to_owned),
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

/// Replaces `path` with `file`: written beside it with `path`'s permissions, synced, renamed
/// over it, and the directory synced, so that the rename itself survives a power cut.
fn write_atomically(path: &Path, file: &CatalogFile) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(file)?;
    text.push('\n');
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let permissions = fs::metadata(path)?.permissions();
    // Created readable by the owner only, then given the catalog's own mode: the codes are
    // never readable by more users than the vendor allowed, not even for a moment.
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    out.set_permissions(permissions)?;
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
            r#"{{"codes": [{{"code": "ACT-1", "key": {TEMPLATE}, "term_days": 30, "renewals_left": {renewals_left}, "activations": 3}},
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
        let first = catalog.activate("ACT-1", "M-1", NOW).unwrap();
        let expected = Key {
            id: "ACT-1-1".into(),
            delivery: Delivery::Online,
            activation_code: Some("ACT-1".into()),
            expires_at: Some(datetime!(2027-03-31 12:00:00 UTC)),
            ..Key::from_json(&TEMPLATE.replacen('{', r#"{"id": "x", "delivery": "offline", "#, 1))
                .unwrap()
        };
        assert_eq!(first, expected);
        assert_eq!(catalog.activate("ACT-1", "M-2", NOW).unwrap().id, "ACT-1-2");
        assert_eq!(catalog.activate("ACT-2", "M-1", NOW).unwrap().id, "ACT-2-1");
        assert_eq!(
            reopen(&catalog).activate("ACT-1", "M-3", NOW).unwrap().id,
            "ACT-1-3"
        );
    }

    #[test]
    fn one_activation_past_the_limit_is_refused_and_changes_nothing() {
        let (_dir, mut catalog) = open(&catalog_text(1));
        for machine in ["M-1", "M-2", "M-3"] {
            catalog.activate("ACT-1", machine, NOW).unwrap();
        }
        // A renewal's successor is not an activation: the count stays 3.
        catalog.renew("ACT-1", "ACT-1-1", NOW).unwrap();
        let before = fs::read_to_string(&catalog.path).unwrap();
        assert_eq!(
            catalog.activate("ACT-1", "M-4", NOW),
            Err(Refusal::NoActivationsLeft {
                code: "ACT-1".into(),
                allowed: 3
            })
        );
        assert_eq!(fs::read_to_string(&catalog.path).unwrap(), before);
        // ACT-2 allows one activation, the default.
        catalog.activate("ACT-2", "M-1", NOW).unwrap();
        let (status, code, message) = catalog
            .activate("ACT-2", "M-2", NOW)
            .unwrap_err()
            .describe();
        assert_eq!(
            (status, code),
            (StatusCode::CONFLICT, wire::NO_ACTIVATIONS_LEFT)
        );
        assert_eq!(
            message,
            "activation code \"ACT-2\" has no activations left: its one activation is used by \
another machine"
        );
    }

    #[test]
    fn a_machine_that_asks_again_gets_its_latest_key_for_free() {
        let (_dir, mut catalog) = open(&catalog_text(1));
        let first = catalog.activate("ACT-1", "M-1", NOW).unwrap();
        assert_eq!(catalog.activate("ACT-1", "M-1", NOW).unwrap(), first);
        let renewed = catalog.renew("ACT-1", "ACT-1-1", NOW).unwrap();
        assert_eq!(
            reopen(&catalog).activate("ACT-1", "M-1", NOW).unwrap(),
            renewed
        );
        assert_eq!(catalog.file.codes[0].issued.len(), 2);
        assert_eq!(
            catalog.file.codes[0].issued[0].machine.as_deref(),
            Some("M-1")
        );
    }

    #[test]
    fn the_catalog_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, mut catalog) = open(&catalog_text(1));
        let path = catalog.path.clone();
        let mode = || fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        catalog.activate("ACT-1", "M-1", NOW).unwrap();
        assert_eq!(mode(), 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        catalog.activate("ACT-1", "M-2", NOW).unwrap();
        assert_eq!(mode(), 0o640);
    }

    #[test]
    fn a_template_cannot_override_what_the_service_sets() {
        let template = r#"{"id": "MINE", "delivery": "offline", "activation_code": "OTHER",
            "expires_at": "2099-01-01T00:00:00Z", "kind": "trial", "edition": "standard",
            "scheme": "per_instance"}"#;
        let (_dir, mut catalog) = open(&format!(
            r#"{{"codes": [{{"code": "C", "key": {template}, "term_days": 2, "renewals_left": 0}}]}}"#
        ));
        let key = catalog.activate("C", "M-1", NOW).unwrap();
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
        let first = catalog.activate("ACT-1", "M-1", NOW).unwrap();
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
        catalog.activate("ACT-1", "M-1", NOW).unwrap();
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
        catalog.activate("ACT-2", "M-1", NOW).unwrap();
        let before = fs::read_to_string(&catalog.path).unwrap();
        assert_eq!(
            catalog.activate("ACT-9", "M-1", NOW),
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
        catalog.activate("ACT-1", "M-1", NOW).unwrap();
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
                    r#"{{"codes": [{{"code": "A", "key": {TEMPLATE}, "term_days": 1,
                        "renewals_left": 1, "activations": 0}}]}}"#
                ),
                "\"A\" allows 0 activations; a code allows at least 1",
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
