//! The memory-mapped hot-state file: a checksummed header and a fixed table of [`PairRecord`]s.
//!
//! Layout (little-endian): a 4 KiB header page, then `capacity` records of 256 bytes
//! ([`PairRecord`] documents its fields). The header is written once, at creation, through a
//! temporary file that is synced and renamed into place, so it is never torn; afterwards only
//! the records change, and only through atomics.
//!
//! Format history: version 1 had 128-byte records with a 64-bit cursor word and a 16-bit epoch;
//! version 2 has the 128-bit cursor. [`upgrade`] rewrites a version-1 file in place, once, at
//! open, keeping every counter. Version 3 gave keys accounts in the same records. Version 4
//! changes only the header's checksum, from a 64-bit FNV-1a to the first 8 bytes of BLAKE3: the
//! version decides which one a header is checked with ([`header_checksum`]), so a version-3 file
//! opens as it is and keeps its FNV-1a, and every file created (or upgraded from version 1 or
//! 2) is version 4.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Corruption, Error, Result};
use crate::sigbus::Watch;
use crate::slot::{AccountRecord, Accounts, PairRecord};

const MAGIC: [u8; 8] = *b"TOLLGATE";
/// Version of the state-file layout this build writes; it also opens version 3 as it is, and
/// upgrades versions 1 and 2.
pub const FORMAT_VERSION: u32 = 4;
/// The last version whose header checksum is FNV-1a; later ones use BLAKE3.
const LAST_FNV_VERSION: u32 = 3;
const HEADER_LEN: usize = 4096;
const RECORD_LEN: usize = std::mem::size_of::<PairRecord>();
/// Bytes of the header covered by its checksum (everything before the checksum itself).
const CHECKED_LEN: usize = 40;

/// Default number of pair records in a new state file.
pub const DEFAULT_CAPACITY: u32 = 65_536;
/// Largest capacity a state file may be created with (256 MiB of records per 1 M).
pub const MAX_CAPACITY: u32 = 16 * 1024 * 1024;

/// The decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    version: u32,
    record_len: u32,
    capacity: u32,
    file_len: u64,
    created_unix: u64,
}

