//! Hostile state directories: a full disk, a read-only file system, symbolic links. Each gets a
//! clear error and leaves the files as they were. The file-system cases mount a small tmpfs,
//! which needs root (CI runs as root); elsewhere they say they were skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::dv;
use tollgate_core::{Engine, Error, Options};

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_disk_too_small_for_the_state_file_is_an_io_error_and_leaves_no_state() {
    let Some(fs) = Tmpfs::mount("2m") else { return };
    let err = Engine::open(fs.path())
        .err()
        .expect("an 8 MiB state fit on a 2 MiB disk");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("No space left"), "{err}");
    assert!(!fs.path().join("hot.tgs").exists());
    assert!(!fs.path().join("hot.tmp").exists());
    // The interrupted creation is finished by the next open once there is room.
    let small = Engine::open_with(
        fs.path(),
        Options {
            capacity: 64,
            ..Options::default()
        },
    )
    .unwrap();
    small.create_project("P").unwrap();
}

#[test]
fn a_full_disk_refuses_admin_changes_and_keeps_metering() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let engine = Engine::open_with(
        fs.path(),
        Options {
            capacity: 64,
            ..Options::default()
        },
    )
    .unwrap();
    engine.create_project("P").unwrap();
    engine.add_key("P", dv("A", 1000)).unwrap();
    let project = engine.project("P").unwrap();
    project.consume(10).unwrap();
    let filler = fs.dir.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 8 << 20]);
    let mut refused = None;
    for i in 0..200 {
        match engine.create_project(&format!("Q{i}")) {
            Ok(()) => continue,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("admin changes kept succeeding on a full disk");
    assert!(
        matches!(err, Error::Store { .. } | Error::Io { .. }),
        "{err:?}"
    );
    project.consume(10).unwrap();
    assert_eq!(project.usage().active_used, 20);
    std::fs::remove_file(&filler).unwrap();
    drop(project);
    drop(engine);
    let engine = Engine::open(fs.path()).unwrap();
    assert_eq!(engine.usage("P").unwrap().active_used, 20);
}

#[test]
fn a_read_only_file_system_is_refused_and_untouched() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    {
        let engine = Engine::open(fs.path()).unwrap();
        engine.create_project("P").unwrap();
        engine.add_key("P", dv("A", 1000)).unwrap();
    }
    let before = snapshot(&fs.path());
    fs.remount_read_only();
    let err = Engine::open(fs.path())
        .err()
        .expect("a read-only state was opened for writing");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("Read-only file system"), "{err}");
    assert_eq!(snapshot(&fs.path()), before);
}

#[test]
fn symbolic_links_to_state_files_are_not_followed() {
    for file in ["hot.tgs", "catalog.db"] {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = Engine::open(dir.path()).unwrap();
            engine.create_project("P").unwrap();
        }
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join(file);
        std::fs::rename(dir.path().join(file), &target).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(file)).unwrap();
        let bytes = std::fs::read(&target).unwrap();
        let err = Engine::open(dir.path())
            .err()
            .expect("a symlinked state file was followed");
        assert!(matches!(err, Error::CorruptState { .. }), "{file}: {err:?}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), bytes, "{file} changed");
    }
}

#[test]
fn a_state_file_truncated_while_mapped_is_reported_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    engine.create_project("P").unwrap();
    engine.add_key("P", dv("A", 1000)).unwrap();
    let project = engine.project("P").unwrap();
    project.consume(10).unwrap();
    // Another process shrinks the file to its header while this one has it mapped.
    let status = Command::new("truncate")
        .args(["-s", "4096"])
        .arg(dir.path().join("hot.tgs"))
        .status()
        .unwrap();
    assert!(status.success());
    for result in [
        project.consume(1).map(|()| 0),
        project.consume_partial(1),
        project.consume_many(&[1]).1.map(|()| 0),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::CorruptState { .. }), "{err:?}");
        assert!(err.to_string().contains("truncated while in use"), "{err}");
    }
    assert!(matches!(engine.flush(), Err(Error::CorruptState { .. })));
    assert!(matches!(
        engine.add_key("P", dv("B", 1)),
        Err(Error::CorruptState { .. })
    ));
    assert!(matches!(engine.view("P"), Err(Error::CorruptState { .. })));
    drop(project);
    drop(engine);
    assert!(matches!(
        Engine::open(dir.path()),
        Err(Error::CorruptState { .. })
    ));
}
