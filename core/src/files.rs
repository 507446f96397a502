//! How the engine creates and opens the files it trusts (docs/tampering.md): the state
//! directory and its files, and the installation's key and anchors.
//!
//! - **Modes whatever the umask.** A directory is created `0700` and a file `0600`, or `0770`
//!   and `0660` for a state shared by a group ([`Options::shared_group`](crate::Options)); the
//!   mode is set with `fchmod` after creation, so a umask of `000` does not widen it and a umask
//!   of `077` does not narrow the group's share.
//! - **No link followed, no FIFO opened.** Files are opened with `O_NOFOLLOW | O_NONBLOCK`, and
//!   anything but a regular file is refused before a byte is read: a symbolic link planted in
//!   place of a file cannot redirect a write, and a FIFO cannot make an open hang.
//! - **Writes replace whole.** [`replace`] writes a new file under a fresh name (`O_EXCL |
//!   O_NOFOLLOW`), syncs it and renames it over the old one: a link at either name is never
//!   written through.
//! - **Owned by this user.** The installation holds the key of the ratchet MACs, so an
//!   existing installation directory or key that another user owns, or that others may write,
//!   is refused ([`check_owner`]).

use std::fs::{File, Metadata, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Corruption, Error, Result};

/// The hot state's file name in a state directory.
pub(crate) const HOT_FILE: &str = "hot.tgs";

/// The seat-holder table's file name in a state directory.
pub(crate) const HOLDERS_FILE: &str = "seats.tgs";

/// The lease-slot table's file name in the state directory.
pub(crate) const SLOTS_FILE: &str = "slots.tgs";

/// The modes of the directories and files the engine creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Modes {
    /// Directories: `0700`, or `0770` for a group.
    pub dir: u32,
    /// Files: `0600`, or `0660` for a group.
    pub file: u32,
    /// Whether the group shares the files: a group-writable installation is then accepted.
    pub shared_group: bool,
}

impl Modes {
    /// Private to this user, or shared with the group.
    pub(crate) fn new(shared_group: bool) -> Modes {
        if shared_group {
            Modes {
                dir: 0o770,
                file: 0o660,
                shared_group,
            }
        } else {
            Modes {
                dir: 0o700,
                file: 0o600,
                shared_group,
            }
        }
    }
}

/// Creates a file at `path`, which must not exist (not even as a dangling link), with exactly
/// `mode`, open for reading and writing.
pub(crate) fn create_new(path: &Path, mode: u32) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(file)
}

/// Opens the existing regular file `path` (named `what` in errors) without following a
/// symbolic link and without blocking on a FIFO; anything but a regular file is refused with
/// [`Error::CorruptState`] before it is read.
pub(crate) fn open_regular(path: &Path, write: bool, what: &'static str) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::CorruptState {
                path: path.to_owned(),
                reason: Corruption::SymlinkRefused { what },
            },
            _ => Error::io(format!("open {}", path.display()), e),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(Error::CorruptState {
            path: path.to_owned(),
            reason: Corruption::NotRegularFile {
                what,
                kind: kind(&meta),
            },
        });
    }
    Ok(file)
}

/// Opens the file `path`, creating it with exactly `mode` if it is missing: a lock file.
pub(crate) fn open_or_create(path: &Path, mode: u32, what: &'static str) -> Result<File> {
    match create_new(path, mode) {
        Ok(file) => Ok(file),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => open_regular(path, true, what),
        Err(e) => Err(Error::io(format!("create {}", path.display()), e)),
    }
}

/// Replaces the file `path` with `bytes`, of exactly `mode`: written under a fresh name that no
/// link can occupy, synced, renamed into place, and the directory synced.
pub(crate) fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = fresh_name(path);
    let written = create_new(&tmp, mode).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed?;
    sync_parent(path)
}

