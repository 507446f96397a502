//! Who holds seats: a table, shared by every process through `seats.tgs`, of (process, pair)
//! entries with the seats each process holds on each seat pair.
//!
//! Seats are owned per process. A process that takes seats claims one entry per pair (cold,
//! when it makes a [`SeatHandle`](crate::SeatHandle)); `acquire` then raises the pair's gauge
//! first and its own entry second, `release` lowers its entry first and the gauge second. So the
//! gauge is always at least the sum of the live entries, and a process killed between the two
//! steps can only leave seats counted as held, never hand out a seat twice.
//!
//! A process that is gone (no `/proc/<pid>`, a zombie, or a pid reused by a process that
//! started at another time) has its entries reclaimed: the entry is locked by one CAS of its pid
//! to [`RECLAIMING`], its seats are taken off the gauge, and the entry is freed. Reclaiming runs
//! when a state is opened, when a seat handle is made, when an `acquire` is refused for lack of
//! seats, and on request ([`Engine::reclaim_seats`](crate::Engine::reclaim_seats)).
//!
//! A process identifies itself by pid and start time (field 22 of `/proc/self/stat`), so a
//! state directory shared by processes in different pid namespaces is not supported.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Corruption, Error, Result};
use crate::refusal::Refusal;
use crate::sigbus::Watch;
use crate::state_file::{create_preallocated, open_unfollowed, StateFile};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

const MAGIC: &[u8; 8] = b"TGSEATS\0";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 64;
const ENTRY_LEN: usize = 32;

/// Entries in a new table: a process uses one per seat pair it takes seats on.
pub(crate) const HOLDER_CAPACITY: u32 = 16_384;

/// The pid an entry carries while one process reclaims it.
const RECLAIMING: u32 = u32::MAX;

/// The pid of the operator's entries, which belong to no process and are never reclaimed
/// (pids are at most 2^22 on Linux).
const OPERATOR_PID: u32 = u32::MAX - 1;

/// One (process, pair) entry. All zero when free.
#[repr(C, align(32))]
pub(crate) struct HolderEntry {
    pid: AtomicU32,
    /// The pair's record index plus one; 0 while the entry is being claimed.
    record: AtomicU32,
    /// The process's start time in clock ticks since boot.
    start: AtomicU64,
    /// Seats this process holds on the pair.
    units: AtomicU64,
    _spare: AtomicU64,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<HolderEntry>() == ENTRY_LEN);

impl HolderEntry {
    /// Adds seats the process just took on the gauge.
    #[inline]
    pub(crate) fn add(&self, units: u64) {
        // Relaxed: only this process writes the entry while it lives; others read it only after
        // the process is gone.
        self.units.fetch_add(units, Ordering::Relaxed);
    }

    /// Takes `units` off the entry, refusing with `NotHeld` if it holds fewer.
    #[inline]
    pub(crate) fn take(&self, units: u64) -> Result<(), Refusal> {
        // Relaxed: as in `add`; the CAS keeps threads of this process from both taking the
        // same seats.
        let mut held = self.units.load(Ordering::Relaxed);
        loop {
            if units > held {
                return Err(Refusal::NotHeld {
                    requested: units,
                    held,
                });
            }
            match self.units.compare_exchange_weak(
                held,
                held - units,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => held = current,
            }
        }
    }

    /// Seats this process holds on the pair.
    pub(crate) fn held(&self) -> u64 {
        // Relaxed: a reading for the caller; nothing is published with it.
        self.units.load(Ordering::Relaxed)
    }
}

/// This process, as the holder table knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Process {
    pub(crate) pid: u32,
    pub(crate) start: u64,
}

impl Process {
    /// The operator: seats held across processes until explicitly released.
    pub(crate) const fn operator() -> Process {
        Process {
            pid: OPERATOR_PID,
            start: 0,
        }
    }

    /// The calling process.
    pub(crate) fn me() -> Result<Process> {
        let pid = std::process::id();
        match read_start(pid) {
            Liveness::Running(start) => Ok(Process { pid, start }),
            _ => Err(Error::io(
                "read /proc/self/stat for the seat-holder table",
                std::io::Error::other("no start time for this process"),
            )),
        }
    }
}

/// What `/proc` says about a pid.
pub(crate) enum Liveness {
    Running(u64),
    Gone,
    Unknown,
}

