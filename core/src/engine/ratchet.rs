//! State rollback (issue: tampering): restoring an old copy of the state directory to get usage
//! back is detected and refused until an operator accepts it.
//!
//! Each open, and each [`Engine::flush`](crate::Engine::flush) once the last ratchet is
//! [`Options::ratchet_interval`](crate::Options) old, appends a **ratchet** to the audit
//! log: a sequence number one above the last, the total bytes ever charged to
//! data-volume keys (which only grows), and a MAC over both chained to the previous ratchet's
//! MAC. (A ratchet only moves forward; the audit log, its MAC and the error messages call it a
//! `checkpoint`, the name it was first written under, and keep that name.) The MAC key belongs
//! to the *installation*, not to the state: it lives outside the state directory (`installation.key` in [`Options::installation_dir`](crate::Options), by default
//! `$TOLLGATE_INSTALLATION`, else `$XDG_STATE_HOME/tollgate`, else `~/.local/state/tollgate`), beside an
//! **anchor** file per state holding the last ratchet's sequence and MAC.
//!
//! The MAC covers the state id too, the key the anchor is looked up by (rule R31 in docs/rules.md):
//! a restored copy whose id was changed by hand fails its MAC instead of finding no anchor. A
//! state this installation ratcheted before but holds no anchor for, and a state with keys
//! but no ratchet, are refused as well.
//!
//! At open the last ratchet's MAC must verify, and must be the anchor's ratchet or a later
//! one; the usage now must be at least the ratchet's. A directory restored from a copy has an
//! older ratchet than its anchor, a hot file restored alone has less usage than its
//! ratchet, and an edited ratchet fails its MAC: each is refused with
//! [`Error::Tampered`]. `Engine::accept_rollback` is the operator's way out: it records the
//! acceptance in the audit log and moves the anchor to the state as it is.
//!
//! Usage is covered per key, not only in total (rule R31): each ratchet records every
//! data-volume key in a slot with its usage, limit and expiry, so usage moved from one key or
//! pair to another leaves some key below its ratchet. At every ratchet, and so at open,
//! each slot's published limit and expiry must also be its key's in the catalog, and a key's
//! terms must be what the last ratchet recorded: a patched `hot.tgs`, or a license edited in
//! `catalog.db` along with it, is refused with [`Error::Tampered`], which `accept_rollback`
//! does not accept. A patch made while a process runs is believed by its hot path until its
//! next ratchet (an [`Engine::flush`](crate::Engine::flush) once the interval has passed).
//!
//! Each ratchet also records in the catalog's meta table (`installation_id`) a non-secret id
//! of the installation that made it, derived one-way from its key (rule R31). A last
//! ratchet that fails its MAC and names another installation is refused as
//! [`Error::InstallationMismatch`], naming the state and installation directories: the state was
//! opened with the wrong installation directory. One that names this installation, or none (a
//! state last ratcheted before the id was recorded), was edited: [`Error::Tampered`]. The id
//! only chooses between two refusals, so editing it gains nothing; `accept_rollback` accepts a
//! mismatch as it accepts a rollback.
//!
//! Operator decisions (an accepted rollback) form a chain of their own: each audit entry carries
//! a MAC over what was decided and the previous decision's MAC, and every ratchet's MAC covers
//! the latest decision. Verifying walks the chain (decisions are rare), so a decision deleted from
//! or edited in the audit log is refused like an edited ratchet.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::DirBuilder;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::periods::{period_marks, PeriodChange};
use crate::catalog::{Catalog, Ratchet};
use crate::error::{
    AccountTerm, Corruption, EditedTerms, Error, Result, Rollback, SlotTerm, Tampering,
};
use crate::event::{CheckedKey, EventKind, PeriodMark};
use crate::files::{self, Modes, SLOTS_FILE};
use crate::lease_slots::LeaseSlots;
use crate::slot::{Accounts, Metering, Returnable};
use crate::state_file::StateFile;
use crate::view::Role;

mod snapshot;
use snapshot::Snapshot;

const KEY_FILE: &str = "installation.key";
const ANCHORS: &str = "anchors";

