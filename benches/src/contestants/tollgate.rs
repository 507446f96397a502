//! Tollgate's hot path through the Rust API: `ProjectHandle::consume(1)`, and
//! `ThreadProject::consume(1)` through a thread handle's lease slot.

use super::Contestant;
use crate::fixture::{self, BenchResult, Keys};
use crate::harness::{Calls, Sharing, Worker};
use tollgate_core::{Engine, ProjectHandle};

/// An engine on disk with one project per thread, each holding an Active and a Reserved key of
/// the maximum limit.
pub struct TollgateConsume {
    handles: Vec<ProjectHandle>,
    _engine: Engine,
    _dir: tempfile::TempDir,
}

impl TollgateConsume {
    /// Builds the state for up to `max_threads` threads (one project each).
    pub fn new(max_threads: usize) -> BenchResult<TollgateConsume> {
        let dir = fixture::disk_dir()?;
        let engine = fixture::open(dir.path(), max_threads.max(16) as u32)?;
        fixture::populate(&engine, max_threads, Keys::ActiveAndReserve)?;
        Ok(TollgateConsume {
            handles: fixture::handles(&engine, max_threads)?,
            _engine: engine,
            _dir: dir,
        })
    }
}

impl Contestant for TollgateConsume {
    fn name(&self) -> &'static str {
        "tollgate"
    }

    fn op(&self) -> &'static str {
        "ProjectHandle::consume(1)"
    }

    fn workers(&self, threads: usize, sharing: Sharing) -> BenchResult<Vec<Box<dyn Worker>>> {
        Ok((0..threads)
            .map(|t| {
                let project = self.handles[sharing.slot(t)].clone();
                Box::new(Calls(move || {
                    assert!(project.consume(1).is_ok(), "consume refused");
                })) as Box<dyn Worker>
            })
            .collect())
    }
}

/// A state like [`TollgateConsume`]'s, through thread handles: each worker makes its own
/// [`ThreadProject`](tollgate_core::ThreadProject) (a lease slot) on its project handle and
/// grants from its block.
pub struct TollgateThreadConsume(TollgateConsume);

impl TollgateThreadConsume {
    /// Builds the state for up to `max_threads` threads (one project each).
    pub fn new(max_threads: usize) -> BenchResult<TollgateThreadConsume> {
        TollgateConsume::new(max_threads).map(TollgateThreadConsume)
    }
}

impl Contestant for TollgateThreadConsume {
    fn name(&self) -> &'static str {
        "tollgate_thread"
    }

    fn op(&self) -> &'static str {
        "ThreadProject::consume(1)"
    }

    fn workers(&self, threads: usize, sharing: Sharing) -> BenchResult<Vec<Box<dyn Worker>>> {
        (0..threads)
            .map(|t| {
                let thread = self.0.handles[sharing.slot(t)].for_thread()?;
                Ok(Box::new(Calls(move || {
                    assert!(thread.consume(1).is_ok(), "consume refused");
                })) as Box<dyn Worker>)
            })
            .collect()
    }
}