/// What `/proc` says about `pid`: its start time, or that it is gone.
pub(crate) fn read_start(pid: u32) -> Liveness {
    let text = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Liveness::Gone,
        Err(_) => return Liveness::Unknown,
    };
    // The command name (field 2) is in parentheses and may hold spaces: fields after the last
    // ')' are space separated, starting with field 3 (state); the start time is field 22.
    let Some(rest) = text.rfind(')').map(|i| &text[i + 1..]) else {
        return Liveness::Unknown;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    match (fields.first(), fields.get(19).and_then(|f| f.parse().ok())) {
        (Some(&"Z") | Some(&"X") | Some(&"x"), _) => Liveness::Gone,
        (Some(_), Some(start)) => Liveness::Running(start),
        _ => Liveness::Unknown,
    }
}

/// Seats taken back from a process that is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reclaimed {
    /// The pair's record index.
    pub record: u32,
    /// The process that held them.
    pub pid: u32,
    /// How many seats.
    pub units: u64,
}

/// The mapped holder table.
pub(crate) struct Holders {
    path: PathBuf,
    // Declared before `map` so the watch ends before the mapping does.
    watch: Watch,
    map: MmapRaw,
    capacity: u32,
    _file: File,
}

// SAFETY: the mapping is only accessed through `HolderEntry`, whose fields are all atomics.
unsafe impl Send for Holders {}
// SAFETY: as above.
unsafe impl Sync for Holders {}

