//! The state directory and the installation on disk (docs/tampering.md): modes whatever
//! the umask, an installation another user could have planted, bad paths, links and FIFOs
//! where the engine's files should be. Each refusal is exact and leaves every file as it was.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use tollgate_core::{Engine, Error, Options};

/// The permission bits of `path` (not following a final link).
fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Options with the installation at `installation`.
fn at(installation: &Path) -> Options {
    Options {
        installation_dir: Some(installation.to_owned()),
        ..Options::default()
    }
}

/// Opens `dir` on another thread and gives up after ten seconds, so a FIFO that makes open
/// block fails the test instead of hanging it.
fn open_within_ten_seconds(dir: &Path, options: Options) -> Result<Engine, Error> {
    let (tx, rx) = mpsc::channel();
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(Engine::open_with(&dir, options));
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("open hung on a FIFO")
}

/// The one ratchet anchor of an installation (`anchors/<state id>`).
fn anchor(installation: &Path) -> PathBuf {
    let anchors = installation.join("anchors");
    let names: Vec<String> = names(&anchors)
        .into_iter()
        .filter(|n| !n.ends_with(".seen"))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    anchors.join(&names[0])
}

/// The time anchor beside it (`anchors/<state id>.seen`): the latest time seen.
fn time_anchor(installation: &Path) -> PathBuf {
    let anchor = anchor(installation);
    let time = anchor.with_extension("seen");
    assert!(time.is_file(), "{}", time.display());
    time
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A change to the installation, and the change that undoes it.
type Change<'a> = Box<dyn Fn() + 'a>;

/// Sets the process umask for the life of the guard.
struct Umask(libc::mode_t);

impl Umask {
    fn set(mask: libc::mode_t) -> Umask {
        // SAFETY: umask has no preconditions; it only swaps the process's mask.
        Umask(unsafe { libc::umask(mask) })
    }
}

impl Drop for Umask {
    fn drop(&mut self) {
        // SAFETY: as above, restoring the mask in force before.
        unsafe { libc::umask(self.0) };
    }
}

#[test]
fn state_files_follow_no_umask() {
    // Regression: at umask 022 another user read catalog.db (activation codes included);
    // at umask 000 another user rewrote hot.tgs. The only test of this binary that sets the
    // umask; the others do not look at modes.
    for (umask, shared_group, dir_mode, file_mode) in [
        (0o000, false, 0o700, 0o600),
        (0o022, false, 0o700, 0o600),
        (0o077, true, 0o770, 0o660),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, installation) = (tmp.path().join("state"), tmp.path().join("inst"));
        {
            let _umask = Umask::set(umask);
            let engine = Engine::open_with(
                &dir,
                Options {
                    shared_group,
                    ..at(&installation)
                },
            )
            .unwrap();
            engine.create_project("P").unwrap();
            engine.flush().unwrap();
            let files = names(&dir);
            assert_eq!(
                files,
                [
                    "admin.lock",
                    "catalog.db",
                    "catalog.db-shm",
                    "catalog.db-wal",
                    "hot.tgs",
                    "seats.tgs",
                    "slots.tgs"
                ],
                "umask {umask:03o}"
            );
            assert_eq!(
                mode(&dir),
                dir_mode,
                "umask {umask:03o}: the state directory"
            );
            for file in files {
                assert_eq!(
                    mode(&dir.join(&file)),
                    file_mode,
                    "umask {umask:03o}: {file}"
                );
            }
            for d in [installation.clone(), installation.join("anchors")] {
                assert_eq!(mode(&d), dir_mode, "umask {umask:03o}: {}", d.display());
            }
            for f in [installation.join("installation.key"), anchor(&installation)] {
                assert_eq!(mode(&f), file_mode, "umask {umask:03o}: {}", f.display());
            }
        }
    }
}

