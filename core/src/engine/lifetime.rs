//! A pair's usage over its whole life: what `ProjectHandle::usage` shows of the keys in the
//! slots, plus every byte the pair's retired keys took and the ids of the keys in the slots.
//! After a switch, `usage` shows the new Active key only; this adds back what the old one used.

use serde::Serialize;

use super::{key_status, ProjectHandle, Usage};
use crate::error::Result;

/// A project's data-volume pair over its whole life ([`ProjectHandle::lifetime_usage`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifetimeUsage {
    /// The pair's usage now, as [`ProjectHandle::usage`] gives it.
    pub usage: Usage,
    /// Bytes ever charged to the pair: every key it held, retired ones included. It never goes
    /// down.
    pub total_used: u64,
    /// The id of the Active key, if any.
    pub active_key: Option<String>,
    /// The id of the Reserved key, if any.
    pub reserved_key: Option<String>,
}

impl ProjectHandle {
    /// The pair's usage with its total over its whole life and the ids of its keys. Reads the
    /// catalog under the engine's in-process admin mutex (not the cross-process lock), like
    /// [`Engine::keys`](crate::Engine::keys): it waits for an admin change of this process in
    /// progress, and is not for the hot path.
    pub fn lifetime_usage(&self) -> Result<LifetimeUsage> {
        self.inner.intact()?;
        let admin = self.inner.admin.lock();
        // The hot state first, then the catalog: a key retired in between (by a switch or by an
        // admin change of another process) is still in the state read, and counted from it; a
        // key added in between is in the catalog only, with nothing used yet. Each key counts
        // once, from the first place that holds it (see `key_status`).
        let state = self.pair().state();
        let keys = admin.catalog.keys_of(self.index)?;
        let total_used = keys
            .iter()
            .filter_map(|(row, key)| key_status(&state, *row, key))
            .map(|(_, used)| used)
            .sum();
        let id = |row: u32| keys.get(&row).map(|k| k.key.id.clone());
        Ok(LifetimeUsage {
            usage: Usage::from(&state),
            total_used,
            active_key: state.active.and_then(|a| id(a.key)),
            reserved_key: state.reserve.and_then(|r| id(r.key)),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::engine::{Engine, Options};
    use crate::key::Key;

    /// Opens `dir` with its own installation inside it, never the real one under `$HOME`.
    fn open(dir: &Path) -> Engine {
        let options = Options {
            installation_dir: Some(dir.join("installation")),
            ..Options::default()
        };
        Engine::open_with(dir, options).unwrap()
    }

    #[test]
    fn the_total_counts_every_key_the_pair_held_across_switches_and_replacements() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path());
        engine.create_project("P").unwrap();
        let project = engine.project("P").unwrap();
        let empty = project.lifetime_usage().unwrap();
        assert_eq!(
            (empty.total_used, empty.active_key, empty.reserved_key),
            (0, None, None)
        );

        engine.add_key("P", Key::data_volume("A-1", 80)).unwrap();
        engine
            .add_reserve("P", Key::data_volume("A-2", 100))
            .unwrap();
        project.consume(50).unwrap();
        let before = project.lifetime_usage().unwrap();
        assert_eq!(before.total_used, 50);
        assert_eq!(before.active_key.as_deref(), Some("A-1"));
        assert_eq!(before.reserved_key.as_deref(), Some("A-2"));

        // Crosses the Active key's limit: 30 to A-1, 40 to A-2, which becomes Active.
        project.consume(70).unwrap();
        let after = project.lifetime_usage().unwrap();
        assert_eq!(after.usage, project.usage());
        assert_eq!((after.usage.active_used, after.usage.switches), (40, 1));
        assert_eq!(after.total_used, 120);
        assert_eq!(after.active_key.as_deref(), Some("A-2"));
        assert_eq!(after.reserved_key, None);

        // A renewal retires A-2 with its 40 bytes; the total keeps them.
        engine
            .replace_active_key("P", Key::data_volume("A-3", 1000))
            .unwrap();
        project.consume(5).unwrap();
        let renewed = project.lifetime_usage().unwrap();
        assert_eq!(renewed.total_used, 125);
        assert_eq!(renewed.usage.active_used, 5);
        assert_eq!(renewed.active_key.as_deref(), Some("A-3"));
    }
}
