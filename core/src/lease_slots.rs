//! The lease-slot table: every process's thread handles' [`LeaseSlot`]s, shared through
//! `slots.tgs` beside the state file, so a block a process holds outlives the process and is
//! returned by whoever finds it dead (see `slot::lease_slot`).
//!
//! A thread handle claims a free slot with one CAS of its pid (cold, when it is made) and frees
//! it when it closes, after giving its block back. A slot whose process is gone (as
//! `holders` judges it: no `/proc/<pid>`, a zombie, or a reused pid) is reclaimed: locked by a
//! CAS of its pid to [`RECLAIMING`], its block given back once, and freed. Reclaiming runs when
//! a state is opened and when a claim finds no free slot.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Corruption, Error, Result};
use crate::holders::{read_start, Liveness, Process};
use crate::sigbus::Watch;
use crate::slot::{LeaseSlot, PairRecord, Returnable};
use crate::state_file::{create_preallocated, open_unfollowed, StateFile};
use crate::sync::Ordering;

const MAGIC: &[u8; 8] = b"TGSLOTS\0";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 64;
const SLOT_LEN: usize = std::mem::size_of::<LeaseSlot>();

/// Slots in a new table: one per live thread handle.
pub(crate) const SLOT_CAPACITY: u32 = 4_096;

/// The pid a slot carries while one process reclaims it.
const RECLAIMING: u32 = u32::MAX;

/// The mapped lease-slot table.
pub(crate) struct LeaseSlots {
    // Declared before `map` so the watch ends before the mapping does.
    _watch: Watch,
    map: MmapRaw,
    capacity: u32,
    _file: File,
}

// SAFETY: the mapping is only accessed through `LeaseSlot`, whose fields are all atomics.
unsafe impl Send for LeaseSlots {}
// SAFETY: as above.
unsafe impl Sync for LeaseSlots {}

fn file_len(capacity: u32) -> u64 {
    HEADER_LEN as u64 + u64::from(capacity) * SLOT_LEN as u64
}

impl LeaseSlots {
    /// Opens the table at `path`, creating an empty one (atomically, with file mode `mode`)
    /// when there is none; refuses a file of the wrong size or format.
    pub(crate) fn open_or_create(path: &Path, mode: u32) -> Result<LeaseSlots> {
        if !path.exists() {
            let mut header = [0u8; HEADER_LEN];
            header[..8].copy_from_slice(MAGIC);
            header[8..12].copy_from_slice(&VERSION.to_le_bytes());
            header[12..16].copy_from_slice(&SLOT_CAPACITY.to_le_bytes());
            create_preallocated(path, &header, file_len(SLOT_CAPACITY), mode)?;
        }
        let corrupt = |reason: Corruption| Error::CorruptState {
            path: path.to_owned(),
            reason,
        };
        let (file, len) = open_unfollowed(path, "the lease-slot table")?;
        let mut header = [0u8; HEADER_LEN];
        if len >= HEADER_LEN as u64 {
            use std::os::unix::fs::FileExt;
            file.read_exact_at(&mut header, 0)
                .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        }
        if &header[..8] != MAGIC || header[8..12] != VERSION.to_le_bytes() {
            return Err(corrupt(Corruption::NotSlotTable));
        }
        let capacity = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
        if capacity == 0 || len != file_len(capacity) {
            return Err(corrupt(Corruption::SlotTableLength { len, capacity }));
        }
        let map = MmapOptions::new()
            .map_raw(&file)
            .map_err(|e| Error::io(format!("map {}", path.display()), e))?;
        Ok(LeaseSlots {
            _watch: Watch::register(map.as_ptr(), map.len()),
            map,
            capacity,
            _file: file,
        })
    }

    /// Opens the table at `path` if there is one.
    pub(crate) fn open_existing(path: &Path) -> Result<Option<LeaseSlots>> {
        if !path.exists() {
            return Ok(None);
        }
        LeaseSlots::open_or_create(path, 0o600).map(Some)
    }

