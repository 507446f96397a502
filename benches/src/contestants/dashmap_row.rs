//! A sharded concurrent map: `DashMap<String, Usage>` with the same check-and-add.

use std::sync::Arc;

use dashmap::DashMap;

use super::{Contestant, Usage};
use crate::fixture::{project_name, BenchResult};
use crate::harness::{Calls, Sharing, Worker};

/// `DashMap::get_mut(name)` then check-and-add under the shard's write lock.
pub struct DashMapRow;

impl Contestant for DashMapRow {
    fn name(&self) -> &'static str {
        "dashmap"
    }

    fn op(&self) -> &'static str {
        "DashMap<String, Usage> check+add"
    }

    fn workers(&self, threads: usize, sharing: Sharing) -> BenchResult<Vec<Box<dyn Worker>>> {
        let map: Arc<DashMap<String, Usage>> = Arc::new(
            (0..threads)
                .map(|i| (project_name(i), Usage::fresh()))
                .collect(),
        );
        Ok((0..threads)
            .map(|t| {
                let map = Arc::clone(&map);
                let name = project_name(sharing.slot(t));
                Box::new(Calls(move || {
                    let granted = map.get_mut(name.as_str()).map(|mut u| u.try_add(1));
                    assert_eq!(granted, Some(true), "check-and-add refused");
                })) as Box<dyn Worker>
            })
            .collect())
    }
}
