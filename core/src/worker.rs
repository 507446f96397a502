//! The engine's background threads (flusher, event dispatcher, seat reclaimer, clock watch,
//! renewal): each one a named thread that loops until its [`Stop`] is requested, woken early
//! by an unpark. One type holds the stop flag, the spawn and the wake-and-join on drop, so each
//! thread's file keeps only what its loop does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

/// What a worker's loop asks: whether to stop, and how to wait for its next round.
#[derive(Clone)]
pub(crate) struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Whether the worker was asked to stop.
    pub(crate) fn requested(&self) -> bool {
        // Acquire: pairs with the Release in `Worker::drop`, so whatever the owner did before
        // asking (events pushed, state written) is seen by the loop's last round.
        self.0.load(Ordering::Acquire)
    }

    /// Sleeps up to `period`, or until the worker is woken or asked to stop.
    pub(crate) fn wait(&self, period: Duration) {
        std::thread::park_timeout(period);
    }
}

/// A background thread that stops when this is dropped.
pub(crate) struct Worker {
    stop: Stop,
    thread: Thread,
    /// `None` for a worker that is not joined (see [`Worker::spawn_unjoined`]).
    join: Option<JoinHandle<()>>,
}

impl Worker {
    /// Spawns the thread `name` running `body` with its [`Stop`]; dropping the worker asks it to
    /// stop, wakes it and waits for it to end.
    pub(crate) fn spawn(
        name: &str,
        body: impl FnOnce(Stop) + Send + 'static,
    ) -> std::io::Result<Worker> {
        let stop = Stop(Arc::new(AtomicBool::new(false)));
        let for_thread = stop.clone();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(for_thread))?;
        Ok(Worker {
            stop,
            thread: handle.thread().clone(),
            join: Some(handle),
        })
    }

    /// As [`Worker::spawn`], but dropping the worker does not wait for the thread: for a loop
    /// that may be blocked on something outside the engine (a network service), which then
    /// ends on its own once it looks at its [`Stop`].
    pub(crate) fn spawn_unjoined(
        name: &str,
        body: impl FnOnce(Stop) + Send + 'static,
    ) -> std::io::Result<Worker> {
        let mut worker = Worker::spawn(name, body)?;
        worker.join = None;
        Ok(worker)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Release: see `Stop::requested`.
        self.stop.0.store(true, Ordering::Release);
        self.thread.unpark();
        // A worker whose own round dropped the last reference to its owner is dropped on its
        // own thread: it cannot wait for itself, and it ends once the round returns.
        let own_thread = std::thread::current().id() == self.thread.id();
        if let Some(handle) = self.join.take().filter(|_| !own_thread) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// A worker runs rounds until dropped, and the drop wakes it from its wait and waits for
    /// its last round.
    #[test]
    fn a_worker_runs_until_dropped_and_wakes_on_demand() {
        let rounds = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&rounds);
        let worker = Worker::spawn("tollgate-test", move |stop| {
            while !stop.requested() {
                counted.fetch_add(1, Ordering::SeqCst);
                stop.wait(Duration::from_secs(3600));
            }
        })
        .unwrap();
        while rounds.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let started = std::time::Instant::now();
        drop(worker);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the drop woke it"
        );
        let after = rounds.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            rounds.load(Ordering::SeqCst),
            after,
            "joined: no round after the drop"
        );
    }
}