impl Header {
    fn new(capacity: u32, created_unix: u64) -> Header {
        Header {
            version: FORMAT_VERSION,
            record_len: RECORD_LEN as u32,
            capacity,
            file_len: (HEADER_LEN + capacity as usize * RECORD_LEN) as u64,
            created_unix,
        }
    }

    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut page = [0u8; HEADER_LEN];
        page[0..8].copy_from_slice(&MAGIC);
        page[8..12].copy_from_slice(&self.version.to_le_bytes());
        page[12..16].copy_from_slice(&self.record_len.to_le_bytes());
        page[16..20].copy_from_slice(&self.capacity.to_le_bytes());
        page[20..24].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        page[24..32].copy_from_slice(&self.file_len.to_le_bytes());
        page[32..40].copy_from_slice(&self.created_unix.to_le_bytes());
        let sum = header_checksum(self.version, &page[..CHECKED_LEN]);
        page[CHECKED_LEN..CHECKED_LEN + 8].copy_from_slice(&sum.to_le_bytes());
        page
    }

    /// Decodes and checks a header page of a format this build opens (this build's, or
    /// version 3, whose records are the same); the error says what is wrong.
    fn decode(page: &[u8]) -> std::result::Result<Header, Corruption> {
        let header = Header::decode_any(page)?;
        if !matches!(header.version, LAST_FNV_VERSION | FORMAT_VERSION) {
            return Err(Corruption::WrongFormat {
                found: header.version,
                expected: FORMAT_VERSION,
            });
        }
        header.check_layout(RECORD_LEN)?;
        Ok(header)
    }

    /// Checks the record length and the file length the header claims.
    fn check_layout(&self, record_len: usize) -> std::result::Result<(), Corruption> {
        if self.record_len as usize != record_len {
            return Err(Corruption::RecordLength {
                header: HEADER_LEN,
                found: self.record_len,
                expected: record_len,
            });
        }
        if self.capacity == 0
            || self.capacity > MAX_CAPACITY
            || self.file_len != HEADER_LEN as u64 + u64::from(self.capacity) * record_len as u64
        {
            return Err(Corruption::CapacityLayout {
                capacity: self.capacity,
                file_len: self.file_len,
            });
        }
        Ok(())
    }

    /// Decodes a header page of any format version: magic, checksum, padding and header length.
    fn decode_any(page: &[u8]) -> std::result::Result<Header, Corruption> {
        if page.len() < HEADER_LEN {
            return Err(Corruption::ShortHeader {
                len: page.len(),
                need: HEADER_LEN,
            });
        }
        if page[0..8] != MAGIC {
            return Err(Corruption::BadMagic {
                magic: page[0..8].try_into().expect("8 bytes"),
            });
        }
        let u32_at = |at: usize| u32::from_le_bytes(page[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(page[at..at + 8].try_into().unwrap());
        let stored = u64_at(CHECKED_LEN);
        let computed = header_checksum(u32_at(8), &page[..CHECKED_LEN]);
        if stored != computed {
            return Err(Corruption::HeaderChecksum { stored, computed });
        }
        if page[CHECKED_LEN + 8..HEADER_LEN].iter().any(|&b| b != 0) {
            return Err(Corruption::HeaderPadding);
        }
        if u32_at(20) as usize != HEADER_LEN {
            return Err(Corruption::HeaderLength {
                found: u32_at(20),
                expected: HEADER_LEN,
            });
        }
        Ok(Header {
            version: u32_at(8),
            record_len: u32_at(12),
            capacity: u32_at(16),
            file_len: u64_at(24),
            created_unix: u64_at(32),
        })
    }
}

/// The checksum of the first [`CHECKED_LEN`] bytes of a header of format `version`: the
/// first 8 bytes (little-endian) of their BLAKE3 hash, or for a file of version 3 or before
/// their 64-bit FNV-1a. A damaged version field picks the other one, and fails it too.
fn header_checksum(version: u32, bytes: &[u8]) -> u64 {
    if version <= LAST_FNV_VERSION {
        fnv1a(bytes)
    } else {
        let hash = blake3::hash(bytes);
        u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
    }
}

/// 64-bit FNV-1a, the header checksum up to version 3.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// An open, mapped state file.
pub(crate) struct StateFile {
    path: PathBuf,
    // Declared before `map` so the watch ends before the mapping does.
    watch: Watch,
    map: MmapRaw,
    capacity: u32,
    _file: File,
}

// SAFETY: the mapping is only accessed through `PairRecord`, whose fields are all atomics, so
// sharing it between threads is as sound as sharing the atomics themselves.
unsafe impl Send for StateFile {}
// SAFETY: as above.
unsafe impl Sync for StateFile {}

impl StateFile {
    /// Creates a new, zeroed state file at `path` atomically (temporary file, fsync, rename),
    /// with exactly the file mode `mode`.
    pub(crate) fn create(path: &Path, capacity: u32, created_unix: u64, mode: u32) -> Result<()> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(Error::invalid(
                "capacity",
                format!("{capacity} is outside 1..={MAX_CAPACITY}"),
            ));
        }
        let header = Header::new(capacity, created_unix);
        create_preallocated(path, &header.encode(), header.file_len, mode)
    }

    /// Opens and maps an existing state file, refusing any file whose header or size is wrong.
    pub(crate) fn open(path: &Path) -> Result<StateFile> {
        if !crate::sync::AtomicU128::is_lock_free() {
            // A lock-based 128-bit atomic would lock per process, not across the processes
            // sharing the mapping.
            return Err(Error::io(
                format!(
                    "open {}: this CPU has no lock-free 128-bit compare-and-swap",
                    path.display()
                ),
                std::io::ErrorKind::Unsupported.into(),
            ));
        }
        let corrupt = |reason: Corruption| Error::CorruptState {
            path: path.to_owned(),
            reason,
        };
        let (file, len, page) = read_header_page(path)?;
        let header = Header::decode(&page).map_err(corrupt)?;
        if len != header.file_len {
            return Err(corrupt(Corruption::FileLength {
                len,
                header: header.file_len,
            }));
        }
        let map = MmapOptions::new()
            .map_raw(&file)
            .map_err(|e| Error::io(format!("map {}", path.display()), e))?;
        Ok(StateFile {
            path: path.to_owned(),
            watch: Watch::register(map.as_ptr(), map.len()),
            map,
            capacity: header.capacity,
            _file: file,
        })
    }

    /// `Ok` unless another process truncated the file while it was mapped (see `sigbus`).
    pub(crate) fn intact(&self) -> Result<()> {
        if self.truncated_in_use() {
            return Err(Error::CorruptState {
                path: self.path.clone(),
                reason: Corruption::TruncatedInUse,
            });
        }
        Ok(())
    }

    /// Whether another process truncated the file while it was mapped. No syscall.
    #[inline]
    pub(crate) fn truncated_in_use(&self) -> bool {
        self.watch.damaged()
    }

    /// Number of pair records.
    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The record at `index`, which must be below the capacity.
    pub(crate) fn record(&self, index: u32) -> &PairRecord {
        // SAFETY: `record_ptr` points into the live mapping owned by `self`, at a 64-byte aligned
        // offset, and a `PairRecord` (all atomics) is valid for any bit pattern; it is only
        // shared, never `&mut`, so concurrent access by other threads and processes is sound.
        unsafe { self.record_ptr(index).as_ref() }
    }

    /// The record at `index` read as a key account. Account and pair records share the table;
    /// the catalog says which is which, and both are all atomics of the same size and alignment.
    pub(crate) fn account_record(&self, index: u32) -> &AccountRecord {
        // SAFETY: as in `record`: the pointer is in bounds and 64-byte aligned, and an
        // `AccountRecord` (256 bytes of atomics, like `PairRecord`) is valid for any bit pattern
        // and only shared.
        unsafe { self.record_ptr(index).cast::<AccountRecord>().as_ref() }
    }

    /// A raw pointer to the record at `index`, valid for as long as this mapping lives.
    pub(crate) fn record_ptr(&self, index: u32) -> NonNull<PairRecord> {
        assert!(index < self.capacity, "record {index} out of range");
        let offset = HEADER_LEN + index as usize * RECORD_LEN;
        // SAFETY: `offset + RECORD_LEN <= file_len == map.len()` because `index < capacity`, so
        // the pointer stays inside the mapping; mmap returns page-aligned memory, so the
        // 64-byte alignment of `PairRecord` holds for every record.
        unsafe { NonNull::new_unchecked(self.map.as_mut_ptr().add(offset).cast::<PairRecord>()) }
    }

    /// Writes the page holding record `index` to disk and waits for it, so an admin change is
    /// durable in the hot file before the catalog records it.
    pub(crate) fn flush_record(&self, index: u32) -> Result<()> {
        let offset = HEADER_LEN + index as usize * RECORD_LEN;
        self.map
            .flush_range(offset, RECORD_LEN)
            .map_err(|e| Error::io(format!("flush {}", self.path.display()), e))
    }

    /// Writes every dirty page to disk and waits for it (msync `MS_SYNC`).
    pub(crate) fn flush(&self) -> Result<()> {
        self.map
            .flush()
            .map_err(|e| Error::io(format!("flush {}", self.path.display()), e))
    }
}

