//! Rule R34 in docs/rules.md: after an operating-system crash the state opens at the last `flush()`
//! or later, record by record, never torn. The crash is simulated by building the file the disk
//! could hold: every 512-byte sector taken at random either from the image flushed last or from a
//! later image (pages the kernel happened to write back), then reopening that file beside the
//! catalog.

mod common;

use std::collections::HashMap;

use common::dv;
use tollgate_core::{Engine, Options};

const PROJECTS: usize = 100;
const SECTOR: usize = 512;

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn usage_of(engine: &Engine) -> HashMap<String, u64> {
    engine
        .projects()
        .unwrap()
        .into_iter()
        .map(|p| {
            let u = engine.usage(&p).unwrap();
            (p, u.active_used + u.reserved_used)
        })
        .collect()
}

#[test]
fn a_crash_image_opens_at_the_last_flush_or_later_never_torn() {
    let dir = tempfile::tempdir().unwrap();
    let installation = tempfile::tempdir().unwrap();
    let engine = Engine::open_with(
        dir.path(),
        Options {
            capacity: 256,
            installation_dir: Some(installation.path().to_owned()),
            ..Options::default()
        },
    )
    .unwrap();
    let names: Vec<String> = (0..PROJECTS).map(|i| format!("p{i:03}")).collect();
    for name in &names {
        engine.create_project(name).unwrap();
        engine
            .add_key(name, dv(&format!("{name}-a"), 1 << 40))
            .unwrap();
    }
    let handles: Vec<_> = names.iter().map(|n| engine.project(n).unwrap()).collect();
    let mut seed = 0x2545_F491_4F6C_DD1D;
    let mut images = 0;
    for round in 0..40 {
        let meter = |seed: &mut u64| {
            for _ in 0..500 {
                let p = xorshift(seed) as usize % PROJECTS;
                handles[p].consume(1 + xorshift(seed) % 10_000).unwrap();
            }
        };
        meter(&mut seed);
        engine.flush().unwrap();
        let flushed = std::fs::read(dir.path().join("hot.tgs")).unwrap();
        let at_flush = usage_of(&engine);
        meter(&mut seed);
        let later = std::fs::read(dir.path().join("hot.tgs")).unwrap();
        let at_crash = usage_of(&engine);

        let mut disk = flushed.clone();
        for (sector, bytes) in disk.chunks_mut(SECTOR).enumerate() {
            if xorshift(&mut seed).is_multiple_of(2) {
                bytes.copy_from_slice(&later[sector * SECTOR..(sector + 1) * SECTOR]);
            }
        }
        let crashed = tempfile::tempdir().unwrap();
        std::fs::write(crashed.path().join("hot.tgs"), &disk).unwrap();
        for file in ["catalog.db", "seats.tgs"] {
            std::fs::copy(dir.path().join(file), crashed.path().join(file)).unwrap();
        }
        // Each image is a machine of its own after the crash: the installation's key, and the
        // anchor as the original saw it (its last ratchet was at the flush).
        let machine = tempfile::tempdir().unwrap();
        std::fs::create_dir(machine.path().join("anchors")).unwrap();
        std::fs::copy(
            installation.path().join("installation.key"),
            machine.path().join("installation.key"),
        )
        .unwrap();
        for anchor in std::fs::read_dir(installation.path().join("anchors")).unwrap() {
            let anchor = anchor.unwrap();
            std::fs::copy(
                anchor.path(),
                machine.path().join("anchors").join(anchor.file_name()),
            )
            .unwrap();
        }
        let reopened = Engine::open_with(
            crashed.path(),
            Options {
                installation_dir: Some(machine.path().to_owned()),
                ..Options::default()
            },
        )
        .unwrap_or_else(|e| panic!("round {round}: crash image refused: {e}"));
        for (name, used) in usage_of(&reopened) {
            assert!(
                at_flush[&name] <= used && used <= at_crash[&name],
                "round {round}, {name}: {used} outside [{}, {}]",
                at_flush[&name],
                at_crash[&name]
            );
            assert!(
                used == at_flush[&name] || used == at_crash[&name],
                "round {round}, {name}: {used} is neither the flushed nor the later value: torn"
            );
        }
        images += 1;
    }
    println!("{images} crash images reopened consistently");
}