/// The installation's MAC key and anchor directory.
#[derive(Clone)]
pub(super) struct Installation {
    /// The installation directory, named in [`Error::InstallationMismatch`].
    dir: PathBuf,
    key: [u8; 32],
    anchors: PathBuf,
    /// The mode anchors are written with.
    file_mode: u32,
}

/// The last ratchet an installation saw of one state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Anchor {
    seq: u64,
    mac: String,
}

/// The format of the ratchets this build writes.
const FORMAT: u32 = 2;

/// What an operator accepts when opening a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Accept {
    /// Nothing: a state found rolled back or edited is refused.
    Nothing,
    /// The state as it is, if it is found rolled back or edited.
    Rollback,
    /// The latest time seen lowered from `from` to `to` (Unix seconds): a clock that was once
    /// wrong in the future (see `engine::clock_rollback`).
    Clock { from: u32, to: u32 },
}

/// An operator decision: an audit entry in a MAC chain that the ratchets cover, so that
/// deleting or editing it is detected.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Rollback { reason: String },
    Clock { from: String, to: String },
}

impl Decision {
    /// What its MAC covers.
    fn text(&self) -> String {
        match self {
            Decision::Rollback { reason } => format!("rollback|{reason}"),
            Decision::Clock { from, to } => format!("clock|{from}|{to}"),
        }
    }

    fn event(self, prev_decision: Option<u64>, mac: String) -> EventKind {
        match self {
            Decision::Rollback { reason } => EventKind::RollbackAccepted {
                reason,
                prev_decision,
                mac,
            },
            Decision::Clock { from, to } => EventKind::ClockAccepted {
                from,
                to,
                prev_decision,
                mac,
            },
        }
    }
}

/// An operator decision as the audit log holds it.
struct Link {
    decision: Decision,
    prev: Option<u64>,
    mac: String,
}

impl Link {
    /// The decision at audit entry `seq`, or what is wrong with it.
    fn read(catalog: &Catalog, seq: u64) -> Result<std::result::Result<Link, Rollback>> {
        Ok(match catalog.event_kind(seq)? {
            None => Err(Rollback::DecisionMissing { seq }),
            Some(EventKind::RollbackAccepted {
                reason,
                prev_decision,
                mac,
            }) => Ok(Link {
                decision: Decision::Rollback { reason },
                prev: prev_decision,
                mac,
            }),
            Some(EventKind::ClockAccepted {
                from,
                to,
                prev_decision,
                mac,
            }) => Ok(Link {
                decision: Decision::Clock { from, to },
                prev: prev_decision,
                mac,
            }),
            Some(_) => Err(Rollback::NotADecision { seq }),
        })
    }
}

/// The installation directory the options name, or the default.
pub(super) fn installation_dir(configured: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = configured {
        return Ok(dir.to_owned());
    }
    let env = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(home) = env("TOLLGATE_INSTALLATION") {
        return Ok(PathBuf::from(home));
    }
    if let Some(state) = env("XDG_STATE_HOME") {
        return Ok(PathBuf::from(state).join("tollgate"));
    }
    if let Some(home) = env("HOME") {
        return Ok(PathBuf::from(home).join(".local/state/tollgate"));
    }
    Err(Error::invalid(
        "installation_dir",
        "no installation directory: set Options::installation_dir or TOLLGATE_INSTALLATION",
    ))
}