impl Holders {
    /// Creates an empty table at `path` atomically (temporary file, fsync, rename), with exactly
    /// the file mode `mode`.
    pub(crate) fn create(path: &Path, capacity: u32, mode: u32) -> Result<()> {
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&capacity.to_le_bytes());
        create_preallocated(path, &header, file_len(capacity), mode)
    }

    /// Opens and maps the table, refusing a file of the wrong size or format.
    pub(crate) fn open(path: &Path) -> Result<Holders> {
        let corrupt = |reason: Corruption| Error::CorruptState {
            path: path.to_owned(),
            reason,
        };
        let (file, len) = open_unfollowed(path, "the seat-holder table")?;
        let mut header = [0u8; HEADER_LEN];
        if len >= HEADER_LEN as u64 {
            use std::os::unix::fs::FileExt;
            file.read_exact_at(&mut header, 0)
                .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        }
        if &header[..8] != MAGIC {
            return Err(corrupt(Corruption::NotHolderTable));
        }
        let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(corrupt(Corruption::HolderVersion {
                found: version,
                expected: VERSION,
            }));
        }
        let capacity = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
        if capacity == 0 || len != file_len(capacity) {
            return Err(corrupt(Corruption::HolderLength { len, capacity }));
        }
        let map = MmapOptions::new()
            .map_raw(&file)
            .map_err(|e| Error::io(format!("map {}", path.display()), e))?;
        Ok(Holders {
            path: path.to_owned(),
            watch: Watch::register(map.as_ptr(), map.len()),
            map,
            capacity,
            _file: file,
        })
    }

    /// `Ok` unless another process truncated the table while it was mapped (see `sigbus`):
    /// its entries then read as free and the seats they held are unaccounted. No syscall.
    #[inline]
    pub(crate) fn intact(&self) -> Result<()> {
        if self.truncated_in_use() {
            return Err(self.truncated());
        }
        Ok(())
    }

    /// Whether another process truncated the table while it was mapped. No syscall.
    #[inline]
    pub(crate) fn truncated_in_use(&self) -> bool {
        self.watch.damaged()
    }

    #[cold]
    #[inline(never)]
    fn truncated(&self) -> Error {
        Error::CorruptState {
            path: self.path.clone(),
            reason: Corruption::HoldersTruncatedInUse,
        }
    }

    fn entry(&self, index: u32) -> &HolderEntry {
        assert!(index < self.capacity, "holder entry {index} out of range");
        // SAFETY: `HEADER_LEN + (index + 1) * ENTRY_LEN <= file_len == map.len()` since `index <
        // capacity`; the mapping is page aligned and HEADER_LEN and ENTRY_LEN are multiples of
        // 32, so the entry is aligned; an entry is all atomics, valid for any bits, and only
        // ever shared.
        unsafe {
            &*self
                .map
                .as_mut_ptr()
                .add(HEADER_LEN + index as usize * ENTRY_LEN)
                .cast::<HolderEntry>()
        }
    }

    /// A pointer to this process's entry for pair `record`, claiming a free entry if it has
    /// none yet. Valid for as long as this mapping lives.
    pub(crate) fn claim(
        &self,
        record: u32,
        me: Process,
        state: &StateFile,
    ) -> Result<(std::ptr::NonNull<HolderEntry>, Vec<Reclaimed>)> {
        let tag = record + 1;
        for i in 0..self.capacity {
            let e = self.entry(i);
            // Acquire: pairs with the Release that completed the entry's claim.
            if e.pid.load(Ordering::Acquire) == me.pid
                && e.start.load(Ordering::Relaxed) == me.start
                && e.record.load(Ordering::Acquire) == tag
            {
                return Ok((std::ptr::NonNull::from(e), Vec::new()));
            }
        }
        let mut reclaimed = Vec::new();
        for round in 0..2 {
            for i in 0..self.capacity {
                let e = self.entry(i);
                // Relaxed on failure: another process took it, move on. Acquire on success:
                // orders our stores after the free that emptied the entry.
                if e.pid
                    .compare_exchange(0, me.pid, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    // Relaxed: published by the Release store of `record` below.
                    e.units.store(0, Ordering::Relaxed);
                    e.start.store(me.start, Ordering::Relaxed);
                    // Release: a reader that sees the record sees the start time and units.
                    e.record.store(tag, Ordering::Release);
                    return Ok((std::ptr::NonNull::from(e), reclaimed));
                }
            }
            if round == 0 {
                reclaimed = self.reclaim_dead(state);
            }
        }
        Err(Error::HoldersFull {
            capacity: self.capacity,
        })
    }

    /// Writes the table to disk and waits (the operator's seats outlive every process).
    pub(crate) fn flush(&self) -> Result<()> {
        self.map
            .flush()
            .map_err(|e| Error::io("flush the seat-holder table", e))
    }

    /// Takes back the seats of every process that is gone and frees its entries.
    pub(crate) fn reclaim_dead(&self, state: &StateFile) -> Vec<Reclaimed> {
        let mut reclaimed = Vec::new();
        let mut touched = Vec::new();
        for i in 0..self.capacity {
            let e = self.entry(i);
            // Acquire: pairs with the Release that completed the claim, so the start time and
            // record read below belong to this pid.
            let pid = e.pid.load(Ordering::Acquire);
            if pid == 0 || pid == RECLAIMING || pid == OPERATOR_PID {
                continue;
            }
            let record = e.record.load(Ordering::Acquire);
            let start = e.start.load(Ordering::Relaxed);
            let gone = match read_start(pid) {
                Liveness::Gone => true,
                // A claim in progress (record 0) has no start time to compare yet.
                Liveness::Running(now) => record != 0 && now != start,
                Liveness::Unknown => false,
            };
            if !gone {
                continue;
            }
            // Acquire: the units read below are the dead process's last; Relaxed on failure:
            // another reclaimer (or the pid's new owner) got there first.
            if e.pid
                .compare_exchange(pid, RECLAIMING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let units = e.units.load(Ordering::Relaxed);
            if record != 0 && record <= state.capacity() {
                touched.push(record - 1);
            }
            if record != 0 && record <= state.capacity() && units > 0 {
                let taken = state.record(record - 1).reclaim(units, state);
                reclaimed.push(Reclaimed {
                    record: record - 1,
                    pid,
                    units: taken,
                });
            }
            // Relaxed: published by the Release store of the pid below.
            e.units.store(0, Ordering::Relaxed);
            e.start.store(0, Ordering::Relaxed);
            e.record.store(0, Ordering::Relaxed);
            // Release: a process claiming the free entry sees it zeroed.
            e.pid.store(0, Ordering::Release);
        }
        touched.sort_unstable();
        touched.dedup();
        reclaimed.extend(self.reset_unowned(state, &touched));
        reclaimed
    }

    /// Zeroes the gauge of each pair in `touched` (pairs whose dead owners were just reclaimed)
    /// that no entry names any more but that still counts seats held: seats an owner killed
    /// between its two steps left counted. A leak needs an owner that died on that pair, so
    /// every leaked pair is touched by some pass; if others still named it then, the pass that
    /// reclaims the last of them resets it. The words are read *before* the entries are scanned
    /// and reset only if unchanged: an owner that claimed an entry after the scan and took seats
    /// has moved the word, so the reset fails; one that took and gave back as many holds none.
    ///
    /// The key accounts bounding those pairs get the same treatment: an owner killed between
    /// taking seats from the account and raising its pair's gauge (or between lowering the
    /// gauge and giving them back) left them counted in the account. Once no entry names any
    /// pair the account bounds and every such gauge is zero, nothing can hold its seats, and
    /// the count read before the scan is reset to zero if it is unchanged (see
    /// [`AccountRecord::drop_leaked`](crate::slot::AccountRecord::drop_leaked)).
    fn reset_unowned(&self, state: &StateFile, touched: &[u32]) -> Vec<Reclaimed> {
        use crate::slot::{Accounts, Metering};
        let mut seen = Vec::new();
        let mut accounts: Vec<(u32, u32, u64)> = Vec::new();
        for &index in touched {
            let record = state.record(index);
            if record.owner() == 0 || record.metering() != Metering::Seats {
                continue;
            }
            let word = record.gauge_word();
            if word & ((1 << 47) - 1) != 0 {
                seen.push((index, word));
            }
            let id = record.seat_account_id(word);
            if let Some(account) = state.account(id) {
                let taken = account.taken();
                if taken > 0 && !accounts.iter().any(|a| a.0 == id) {
                    accounts.push((id, index, taken));
                }
            }
        }
        if seen.is_empty() && accounts.is_empty() {
            return Vec::new();
        }
        let mut named = std::collections::HashSet::new();
        for i in 0..self.capacity {
            let e = self.entry(i);
            // Acquire: as in the reclaim loop.
            if e.pid.load(Ordering::Acquire) != 0 {
                let record = e.record.load(Ordering::Acquire);
                if record != 0 {
                    named.insert(record - 1);
                }
            }
        }
        let mut reclaimed: Vec<Reclaimed> = Vec::new();
        for (index, word) in seen.into_iter().filter(|(i, _)| !named.contains(i)) {
            let record = state.record(index);
            let units = record.reset_gauge(word, state);
            if units > 0 {
                reclaimed.push(Reclaimed {
                    record: index,
                    pid: 0,
                    units,
                });
                // The reset gave those seats back to the account: it now holds that many
                // fewer than it was seen holding.
                let id = record.seat_account_id(word);
                if let Some(a) = accounts.iter_mut().find(|a| a.0 == id) {
                    a.2 = a.2.saturating_sub(units);
                }
            }
        }
        for (id, index, taken) in accounts {
            if taken == 0 {
                continue;
            }
            let bounded = (0..state.capacity()).filter(|&i| {
                let record = state.record(i);
                record.owner() != 0
                    && record.metering() == Metering::Seats
                    && record.seat_account_id(record.gauge_word()) == id
            });
            let mut idle = true;
            for i in bounded {
                idle &= !named.contains(&i) && state.record(i).seats_held() == 0;
            }
            let account = state.account(id).expect("read above");
            if idle && account.drop_leaked(taken) {
                reclaimed.push(Reclaimed {
                    record: index,
                    pid: 0,
                    units: taken,
                });
            }
        }
        reclaimed
    }
}

fn file_len(capacity: u32) -> u64 {
    (HEADER_LEN + capacity as usize * ENTRY_LEN) as u64
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_running_and_a_missing_pid_as_gone() {
        let me = Process::me().unwrap();
        assert!(matches!(read_start(me.pid), Liveness::Running(s) if s == me.start));
        // pid_max is at most 2^22, so this pid never exists.
        assert!(matches!(read_start(u32::MAX - 1), Liveness::Gone));
    }

    #[test]
    fn damaged_tables_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seats.tgs");
        Holders::create(&path, 8, 0o600).unwrap();
        Holders::open(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let cases: [(&str, Vec<u8>); 3] = [
            ("truncated", good[..good.len() - 1].to_vec()),
            ("foreign", {
                let mut b = good.clone();
                b[0] = b'X';
                b
            }),
            ("other version", {
                let mut b = good.clone();
                b[8] = 9;
                b
            }),
        ];
        for (name, bytes) in cases {
            std::fs::write(&path, &bytes).unwrap();
            match Holders::open(&path) {
                Err(Error::CorruptState { .. }) => {}
                Err(other) => panic!("{name}: {other}"),
                Ok(_) => panic!("{name}: opened"),
            }
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}");
        }
    }
}