    /// Each claimed slot, by index, with its pair's record index and what it may take off that
    /// pair's cursor (see [`LeaseSlot::returnable`]).
    pub(crate) fn returnable(&self) -> HashMap<u32, (u32, Returnable)> {
        (0..self.capacity)
            .filter_map(|i| {
                let slot = self.slot(i);
                // Acquire: pairs with the Release store of the claim.
                let record = slot.record.load(Ordering::Acquire).checked_sub(1)?;
                Some((i, (record, slot.returnable())))
            })
            .collect()
    }

    /// The slot at `index`.
    pub(crate) fn slot(&self, index: u32) -> &LeaseSlot {
        assert!(index < self.capacity, "lease slot {index} out of range");
        // SAFETY: `HEADER_LEN + (index + 1) * SLOT_LEN <= file_len == map.len()` since `index <
        // capacity`; the mapping is page aligned and HEADER_LEN and SLOT_LEN are multiples of
        // 64, so the slot is aligned; a slot is all atomics, valid for any bits, and only ever
        // shared.
        unsafe {
            &*self
                .map
                .as_mut_ptr()
                .add(HEADER_LEN + index as usize * SLOT_LEN)
                .cast::<LeaseSlot>()
        }
    }

    /// Claims a free slot for pair `record` in process `me` and returns its index, reclaiming
    /// the slots of dead processes once if none is free.
    pub(crate) fn claim(&self, record: u32, me: Process, state: &StateFile) -> Result<u32> {
        for round in 0..2 {
            for i in 0..self.capacity {
                let slot = self.slot(i);
                // Relaxed on failure: another thread took it, move on. Acquire on success:
                // orders our stores after the free that emptied the slot.
                if slot
                    .pid
                    .compare_exchange(0, me.pid, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    slot.reset();
                    // Relaxed: published by the Release store of `record` below.
                    slot.start.store(me.start, Ordering::Relaxed);
                    // Release: a reclaimer that sees the record sees the start time.
                    slot.record.store(record + 1, Ordering::Release);
                    return Ok(i);
                }
            }
            if round == 0 {
                self.reclaim_dead(state);
            }
        }
        Err(Error::SlotsFull {
            capacity: self.capacity,
        })
    }

    /// Gives back the block of slot `index` (owned by this process) and frees it.
    pub(crate) fn free(&self, index: u32, pair: &PairRecord) {
        let slot = self.slot(index);
        slot.give_back(pair);
        Self::release(slot);
    }

    fn release(slot: &LeaseSlot) {
        // Relaxed: published by the Release store of the pid below.
        slot.record.store(0, Ordering::Relaxed);
        slot.start.store(0, Ordering::Relaxed);
        // Release: a thread claiming the free slot sees it emptied.
        slot.pid.store(0, Ordering::Release);
    }

    /// Gives back the blocks of every process that is gone and frees their slots; each block
    /// once, whoever else reclaims at the same time.
    pub(crate) fn reclaim_dead(&self, state: &StateFile) {
        for i in 0..self.capacity {
            let slot = self.slot(i);
            // Acquire: pairs with the Release that completed the claim.
            let pid = slot.pid.load(Ordering::Acquire);
            if pid == 0 || pid == RECLAIMING {
                continue;
            }
            let record = slot.record.load(Ordering::Acquire);
            let start = slot.start.load(Ordering::Relaxed);
            let gone = match read_start(pid) {
                Liveness::Gone => true,
                // A claim in progress (record 0) has no start time to compare yet.
                Liveness::Running(now) => record != 0 && now != start,
                Liveness::Unknown => false,
            };
            // Acquire on success: the block read below is the dead process's last. Relaxed on
            // failure: another reclaimer got there first.
            if !gone
                || slot
                    .pid
                    .compare_exchange(pid, RECLAIMING, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            if record != 0 && record <= state.capacity() && !slot.mid_move() {
                slot.give_back(state.record(record - 1));
            }
            Self::release(slot);
        }
    }
}