/// Creates a file of `len` bytes starting with `header`, atomically: written and preallocated
/// under a temporary name, synced, renamed into place, and the directory synced; of exactly the
/// file mode `mode`, whatever the umask. Shared by the state file and the seat-holder table.
///
/// The temporary file is created new (`O_EXCL | O_NOFOLLOW`): a link planted at its name is
/// removed, never written through. The caller holds the admin lock, so a file left there is a
/// crashed creation's.
impl Accounts for StateFile {
    #[inline]
    fn account(&self, id: u32) -> Option<&AccountRecord> {
        let index = id.checked_sub(1)?;
        if index >= self.capacity {
            return None;
        }
        let account = self.account_record(index);
        // A pair naming a record that is not an account (a damaged or edited file) gets none.
        account.is_account().then_some(account)
    }
}

pub(crate) fn create_preallocated(path: &Path, header: &[u8], len: u64, mode: u32) -> Result<()> {
    write_via_temporary(path, "tmp", mode, |file, tmp| {
        file.write_all(header)
            .map_err(io_error("write header of", tmp))?;
        allocate(file, len).map_err(io_error("allocate", tmp))
    })
}

/// Maps an I/O error to [`Error::Io`] saying it happened while doing `what` to `path`.
fn io_error(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let what = format!("{what} {}", path.display());
    move |e| Error::io(what, e)
}