impl Installation {
    /// Opens the installation at `dir`, creating it (mode 0700, or 0770 for a group) and its
    /// key (0600, or 0660) if needed. An existing directory or key that another user owns or
    /// others may write is refused ([`files::check_owner`]); a key that is a link, a FIFO or
    /// anything but a regular file is refused without blocking.
    pub(super) fn open(dir: &Path, modes: Modes) -> Result<Installation> {
        let io = |what: &str, path: &Path| {
            let what = format!("{what} {}", path.display());
            move |e| Error::io(what, e)
        };
        let anchors = dir.join(ANCHORS);
        for fresh in [dir, anchors.as_path()] {
            if std::fs::symlink_metadata(fresh).is_err() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(modes.dir)
                    .create(fresh)
                    .map_err(io("create installation directory", fresh))?;
                std::fs::set_permissions(fresh, std::fs::Permissions::from_mode(modes.dir))
                    .map_err(io("set the mode of", fresh))?;
            }
            let meta = std::fs::metadata(fresh).map_err(io("stat", fresh))?;
            files::check_owner(fresh, &meta, modes, "installation directory")?;
        }
        let key_path = dir.join(KEY_FILE);
        if std::fs::symlink_metadata(&key_path).is_err() {
            create_key(dir, &key_path, modes.file).map_err(io("create", &key_path))?;
        }
        let mut file = files::open_regular(&key_path, false, "the installation key")?;
        let meta = file.metadata().map_err(io("stat", &key_path))?;
        files::check_owner(&key_path, &meta, modes, "installation key")?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(io("read", &key_path))?;
        let key = *blake3::Hash::from_hex(text.trim())
            .map_err(|e| Error::CorruptState {
                path: key_path.clone(),
                reason: Corruption::InstallationKey {
                    error: e.to_string(),
                },
            })?
            .as_bytes();
        Ok(Installation {
            dir: dir.to_owned(),
            key,
            anchors,
            file_mode: modes.file,
        })
    }

    /// The installation's machine identity for the activation service
    /// ([`Engine::machine_id`](crate::Engine::machine_id)): derived from the key one-way, so
    /// it reveals nothing of it.
    pub(super) fn machine_id(&self) -> String {
        blake3::Hash::from(blake3::derive_key(
            "tollgate activation machine id v1",
            &self.key,
        ))
        .to_hex()
        .to_string()
    }

    /// The installation's id, recorded in the catalog with every ratchet it makes, so that
    /// a state opened with another installation is told apart from an edited one: derived from
    /// the key one-way (another derivation than [`Self::machine_id`]), so it reveals nothing
    /// of it.
    pub(super) fn id(&self) -> i64 {
        let hash = blake3::derive_key("tollgate installation id v1", &self.key);
        i64::from_le_bytes(hash[..8].try_into().expect("8 bytes"))
    }

    fn keyed(&self, text: &str) -> String {
        blake3::keyed_hash(&self.key, text.as_bytes())
            .to_hex()
            .to_string()
    }

    /// The MAC of ratchet `c` of the state `state_id`, whose latest operator decision has
    /// the MAC `decision_mac`. Format 1 covered only the sequence and the total, so a state id
    /// changed by hand moved the anchor lookup unseen; format 2 covers what the lookup uses.
    fn ratchet_mac(&self, state_id: &str, c: &Ratchet, decision_mac: &str) -> String {
        let (seq, total, prev) = (c.seq, c.total_used, &c.prev_mac);
        if c.format < 2 {
            return self.keyed(&format!("tollgate-checkpoint-1|{prev}|{seq}|{total}"));
        }
        let decision = c.decision.map_or(String::new(), |d| d.to_string());
        let mut text = format!(
            "tollgate-checkpoint-2|{state_id}|{prev}|{seq}|{total}|{decision}|{decision_mac}|"
        );
        for k in &c.keys {
            text.push_str(&format!("{}:{}:{}:{};", k.row, k.used, k.limit, k.expiry));
        }
        // Only a state with keys that reset adds them, so ratchets written before periods
        // existed verify unchanged. The id's length first: an id may hold any separator.
        if !c.periods.is_empty() {
            text.push_str("|periods|");
            for (key, m) in &c.periods {
                text.push_str(&format!(
                    "{}:{key}={}@{}:{};",
                    key.len(),
                    m.reset,
                    m.start,
                    m.closed
                ));
            }
        }
        self.keyed(&text)
    }

    /// The MAC of an operator decision, chained to the one before it (`prev`, with its MAC).
    fn decision_mac(
        &self,
        state_id: &str,
        prev: Option<u64>,
        prev_mac: &str,
        decision: &Decision,
    ) -> String {
        let prev = prev.map_or(String::new(), |p| p.to_string());
        self.keyed(&format!(
            "tollgate-decision-1|{state_id}|{prev}|{prev_mac}|{}",
            decision.text()
        ))
    }

    /// Verifies the chain of operator decisions that ends at audit entry `head`. Returns the
    /// head with its MAC (`None` without decisions), or what is wrong.
    fn decisions(
        &self,
        catalog: &Catalog,
        state_id: &str,
        head: Option<u64>,
    ) -> Result<std::result::Result<Option<(u64, String)>, Rollback>> {
        let Some(mut seq) = head else {
            return Ok(Ok(None));
        };
        let mut link = match Link::read(catalog, seq)? {
            Ok(link) => link,
            Err(problem) => return Ok(Err(problem)),
        };
        let head = (seq, link.mac.clone());
        loop {
            let prev = match link.prev {
                None => None,
                Some(p) if p >= seq => return Ok(Err(Rollback::DecisionOutOfOrder { seq })),
                Some(p) => match Link::read(catalog, p)? {
                    Ok(prev) => Some((p, prev)),
                    Err(problem) => return Ok(Err(problem)),
                },
            };
            let prev_mac = prev.as_ref().map_or("", |(_, l)| l.mac.as_str());
            if self.decision_mac(state_id, link.prev, prev_mac, &link.decision) != link.mac {
                return Ok(Err(Rollback::DecisionEdited { seq }));
            }
            match prev {
                None => return Ok(Ok(Some(head))),
                Some((p, prev)) => (seq, link) = (p, prev),
            }
        }
    }

    fn anchor_path(&self, state_id: &str) -> PathBuf {
        self.anchors.join(state_id)
    }

    fn read_anchor(&self, state_id: &str) -> Result<Option<Anchor>> {
        let path = self.anchor_path(state_id);
        let Some(text) = read_anchor_file(&path, "the anchor")? else {
            return Ok(None);
        };
        let mut parts = text.split_whitespace();
        match (parts.next().and_then(|s| s.parse().ok()), parts.next()) {
            (Some(seq), Some(mac)) => Ok(Some(Anchor {
                seq,
                mac: mac.to_owned(),
            })),
            _ => Err(Error::Tampered {
                reason: Tampering::UnreadableAnchor { path },
            }),
        }
    }

    /// The MAC of the latest time seen `secs` of the state `state_id`, as the catalog's meta
    /// table stores it (an integer: the first 8 bytes of the keyed hash).
    pub(super) fn time_mac(&self, state_id: &str, secs: u32) -> i64 {
        let text = format!("tollgate-latest-seen-1|{state_id}|{secs}");
        let hash = blake3::keyed_hash(&self.key, text.as_bytes());
        i64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
    }

    fn seen_path(&self, state_id: &str) -> PathBuf {
        self.anchors.join(format!("{state_id}.seen"))
    }

    /// The latest time seen that the installation keeps for `state_id`, beside its anchor:
    /// a copy of the catalog's that a replayed catalog value cannot lower.
    pub(super) fn seen(&self, state_id: &str) -> Result<Option<u32>> {
        let path = self.seen_path(state_id);
        let Some(text) = read_anchor_file(&path, "the time anchor")? else {
            return Ok(None);
        };
        text.trim().parse().map(Some).map_err(|_| Error::Tampered {
            reason: Tampering::UnreadableTimeAnchor { path },
        })
    }

    /// Sets the installation's latest time seen of `state_id` to `secs`, written like the
    /// anchor (see [`Self::write_anchor`]).
    pub(super) fn write_seen(&self, state_id: &str, secs: u32) -> Result<()> {
        let path = self.seen_path(state_id);
        files::replace(&path, format!("{secs}\n").as_bytes(), self.file_mode)
            .map_err(|e| Error::io(format!("write {}", path.display()), e))
    }

    /// Replaces the anchor whole (a new file, `O_EXCL | O_NOFOLLOW`, synced, renamed over
    /// the old one), so a link planted in `anchors/` is never written through.
    fn write_anchor(&self, state_id: &str, anchor: &Anchor) -> Result<()> {
        let path = self.anchor_path(state_id);
        let text = format!("{} {}\n", anchor.seq, anchor.mac);
        files::replace(&path, text.as_bytes(), self.file_mode)
            .map_err(|e| Error::io(format!("write {}", path.display()), e))
    }
}