#[test]
fn installation_another_user_could_plant_is_refused() {
    // Regression: an installation directory or key not owned by the user, or writable by
    // others, could hold a MAC key someone else knows.
    let tmp = tempfile::tempdir().unwrap();
    let (dir, installation) = (tmp.path().join("state"), tmp.path().join("inst"));
    drop(Engine::open_with(&dir, at(&installation)).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    let key = installation.join("installation.key");
    let key_text = std::fs::read(&key).unwrap();
    let message = |path: &Path, field: &str, what: &str| {
        format!(
            "invalid {field}: {} {what}: another user could have planted or changed it",
            path.display()
        )
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let chown = |path: &Path, uid: u32| std::os::unix::fs::chown(path, Some(uid), None).is_ok();
    let mut cases: Vec<(Change, Change, String)> = vec![
        (
            Box::new(|| {
                std::fs::set_permissions(&installation, PermissionsExt::from_mode(0o777)).unwrap()
            }),
            Box::new(|| {
                std::fs::set_permissions(&installation, PermissionsExt::from_mode(0o700)).unwrap()
            }),
            message(
                &installation,
                "installation directory",
                "is writable by every user (mode 0777)",
            ),
        ),
        (
            Box::new(|| {
                std::fs::set_permissions(&installation, PermissionsExt::from_mode(0o770)).unwrap()
            }),
            Box::new(|| {
                std::fs::set_permissions(&installation, PermissionsExt::from_mode(0o700)).unwrap()
            }),
            message(
                &installation,
                "installation directory",
                "is writable by its group (mode 0770)",
            ),
        ),
        (
            Box::new(|| std::fs::set_permissions(&key, PermissionsExt::from_mode(0o666)).unwrap()),
            Box::new(|| std::fs::set_permissions(&key, PermissionsExt::from_mode(0o600)).unwrap()),
            message(
                &key,
                "installation key",
                "is writable by every user (mode 0666)",
            ),
        ),
    ];
    if chown(&key, me) {
        cases.push((
            Box::new(|| assert!(chown(&key, 4242))),
            Box::new(|| assert!(chown(&key, me))),
            message(
                &key,
                "installation key",
                &format!("is owned by uid 4242, not by this user (uid {me})"),
            ),
        ));
        cases.push((
            Box::new(|| assert!(chown(&installation, 4242))),
            Box::new(|| assert!(chown(&installation, me))),
            message(
                &installation,
                "installation directory",
                &format!("is owned by uid 4242, not by this user (uid {me})"),
            ),
        ));
    } else {
        eprintln!("SKIPPED: the ownership cases need the right to chown (root)");
    }
    for (spoil, mend, expected) in &cases {
        spoil();
        match Engine::open_with(&dir, at(&installation)) {
            Err(e @ Error::InvalidArgument { .. }) => assert_eq!(e.to_string(), *expected),
            other => panic!("{expected}: {:?}", other.map(|_| ())),
        }
        assert!(!dir.exists(), "{expected}: the state directory was created");
        assert_eq!(std::fs::read(&key).unwrap(), key_text);
        mend();
    }
    Engine::open_with(&dir, at(&installation)).unwrap();
}

#[test]
fn symlink_planted_in_anchors_does_not_overwrite_another_file() {
    // Regression: the anchor was written through `anchors/<id>.tmp`, following a link.
    let tmp = tempfile::tempdir().unwrap();
    let (dir, installation) = (tmp.path().join("state"), tmp.path().join("inst"));
    drop(Engine::open_with(&dir, at(&installation)).unwrap());
    let anchor = anchor(&installation);
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    symlink(&victim, anchor.with_extension("tmp")).unwrap();
    let engine = Engine::open_with(&dir, at(&installation)).unwrap();
    engine.flush().unwrap();
    drop(engine);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(!std::fs::symlink_metadata(&anchor)
        .unwrap()
        .file_type()
        .is_symlink());

    // A link in place of the anchor itself is refused, not read or written through.
    std::fs::remove_file(&anchor).unwrap();
    symlink(&victim, &anchor).unwrap();
    match Engine::open_with(&dir, at(&installation)) {
        Err(e @ Error::CorruptState { .. }) => assert_eq!(
            e.to_string(),
            format!(
                "corrupt state at {}: the anchor is a symbolic link; it is not followed",
                anchor.display()
            )
        ),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");

    // The same for the time anchor beside it.
    std::fs::remove_file(&anchor).unwrap();
    std::fs::remove_file(anchor.with_extension("tmp")).unwrap();
    drop(Engine::accept_rollback(&dir, at(&installation)).unwrap());
    let time = time_anchor(&installation);
    std::fs::remove_file(&time).unwrap();
    symlink(&victim, &time).unwrap();
    match Engine::open_with(&dir, at(&installation)) {
        Err(e @ Error::CorruptState { .. }) => assert_eq!(
            e.to_string(),
            format!(
                "corrupt state at {}: the time anchor is a symbolic link; it is not followed",
                time.display()
            )
        ),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn empty_state_path_is_refused_and_creates_nothing() {
    // Regression: `tg_engine_open("")` left admin.lock, catalog.db and an 8 MB hot.tgs
    // in the working directory.
    let tmp = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    let before = names(&cwd);
    match Engine::open_with("", at(&tmp.path().join("inst"))) {
        Err(e @ Error::InvalidArgument { .. }) => assert_eq!(
            e.to_string(),
            "invalid state directory: the path is empty: name a directory"
        ),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(names(&cwd), before);
    assert!(!tmp.path().join("inst").exists());
}

#[test]
fn symlinked_parent_directory_of_the_state_is_resolved() {
    // Regression: a link anywhere in the path (`/var/lib` → elsewhere) failed with
    // "unable to open database file" and left admin.lock behind.
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    symlink(&real, tmp.path().join("lib")).unwrap();
    let installation = tmp.path().join("inst");
    let engine = Engine::open_with(tmp.path().join("lib/tollgate"), at(&installation)).unwrap();
    engine.create_project("P").unwrap();
    assert_eq!(engine.dir(), real.canonicalize().unwrap().join("tollgate"));
    drop(engine);
    assert_eq!(
        Engine::open_with(real.join("tollgate"), at(&installation))
            .unwrap()
            .projects()
            .unwrap(),
        ["P"]
    );
}

#[test]
fn symlinked_state_directory_is_refused_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let dir = tmp.path().join("state");
    symlink(&elsewhere, &dir).unwrap();
    match Engine::open_with(&dir, at(&tmp.path().join("inst"))) {
        Err(e @ Error::InvalidArgument { .. }) => assert_eq!(
            e.to_string(),
            format!(
                "invalid state directory: {} is a symbolic link (to {}): open the directory it points to instead",
                tmp.path().canonicalize().unwrap().join("state").display(),
                elsewhere.display()
            )
        ),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(names(&elsewhere).is_empty());
}

#[test]
fn symlinked_admin_lock_is_not_followed() {
    // Regression: the lock file was opened, and created, through a link.
    let tmp = tempfile::tempdir().unwrap();
    let (dir, installation) = (tmp.path().join("state"), tmp.path().join("inst"));
    drop(Engine::open_with(&dir, at(&installation)).unwrap());
    let lock = dir.join("admin.lock");
    std::fs::remove_file(&lock).unwrap();
    let victim = tmp.path().join("victim");
    symlink(&victim, &lock).unwrap();
    match Engine::open_with(&dir, at(&installation)) {
        Err(e @ Error::CorruptState { .. }) => assert_eq!(
            e.to_string(),
            format!(
                "corrupt state at {}: the admin lock is a symbolic link; it is not followed",
                tmp.path()
                    .canonicalize()
                    .unwrap()
                    .join("state/admin.lock")
                    .display()
            )
        ),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(
        !victim.exists(),
        "the link was followed and its target created"
    );
}

#[test]
fn fifo_as_installation_key_or_anchor_is_refused_without_hanging() {
    // Regression: a FIFO as installation.key or as an anchor made open hang forever.
    let tmp = tempfile::tempdir().unwrap();
    let (dir, installation) = (tmp.path().join("state"), tmp.path().join("inst"));
    drop(Engine::open_with(&dir, at(&installation)).unwrap());
    let (anchor, time) = (anchor(&installation), time_anchor(&installation));
    let key = installation.join("installation.key");
    for (fifo, what) in [
        (anchor, "the anchor"),
        (time, "the time anchor"),
        (key, "the installation key"),
    ] {
        let saved = std::fs::read(&fifo).unwrap();
        std::fs::remove_file(&fifo).unwrap();
        mkfifo(&fifo);
        match open_within_ten_seconds(&dir, at(&installation)) {
            Err(e @ Error::CorruptState { .. }) => assert_eq!(
                e.to_string(),
                format!(
                    "corrupt state at {}: {what} is a FIFO, not a regular file; it is not used",
                    fifo.display()
                )
            ),
            other => panic!("{what}: {:?}", other.map(|_| ())),
        }
        std::fs::remove_file(&fifo).unwrap();
        std::fs::write(&fifo, saved).unwrap();
        std::fs::set_permissions(&fifo, PermissionsExt::from_mode(0o600)).unwrap();
    }
    Engine::open_with(&dir, at(&installation)).unwrap();
}
