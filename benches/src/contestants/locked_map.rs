//! What a vendor writes by hand: one `Mutex<HashMap<String, Usage>>`, looked up by name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Contestant, Usage};
use crate::fixture::{project_name, BenchResult};
use crate::harness::{Calls, Sharing, Worker};

/// A mutual-exclusion lock the map can sit behind.
pub trait Lock<T>: Send + Sync + 'static {
    /// Wraps a value.
    fn new(value: T) -> Self;
    /// Runs `f` with the value locked.
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
}

/// `std::sync::Mutex`.
pub struct StdMutex<T>(Mutex<T>);

impl<T: Send + 'static> Lock<T> for StdMutex<T> {
    fn new(value: T) -> Self {
        StdMutex(Mutex::new(value))
    }

    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock().expect("no thread panics holding the lock"))
    }
}

/// `parking_lot::Mutex`.
pub struct ParkingLotMutex<T>(parking_lot::Mutex<T>);

impl<T: Send + 'static> Lock<T> for ParkingLotMutex<T> {
    fn new(value: T) -> Self {
        ParkingLotMutex(parking_lot::Mutex::new(value))
    }

    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock())
    }
}

type Rows = HashMap<String, Usage>;

/// One map of every project's row behind one lock `L`; each call hashes the project name,
/// locks, checks and adds. Per-thread projects still share the lock, as such code does.
pub struct LockedMap<L> {
    name: &'static str,
    op: &'static str,
    _lock: std::marker::PhantomData<L>,
}

impl LockedMap<StdMutex<Rows>> {
    /// The `std::sync::Mutex` variant.
    pub fn std() -> Self {
        LockedMap {
            name: "std_mutex_map",
            op: "Mutex<HashMap<String, Usage>> check+add",
            _lock: std::marker::PhantomData,
        }
    }
}

impl LockedMap<ParkingLotMutex<Rows>> {
    /// The `parking_lot::Mutex` variant.
    pub fn parking_lot() -> Self {
        LockedMap {
            name: "parking_lot_map",
            op: "parking_lot::Mutex<HashMap> check+add",
            _lock: std::marker::PhantomData,
        }
    }
}

impl<L: Lock<Rows>> Contestant for LockedMap<L> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn op(&self) -> &'static str {
        self.op
    }

    fn workers(&self, threads: usize, sharing: Sharing) -> BenchResult<Vec<Box<dyn Worker>>> {
        let rows: Rows = (0..threads)
            .map(|i| (project_name(i), Usage::fresh()))
            .collect();
        let map = Arc::new(L::new(rows));
        Ok((0..threads)
            .map(|t| {
                let map = Arc::clone(&map);
                let name = project_name(sharing.slot(t));
                Box::new(Calls(move || {
                    let granted =
                        map.with(|rows| rows.get_mut(name.as_str()).map(|u| u.try_add(1)));
                    assert_eq!(granted, Some(true), "check-and-add refused");
                })) as Box<dyn Worker>
            })
            .collect())
    }
}