/// The text of the anchor file `path` (named `what` in errors), `None` if there is none. It is
/// not followed if a link, nor waited on if a FIFO.
fn read_anchor_file(path: &Path, what: &'static str) -> Result<Option<String>> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let mut text = String::new();
    files::open_regular(path, false, what)?
        .read_to_string(&mut text)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    Ok(Some(text))
}

/// Creates the installation key at `key_path` unless another thread or process does first.
///
/// The key is written whole under a private name, then linked into place: of the racers, one
/// link wins and every reader sees a complete key. The private name is random, not the pid:
/// threads of one process share a pid, and one would remove the file another is about to link.
/// `create_new` never takes over a name in use, so only a file this call created is removed.
fn create_key(dir: &Path, key_path: &Path, mode: u32) -> std::io::Result<()> {
    let mut fresh = [0u8; 32];
    let mut suffix = [0u8; 8];
    let mut random = std::fs::File::open("/dev/urandom")?;
    random.read_exact(&mut fresh)?;
    random.read_exact(&mut suffix)?;
    let tmp = dir.join(format!("{KEY_FILE}.{:016x}", u64::from_le_bytes(suffix)));
    let mut file = files::create_new(&tmp, mode)?;
    let linked = file
        .write_all(blake3::Hash::from_bytes(fresh).to_hex().as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| match std::fs::hard_link(&tmp, key_path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        });
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// Checks the state against the installation's anchor, flushes the hot file and records a
/// ratchet (at open, at every [`Engine::flush`](crate::Engine::flush), and with each usage
/// period `change`, whose writes it commits in the same transaction).
/// With [`Accept::Rollback`], a rollback is accepted instead of refused (the operator's
/// decision), and the acceptance enters the chain of decisions the ratchet covers.
pub(super) fn verify_and_ratchet(
    installation: &Installation,
    dir: &Path,
    state: &StateFile,
    catalog: &Catalog,
    accept: Accept,
    edited_time: Option<Rollback>,
    change: Option<&PeriodChange<'_>>,
) -> Result<()> {
    // One transaction from the first read: the ratchet covers exactly what it commits (a
    // period closed with it included), and a refusal below leaves the catalog untouched.
    let tx = catalog.begin()?;
    if let Some(change) = change {
        (change.write)(&tx)?;
    }
    let state_id = catalog.state_id()?;
    let last = catalog.last_ratchet()?;
    let anchor = installation.read_anchor(&state_id)?;
    // The usage is read before the hot file is flushed: usage only grows, so what reaches the
    // disk is at least the ratchet, and an operating-system crash after it cannot make the
    // state look restored.
    let slots = LeaseSlots::open_existing(&dir.join(SLOTS_FILE))?;
    let snapshot = Snapshot::read(state, slots.as_ref(), catalog)?;
    state.flush()?;
    let chain =
        installation.decisions(catalog, &state_id, last.as_ref().and_then(|c| c.decision))?;
    if accept != Accept::Rollback {
        if let Some(c) = &last {
            another_installation(installation, dir, catalog, &state_id, c, &chain)?;
        }
    }
    let history = last.is_none() && anchor.is_none() && catalog.holds_history()?;
    let found = Found {
        state_id: &state_id,
        last: last.as_ref(),
        anchor: anchor.as_ref(),
        snapshot: &snapshot,
        history,
        change,
    };
    let mut decisions = Vec::new();
    let problem = found.problem(installation, &chain).or(edited_time);
    let head = match (problem, accept) {
        (None, _) => {
            if let Some(reason) = found.edited_license().or_else(|| found.edited_periods()) {
                return Err(unacceptable(reason));
            }
            chain.unwrap_or_default()
        }
        (Some(reason), Accept::Nothing | Accept::Clock { .. }) => return Err(acceptable(reason)),
        (Some(reason), Accept::Rollback) => {
            decisions.push(Decision::Rollback {
                reason: reason.to_string(),
            });
            // A broken chain of decisions is what is accepted: a new one starts here.
            chain.unwrap_or_default()
        }
    };
    if let Accept::Clock { from, to } = accept {
        decisions.push(Decision::Clock {
            from: crate::key::rfc3339_secs(from),
            to: crate::key::rfc3339_secs(to),
        });
    }
    let (seq, prev_mac) = last.map_or((1, String::new()), |c| (c.seq + 1, c.mac));
    let head = record_decisions(installation, &tx, &state_id, head, decisions)?;
    let mut ratchet = Ratchet {
        seq,
        total_used: snapshot.total,
        mac: String::new(),
        prev_mac,
        format: FORMAT,
        decision: head.as_ref().map(|(d, _)| *d),
        keys: snapshot.live.into_values().collect(),
        periods: snapshot.periods,
    };
    ratchet.mac =
        installation.ratchet_mac(&state_id, &ratchet, head.as_ref().map_or("", |(_, m)| m));
    let anchor = Anchor {
        seq,
        mac: ratchet.mac.clone(),
    };
    let event = EventKind::Ratchet {
        seq,
        total_used: ratchet.total_used,
        mac: ratchet.mac,
        prev_mac: ratchet.prev_mac,
        format: FORMAT,
        decision: ratchet.decision,
        keys: ratchet.keys,
        periods: ratchet.periods,
    };
    let written = Catalog::append_events_in(&tx, &[(String::new(), event)])?;
    Catalog::set_last_ratchet(&tx, written[0].seq)?;
    Catalog::set_installation_id(&tx, installation.id())?;
    tx.commit().map_err(Error::store("commit checkpoint"))?;
    installation.write_anchor(&state_id, &anchor)
}

/// Refuses the state as [`Error::InstallationMismatch`] when its last ratchet `c` does not
/// verify with this installation's key and the catalog records that another installation made
/// it. A ratchet that does not verify but names this installation (or none: a state
/// ratcheted before the id was recorded) was edited, and is left to [`Found::problem`].
/// Editing the recorded id gains nothing: the state is refused either way, and the id is only
/// rewritten by a ratchet, which needs this installation's key to verify at the next open.
fn another_installation(
    installation: &Installation,
    dir: &Path,
    catalog: &Catalog,
    state_id: &str,
    c: &Ratchet,
    chain: &std::result::Result<Option<(u64, String)>, Rollback>,
) -> Result<()> {
    let verifies = match chain {
        Ok(head) => {
            let decision_mac = head.as_ref().map_or("", |(_, mac)| mac.as_str());
            installation.ratchet_mac(state_id, c, decision_mac) == c.mac
        }
        Err(_) => false,
    };
    match catalog.installation_id()? {
        Some(made_by) if !verifies && made_by != installation.id() => {
            Err(Error::InstallationMismatch {
                state: dir.to_owned(),
                installation: installation.dir.clone(),
                ratchet: c.seq,
            })
        }
        _ => Ok(()),
    }
}

/// A refusal an operator may accept with `accept_rollback`.
fn acceptable(rollback: Rollback) -> Error {
    Error::Tampered {
        reason: Tampering::Acceptable(rollback),
    }
}

/// A refusal no operator decision accepts: license terms are the vendor's, the state only
/// publishes them.
fn unacceptable(edit: EditedTerms) -> Error {
    Error::Tampered {
        reason: Tampering::Unacceptable(edit),
    }
}

/// Appends each decision to the audit log, chained to `head` (the latest decision with its
/// MAC); returns the new head.
fn record_decisions(
    installation: &Installation,
    tx: &rusqlite::Transaction<'_>,
    state_id: &str,
    mut head: Option<(u64, String)>,
    decisions: Vec<Decision>,
) -> Result<Option<(u64, String)>> {
    for decision in decisions {
        let prev = head.as_ref().map(|(seq, _)| *seq);
        let prev_mac = head.as_ref().map_or("", |(_, mac)| mac.as_str());
        let mac = installation.decision_mac(state_id, prev, prev_mac, &decision);
        let written =
            Catalog::append_events_in(tx, &[(String::new(), decision.event(prev, mac.clone()))])?;
        head = Some((written[0].seq, mac));
    }
    Ok(head)
}

/// What verification found of a state.
struct Found<'a> {
    state_id: &'a str,
    last: Option<&'a Ratchet>,
    anchor: Option<&'a Anchor>,
    /// The usage now.
    snapshot: &'a Snapshot,
    /// Whether the catalog holds keys or ratchets (asked only without either ratchet).
    history: bool,
    /// The change of a usage period this ratchet records, if any.
    change: Option<&'a PeriodChange<'a>>,
}