/// Writes the file `path` whole through a temporary file beside it (extension `extension`, of
/// exactly `mode`): `write` fills it (and names the temporary file, its second argument, in its
/// errors), then it is synced and put in place (see [`install`]). A temporary file left by a
/// crash is removed first; only a holder of the admin lock writes these files.
fn write_via_temporary(
    path: &Path,
    extension: &str,
    mode: u32,
    write: impl FnOnce(&mut File, &Path) -> Result<()>,
) -> Result<()> {
    let tmp = path.with_extension(extension);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_error("remove", &tmp)(e))
        }
        _ => {}
    }
    let written = (|| {
        let mut file = crate::files::create_new(&tmp, mode).map_err(io_error("create", &tmp))?;
        write(&mut file, &tmp)?;
        file.sync_all().map_err(io_error("sync", &tmp))
    })();
    install(&tmp, path, written)
}

/// Puts the file `tmp` that `written` says was (or was not) written whole in place of `path`:
/// removed on failure, else renamed over `path` with the directory synced, so a crash leaves
/// either the old file or the new one.
fn install(tmp: &Path, path: &Path, written: Result<()>) -> Result<()> {
    if let Err(e) = written {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    std::fs::rename(tmp, path)
        .map_err(|e| Error::io(format!("rename {} into place", tmp.display()), e))?;
    crate::files::sync_parent(path)
        .map_err(|e| Error::io(format!("sync the directory of {}", path.display()), e))
}

/// Opens `path` for reading and writing without following a symbolic link or opening a FIFO
/// (either is refused as `CorruptState`, naming `what`), and returns it with its length.
pub(crate) fn open_unfollowed(path: &Path, what: &'static str) -> Result<(File, u64)> {
    let file = crate::files::open_regular(path, true, what)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
        .len();
    Ok((file, len))
}

/// Reserves the file's blocks up front, so a full disk is reported here and not as a SIGBUS
/// when a mapped page is first written.
fn allocate(file: &File, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: `file` is an open descriptor for the duration of the call; posix_fallocate only
    // reads its arguments.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

fn read_exact_at(file: &File, buf: &mut [u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, 0)
}

/// Opens the state file at `path` (see [`open_unfollowed`]) and reads its header page, or as
/// much of it as the file holds; returns the file, its length and the page.
fn read_header_page(path: &Path) -> Result<(File, u64, Vec<u8>)> {
    let (file, len) = open_unfollowed(path, "the state file")?;
    let mut page = vec![0u8; HEADER_LEN.min(len as usize)];
    read_exact_at(&file, &mut page).map_err(io_error("read header of", path))?;
    Ok((file, len, page))
}

/// The record length of format version 1.
const V1_RECORD_LEN: usize = 128;

/// Checks, reading only, that `path` is a whole state file of a format this build opens or
/// [`upgrade`]s, with the error either would give; so that a damaged file is refused before
/// anything of the state directory is written (the catalog upgrades its schema at open).
pub(crate) fn check(path: &Path) -> Result<()> {
    let corrupt = |reason: Corruption| Error::CorruptState {
        path: path.to_owned(),
        reason,
    };
    let (_file, len, page) = read_header_page(path)?;
    let header = Header::decode_any(&page).map_err(corrupt)?;
    let record_len = match header.version {
        1 => V1_RECORD_LEN,
        2 | LAST_FNV_VERSION | FORMAT_VERSION => RECORD_LEN,
        version => {
            return Err(corrupt(Corruption::WrongFormat {
                found: version,
                expected: FORMAT_VERSION,
            }))
        }
    };
    header.check_layout(record_len).map_err(corrupt)?;
    if len != header.file_len {
        return Err(corrupt(Corruption::FileLength {
            len,
            header: header.file_len,
        }));
    }
    Ok(())
}

/// Rewrites a version-1 or version-2 state file at `path` in this build's format and returns
/// the version it had; returns `None`, changing nothing, for a file of any other version (which
/// [`StateFile::open`] then judges). The new file is written beside it, synced and renamed over it, so a crash leaves
/// either the old file or the new one. Needs the admin lock, and no process of an older build
/// may have the state open: its updates to the old file would not reach the new one.
pub(crate) fn upgrade(path: &Path) -> Result<Option<u32>> {
    let corrupt = |reason: Corruption| Error::CorruptState {
        path: path.to_owned(),
        reason,
    };
    let (file, len, page) = read_header_page(path)?;
    let Ok(old) = Header::decode_any(&page) else {
        return Ok(None);
    };
    let old_record_len = match old.version {
        1 => V1_RECORD_LEN,
        2 => RECORD_LEN,
        _ => return Ok(None),
    };
    old.check_layout(old_record_len).map_err(corrupt)?;
    if len != old.file_len {
        return Err(corrupt(Corruption::FileLength {
            len,
            header: old.file_len,
        }));
    }
    let new = Header::new(old.capacity, old.created_unix);
    // The new file keeps the old one's mode (private unless the state is shared).
    let mode = file
        .metadata()
        .map_err(io_error("stat", path))?
        .permissions()
        .mode()
        & 0o777;
    write_via_temporary(path, "upgrade", mode, |out, tmp| {
        use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom};
        let mut out = BufWriter::new(out);
        out.write_all(&new.encode())
            .map_err(io_error("write header of", tmp))?;
        let mut records = BufReader::new(&file);
        records
            .seek(SeekFrom::Start(HEADER_LEN as u64))
            .map_err(io_error("read", path))?;
        let mut record = vec![0u8; old_record_len];
        for _ in 0..old.capacity {
            records
                .read_exact(&mut record)
                .map_err(io_error("read", path))?;
            // Version 2 records are kept byte for byte: their layout is this build's, and the
            // engine gives their keys accounts at open (see `PairRecord::legacy_state`).
            let converted = match old.version {
                1 => record_from_v1(record.as_slice().try_into().expect("v1 length")),
                _ => record.as_slice().try_into().expect("v2 length"),
            };
            out.write_all(&converted).map_err(io_error("write", tmp))?;
        }
        out.flush().map_err(io_error("write", tmp))
    })?;
    Ok(Some(old.version))
}

/// One version-1 record in this build's layout. Version 1 packed the cursor as
/// `[epoch:16 | expired:1 | offset:47]` and the expiry mark as `[epoch:16 | offset:48]`; the
/// epoch keeps its value (so the generation slot it selects is the same), and a switched seat
/// pair gets its seats at the switch from the mark, as version 1 read them.
fn record_from_v1(v1: &[u8; V1_RECORD_LEN]) -> [u8; RECORD_LEN] {
    let u64_at = |at: usize| u64::from_le_bytes(v1[at..at + 8].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(v1[at..at + 4].try_into().unwrap());
    let (cursor, mark) = (u64_at(0), u64_at(8));
    let epoch = cursor >> 48;
    let expired = cursor & (1 << 47) != 0;
    let mut offset = cursor & ((1 << 47) - 1);
    let mark_epoch = mark >> 48;
    let mark_offset = mark & ((1 << 48) - 1);
    let seats = u32_at(120) == 1;
    if seats && expired {
        let at_switch = if mark_epoch == epoch {
            mark_offset
        } else {
            offset
        };
        offset |= at_switch << 32;
    }
    let mut v2 = [0u8; RECORD_LEN];
    v2[0..8].copy_from_slice(&offset.to_le_bytes());
    v2[8..16].copy_from_slice(&(epoch << 1 | u64::from(expired)).to_le_bytes());
    v2[16..64].copy_from_slice(&v1[16..64]);
    v2[64..72].copy_from_slice(&mark_offset.to_le_bytes());
    v2[72..80].copy_from_slice(&mark_epoch.to_le_bytes());
    v2[80..128].copy_from_slice(&v1[64..112]);
    v2[128..136].copy_from_slice(&u64::from(u32_at(112)).to_le_bytes());
    v2[136..144].copy_from_slice(&v1[116..124]);
    v2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(capacity: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hot.tgs");
        StateFile::create(&path, capacity, 1, 0o600).unwrap();
        (dir, path)
    }

    fn reason(path: &Path) -> String {
        match StateFile::open(path) {
            Err(Error::CorruptState { reason, .. }) => reason.to_string(),
            Err(other) => panic!("expected CorruptState, got {other}"),
            Ok(_) => panic!("a damaged file was accepted"),
        }
    }

    #[test]
    fn creates_and_reopens() {
        let (_dir, path) = created(16);
        let state = StateFile::open(&path).unwrap();
        assert_eq!(state.capacity(), 16);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (HEADER_LEN + 16 * RECORD_LEN) as u64
        );
        assert_eq!(state.record(15).owner(), 0);
    }

    #[test]
    fn damaged_files_are_refused_and_left_as_they_were() {
        type Damage = fn(&mut Vec<u8>);
        let cases: Vec<(&str, Damage, &str)> = vec![
            (
                "truncated",
                |b| b.truncate(b.len() - RECORD_LEN),
                "truncated or extended",
            ),
            (
                "extended",
                |b| b.extend_from_slice(&[0; 64]),
                "truncated or extended",
            ),
            ("header cut", |b| b.truncate(100), "shorter than"),
            ("empty", |b| b.clear(), "shorter than"),
            ("wrong magic", |b| b[0] = b'X', "not a Tollgate state file"),
            (
                "zero filled",
                |b| b.iter_mut().for_each(|x| *x = 0),
                "not a Tollgate",
            ),
            (
                "random bytes",
                |b| {
                    let mut x = 0x9E37_79B9_7F4A_7C15u64;
                    for byte in b.iter_mut() {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        *byte = x as u8;
                    }
                },
                "not a Tollgate",
            ),
            ("bit flip", |b| b[17] ^= 0x10, "checksum"),
            (
                "other version",
                |b| {
                    b[8] = 9;
                    let sum = header_checksum(9, &b[..CHECKED_LEN]);
                    b[CHECKED_LEN..CHECKED_LEN + 8].copy_from_slice(&sum.to_le_bytes());
                },
                "format version 9",
            ),
        ];
        for (name, damage, expected) in cases {
            let (_dir, path) = created(4);
            let mut bytes = std::fs::read(&path).unwrap();
            damage(&mut bytes);
            std::fs::write(&path, &bytes).unwrap();
            let got = reason(&path);
            assert!(got.contains(expected), "{name}: {got}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}: file changed");
        }
    }

    #[test]
    fn every_header_bit_flip_is_refused() {
        let (_dir, path) = created(2);
        let good = std::fs::read(&path).unwrap();
        for bit in 0..(CHECKED_LEN + 8) * 8 {
            let mut bytes = good.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(&path, &bytes).unwrap();
            reason(&path);
        }
    }

    /// The version decides the checksum: FNV-1a up to version 3, BLAKE3 since (each pinned by
    /// a published test vector), and a header of either kind opens with its own only.
    #[test]
    fn header_checksums_follow_the_version() {
        assert_eq!(header_checksum(3, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(header_checksum(1, b"a"), 0xaf63_dc4c_8601_ec8c);
        // BLAKE3("") = af1349b9f5f9a1a6…, read as a little-endian u64.
        assert_eq!(header_checksum(FORMAT_VERSION, b""), 0xa6a1_f9f5_b949_13af);
        let (_dir, path) = created(2);
        let mut bytes = std::fs::read(&path).unwrap();
        let stored = u64::from_le_bytes(bytes[CHECKED_LEN..CHECKED_LEN + 8].try_into().unwrap());
        let hash = blake3::hash(&bytes[..CHECKED_LEN]);
        assert_eq!(stored.to_le_bytes(), hash.as_bytes()[..8]);
        let v3 = Header {
            version: LAST_FNV_VERSION,
            ..Header::decode(&bytes).unwrap()
        };
        bytes[..HEADER_LEN].copy_from_slice(&v3.encode());
        let stored = u64::from_le_bytes(bytes[CHECKED_LEN..CHECKED_LEN + 8].try_into().unwrap());
        assert_eq!(stored, fnv1a(&bytes[..CHECKED_LEN]));
        std::fs::write(&path, &bytes).unwrap();
        check(&path).unwrap();
        assert_eq!(upgrade(&path).unwrap(), None);
        assert_eq!(StateFile::open(&path).unwrap().capacity(), 2);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "a version-3 file is not rewritten"
        );
    }

    #[test]
    fn capacity_out_of_range_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        for capacity in [0, MAX_CAPACITY + 1] {
            assert!(matches!(
                StateFile::create(&dir.path().join("x"), capacity, 0, 0o600),
                Err(Error::InvalidArgument {
                    field: "capacity",
                    ..
                })
            ));
        }
    }

    /// A version-1 file (128-byte records, 16-bit epochs) is rewritten in this format with every
    /// counter, generation, switch and seat gauge as version 1 read it.
    #[test]
    fn a_version_1_file_is_upgraded_with_its_counters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hot.tgs");
        let header = Header {
            version: 1,
            record_len: V1_RECORD_LEN as u32,
            capacity: 3,
            file_len: (HEADER_LEN + 3 * V1_RECORD_LEN) as u64,
            created_unix: 7,
        };
        let mut bytes = header.encode().to_vec();
        // (cursor, mark, metering, owner): a volume pair at epoch 3 with 700 bytes used; a seat
        // pair at epoch 1 switched on expiry with 6 seats held then and 4 now; an empty record.
        let records: [(u64, u64, u32, u32); 3] = [
            (3 << 48 | 700, 3 << 48, 0, 1),
            (1 << 48 | 1 << 47 | 4, 1 << 48 | 6, 1, 2),
            (0, 0, 0, 0),
        ];
        for (cursor, mark, metering, owner) in records {
            let mut r = [0u8; V1_RECORD_LEN];
            r[0..8].copy_from_slice(&cursor.to_le_bytes());
            r[8..16].copy_from_slice(&mark.to_le_bytes());
            // limits[1]: active 1000, reserve 500, both never expiring.
            r[40..48].copy_from_slice(&1000u64.to_le_bytes());
            r[48..56].copy_from_slice(&500u64.to_le_bytes());
            r[56..60].copy_from_slice(&u32::MAX.to_le_bytes());
            r[60..64].copy_from_slice(&u32::MAX.to_le_bytes());
            // meta[1]: keys 11 and 12, one switch before.
            r[88..92].copy_from_slice(&11u32.to_le_bytes());
            r[92..96].copy_from_slice(&12u32.to_le_bytes());
            r[96..100].copy_from_slice(&1u32.to_le_bytes());
            r[116..120].copy_from_slice(&owner.to_le_bytes());
            r[120..124].copy_from_slice(&metering.to_le_bytes());
            bytes.extend_from_slice(&r);
        }
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // An upgrade a crash interrupted left its temporary file behind.
        let stale = path.with_extension("upgrade");
        std::fs::write(&stale, b"half an upgrade").unwrap();
        assert_eq!(
            reason(&path),
            "format version 1, this build reads version 4"
        );
        assert_eq!(upgrade(&path).unwrap(), Some(1));
        assert_eq!(
            upgrade(&path).unwrap(),
            None,
            "a second upgrade changes nothing"
        );
        assert!(!stale.exists());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the upgraded file keeps the old one's mode");
        let state = StateFile::open(&path).unwrap();
        let volume = state.record(0).state();
        assert_eq!((volume.epoch, volume.switches), (3, 1));
        let active = volume.active.unwrap();
        assert_eq!((active.key, active.limit, active.used), (11, 1000, 700));
        assert_eq!(volume.reserve.unwrap().key, 12);
        assert_eq!(state.record(0).owner(), 1);
        let seats = state.record(1).state();
        assert_eq!(seats.epoch, 1);
        assert_eq!(seats.switched_out, Some((11, 6)));
        assert_eq!(seats.active.unwrap().key, 12);
        assert_eq!(seats.active.unwrap().used, 4);
        for index in 0..3 {
            state.record(index).check().unwrap();
        }
        assert_eq!(state.record(2).owner(), 0);
    }
}