/// Syncs the directory holding `path`, so a rename into it survives an operating-system crash.
pub(crate) fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// `path` with a suffix no other writer of this host uses at the same time: the process id and
/// a counter of this process.
fn fresh_name(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Relaxed: the counter only has to hand out distinct numbers; it publishes nothing.
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Refuses an existing directory or file of the installation (`what`, at `path`) that another
/// user owns or that others may write: whoever could write it could plant a MAC key they know,
/// or anchors of their choosing. With a shared group, a group-writable one of a group of this
/// user is accepted.
pub(crate) fn check_owner(
    path: &Path,
    meta: &Metadata,
    modes: Modes,
    what: &'static str,
) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mode = meta.mode() & 0o7777;
    let refuse = |reason: String| {
        Err(Error::invalid(
            what,
            format!(
                "{} {reason}: another user could have planted or changed it",
                path.display()
            ),
        ))
    };
    let shared = modes.shared_group && in_my_groups(meta.gid());
    if meta.uid() != me && !shared {
        return refuse(format!(
            "is owned by uid {}, not by this user (uid {me})",
            meta.uid()
        ));
    }
    if mode & 0o002 != 0 {
        return refuse(format!("is writable by every user (mode {mode:04o})"));
    }
    if mode & 0o020 != 0 && !shared {
        return refuse(format!("is writable by its group (mode {mode:04o})"));
    }
    Ok(())
}

/// Whether `gid` is this process's effective group or one of its supplementary groups.
fn in_my_groups(gid: u32) -> bool {
    // SAFETY: getegid has no preconditions and cannot fail.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    let mut groups = vec![0 as libc::gid_t; 256];
    // SAFETY: `groups` has room for the 256 entries the call is told it may write.
    let n = unsafe { libc::getgroups(256, groups.as_mut_ptr()) };
    n > 0 && groups[..n as usize].contains(&gid)
}

/// What a file that is not a regular file is, in words.
fn kind(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Refuses an empty state directory path, which would put the state in the working directory.
pub(crate) fn check_state_path(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() {
        return Err(Error::invalid(
            "state directory",
            "the path is empty: name a directory",
        ));
    }
    Ok(())
}

/// The state directory `dir` as the engine opens it: refused when empty, its parent
/// directories created and resolved (a link among them is followed, as for any path), and the
/// directory itself created with the mode of `modes` if missing. A state directory that is a
/// symbolic link, or not a directory, is refused: its files are opened without following
/// links, and a link here would send them elsewhere. Nothing is created when it is refused.
pub(crate) fn state_dir(dir: &Path, modes: Modes) -> Result<PathBuf> {
    let field = "state directory";
    check_state_path(dir)?;
    let resolved = match (dir.parent(), dir.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("create directory {}", parent.display()), e))?;
            std::fs::canonicalize(parent)
                .map_err(|e| Error::io(format!("resolve {}", parent.display()), e))?
                .join(name)
        }
        // `/`, `.`, `..` or a path ending in one: it exists, or nothing can be created there.
        _ => std::fs::canonicalize(dir)
            .map_err(|e| Error::io(format!("resolve {}", dir.display()), e))?,
    };
    let stat = |path: &Path| {
        std::fs::symlink_metadata(path)
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))
    };
    if std::fs::symlink_metadata(&resolved).is_err() {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new().mode(modes.dir).create(&resolved) {
            Ok(()) => {
                std::fs::set_permissions(&resolved, std::fs::Permissions::from_mode(modes.dir))
                    .map_err(|e| Error::io(format!("set the mode of {}", resolved.display()), e))?
            }
            // Another process created it first: it is judged below like any existing one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                let what = format!("create state directory {}", resolved.display());
                return Err(Error::io(what, e));
            }
        }
    }
    let meta = stat(&resolved)?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&resolved)
            .map(|t| format!(" (to {})", t.display()))
            .unwrap_or_default();
        return Err(Error::invalid(
            field,
            format!(
                "{} is a symbolic link{target}: open the directory it points to instead",
                resolved.display()
            ),
        ));
    }
    if !meta.is_dir() {
        return Err(Error::invalid(
            field,
            format!("{} is {}, not a directory", resolved.display(), kind(&meta)),
        ));
    }
    Ok(resolved)
}