impl Found<'_> {
    /// A key whose terms differ from what the last (verified) ratchet recorded: its license
    /// in the catalog was edited along with `hot.tgs`. Not acceptable, like a patched limit.
    fn edited_license(&self) -> Option<EditedTerms> {
        let c = self.last?;
        c.keys.iter().find_map(|then| {
            let row = then.row;
            let now = self.snapshot.live.get(&row)?;
            (now.limit != then.limit || now.expiry != then.expiry).then_some(EditedTerms::License {
                row,
                limit: now.limit,
                expiry: now.expiry,
                seq: c.seq,
                recorded_limit: then.limit,
                recorded_expiry: then.expiry,
            })
        })
    }

    /// A key whose usage period (term, start, closed usage) differs from what the last
    /// (verified) ratchet recorded: `catalog.db` was edited to make up a reset (or to take
    /// one back). Only the change this ratchet records may differ, and only from what the
    /// ratchet holds to what the change says. Not acceptable, like an edited license: no
    /// operator decision makes up usage that was never reset.
    fn edited_periods(&self) -> Option<EditedTerms> {
        let c = self.last?;
        let then = &c.periods;
        let now = &self.snapshot.periods;
        let terms = |m: Option<&PeriodMark>| m.map(|m| (m.reset, m.start));
        then.keys().chain(now.keys()).find_map(|key| {
            let (was, is) = (then.get(key), now.get(key));
            let fits = match self.change.filter(|change| change.key == key.as_str()) {
                Some(change) => {
                    terms(was) == change.from
                        && terms(is) == Some(change.to)
                        && is.map_or(0, |m| m.closed) >= was.map_or(0, |m| m.closed)
                }
                None => was == is,
            };
            (!fits).then(|| EditedTerms::Periods {
                key: key.clone(),
                now: is.copied(),
                seq: c.seq,
                recorded: was.copied(),
            })
        })
    }

    /// What is wrong with the state's last ratchet and its chain of operator decisions
    /// (`chain`) against the anchor and the usage now.
    fn problem(
        &self,
        installation: &Installation,
        chain: &std::result::Result<Option<(u64, String)>, Rollback>,
    ) -> Option<Rollback> {
        if let Some(c) = self.last {
            let head = match chain {
                Ok(head) => head,
                Err(problem) => return Some(problem.clone()),
            };
            let decision_mac = head.as_ref().map_or("", |(_, mac)| mac.as_str());
            if installation.ratchet_mac(self.state_id, c, decision_mac) != c.mac {
                return Some(Rollback::RatchetDoesNotVerify { seq: c.seq });
            }
            if self.snapshot.total + self.snapshot.slack_total < c.total_used {
                return Some(Rollback::UsageBelowRatchet {
                    total: self.snapshot.total,
                    seq: c.seq,
                    recorded: c.total_used,
                });
            }
            for then in &c.keys {
                let row = then.row;
                let now = self.snapshot.used(row) + self.snapshot.slack.get(&row).unwrap_or(&0);
                if now < then.used {
                    return Some(Rollback::KeyBelowRatchet {
                        row,
                        used: now,
                        seq: c.seq,
                        recorded: then.used,
                    });
                }
            }
        }
        match (self.last, self.anchor) {
            (None, None) if self.history => Some(Rollback::RatchetsDeleted),
            (None, None) => None,
            // A first ratchet of format 2 whose anchor a crash kept from being written: its
            // MAC covers the state id, so it cannot be another state's.
            (Some(c), None) if c.format >= 2 && c.seq == 1 => None,
            (Some(c), None) => Some(Rollback::AnchorMissing {
                seq: c.seq,
                state_id: self.state_id.to_owned(),
            }),
            (None, Some(a)) => Some(Rollback::RatchetsGone { seq: a.seq }),
            (Some(c), Some(a)) if c.seq < a.seq => Some(Rollback::RestoredCopy {
                at: c.seq,
                seen: a.seq,
            }),
            (Some(c), Some(a)) if c.seq == a.seq && c.mac != a.mac => {
                Some(Rollback::Replaced { seq: c.seq })
            }
            _ => None,
        }
    }
}
