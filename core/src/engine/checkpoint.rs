//! State rollback (issue: tampering): restoring an old copy of the state directory to get usage
//! back is detected and refused until an operator accepts it.
//!
//! Each open, and each [`Engine::flush`](crate::Engine::flush) once the last checkpoint is
//! [`Options::checkpoint_interval`](crate::Options) old, appends a **checkpoint** to the audit
//! log: a sequence number one above the last, the total bytes ever charged to
//! data-volume keys (which only grows), and a MAC over both chained to the previous checkpoint's
//! MAC. The MAC key belongs to the *installation*, not to the state: it lives outside the state
//! directory (`installation.key` in [`Options::installation_dir`](crate::Options), by default
//! `$TOLLGATE_INSTALLATION`, else `$XDG_STATE_HOME/tollgate`, else `~/.local/state/tollgate`), beside an
//! **anchor** file per state holding the last checkpoint's sequence and MAC.
//!
//! At open the last checkpoint's MAC must verify, and must be the anchor's checkpoint or a later
//! one; the usage now must be at least the checkpoint's. A directory restored from a copy has an
//! older checkpoint than its anchor, a hot file restored alone has less usage than its
//! checkpoint, and an edited checkpoint fails its MAC: each is refused with
//! [`Error::Tampered`]. `Engine::accept_rollback` is the operator's way out: it records the
//! acceptance in the audit log and moves the anchor to the state as it is.

use std::collections::HashMap;
use std::fs::DirBuilder;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::events::EventKind;
use crate::files::{self, Modes};
use crate::slot::Metering;
use crate::state_file::StateFile;

const KEY_FILE: &str = "installation.key";
const ANCHORS: &str = "anchors";

/// The installation's MAC key and anchor directory.
pub(super) struct Installation {
    key: [u8; 32],
    anchors: PathBuf,
    /// The mode anchors are written with.
    file_mode: u32,
}

/// The last checkpoint an installation saw of one state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Anchor {
    seq: u64,
    mac: String,
}

/// A checkpoint as the audit log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub seq: u64,
    pub total_used: u64,
    pub mac: String,
    pub prev_mac: String,
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
                reason: format!("not an installation key: {e}"),
            })?
            .as_bytes();
        Ok(Installation {
            key,
            anchors,
            file_mode: modes.file,
        })
    }

    fn mac(&self, prev_mac: &str, seq: u64, total_used: u64) -> String {
        let text = format!("tollgate-checkpoint-1|{prev_mac}|{seq}|{total_used}");
        blake3::keyed_hash(&self.key, text.as_bytes())
            .to_hex()
            .to_string()
    }

    fn anchor_path(&self, state_id: &str) -> PathBuf {
        self.anchors.join(state_id)
    }

    fn read_anchor(&self, state_id: &str) -> Result<Option<Anchor>> {
        let path = self.anchor_path(state_id);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        // Not followed if a link, not waited on if a FIFO.
        let mut text = String::new();
        files::open_regular(&path, false, "the anchor")?
            .read_to_string(&mut text)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let mut parts = text.split_whitespace();
        match (parts.next().and_then(|s| s.parse().ok()), parts.next()) {
            (Some(seq), Some(mac)) => Ok(Some(Anchor {
                seq,
                mac: mac.to_owned(),
            })),
            _ => Err(Error::Tampered {
                reason: format!("the anchor {} is unreadable", path.display()),
            }),
        }
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

/// Bytes ever charged to data-volume keys: retired keys' final usage from the catalog plus the
/// live usage in the hot state. It never goes down.
fn total_used(state: &StateFile, catalog: &Catalog) -> Result<u64> {
    let retired: HashMap<u32, u64> = catalog.retired_usage()?;
    let mut total: u64 = retired.values().sum();
    // Only the records pairs use: touching the rest would fault in the whole file.
    for index in 0..catalog.records_in_use()?.min(state.capacity()) {
        let record = state.record(index);
        if record.owner() == 0 || record.metering() != Metering::Volume {
            continue;
        }
        let hot = record.state();
        total += hot.active.map_or(0, |a| a.used) + hot.reserve.map_or(0, |r| r.used);
        if let Some((row, used)) = hot.switched_out {
            if !retired.contains_key(&row) {
                total += used;
            }
        }
    }
    Ok(total)
}

/// Checks the state against the installation's anchor, flushes the hot file and records a
/// checkpoint (at open, and at every [`Engine::flush`](crate::Engine::flush)).
/// With `accept`, a rollback is accepted instead of refused (the operator's decision) and the
/// acceptance is audited.
pub(super) fn verify_and_checkpoint(
    installation: &Installation,
    state: &StateFile,
    catalog: &Catalog,
    accept: bool,
    now: u32,
) -> Result<()> {
    let state_id = catalog.state_id()?;
    let last = catalog.last_checkpoint()?;
    let anchor = installation.read_anchor(&state_id)?;
    // The usage is read before the hot file is flushed: usage only grows, so what reaches the
    // disk is at least the checkpoint, and an operating-system crash after it cannot make the
    // state look restored.
    let total = total_used(state, catalog)?;
    state.flush()?;
    let problem = check(installation, last.as_ref(), anchor.as_ref(), total);
    let mut events = Vec::new();
    match problem {
        Some(reason) if !accept => return Err(Error::Tampered { reason }),
        Some(reason) => events.push((String::new(), EventKind::RollbackAccepted { reason })),
        None => {}
    }
    let (seq, prev_mac) = last.map_or((1, String::new()), |c| (c.seq + 1, c.mac));
    let mac = installation.mac(&prev_mac, seq, total);
    events.push((
        String::new(),
        EventKind::Checkpoint {
            seq,
            total_used: total,
            mac: mac.clone(),
            prev_mac,
        },
    ));
    let tx = catalog.begin()?;
    let written = Catalog::append_events_in(&tx, &events)?;
    let checkpoint = written.last().expect("the checkpoint event").seq;
    Catalog::set_last_checkpoint(&tx, checkpoint)?;
    tx.commit().map_err(Error::store("commit checkpoint"))?;
    catalog.remember_time(now)?;
    installation.write_anchor(&state_id, &Anchor { seq, mac })
}

/// What is wrong with the state's last checkpoint against the anchor and the usage now.
fn check(
    installation: &Installation,
    last: Option<&Checkpoint>,
    anchor: Option<&Anchor>,
    total: u64,
) -> Option<String> {
    if let Some(c) = last {
        if installation.mac(&c.prev_mac, c.seq, c.total_used) != c.mac {
            return Some(format!(
                "checkpoint {} in the audit log does not verify: it was edited, or it was made by another installation",
                c.seq
            ));
        }
        if total < c.total_used {
            return Some(format!(
                "the hot state holds {total} bytes charged but checkpoint {} recorded {}: the hot-state file was restored from an older copy",
                c.seq, c.total_used
            ));
        }
    }
    match (last, anchor) {
        (_, None) => None,
        (None, Some(a)) => Some(format!(
            "this installation saw checkpoint {} of this state, which now has none: the state directory was replaced by an older copy",
            a.seq
        )),
        (Some(c), Some(a)) if c.seq < a.seq => Some(format!(
            "the state is at checkpoint {} but this installation saw checkpoint {}: the state directory was restored from an older copy",
            c.seq, a.seq
        )),
        (Some(c), Some(a)) if c.seq == a.seq && c.mac != a.mac => Some(format!(
            "checkpoint {} differs from the one this installation saw: the state directory was replaced",
            c.seq
        )),
        _ => None,
    }
}
