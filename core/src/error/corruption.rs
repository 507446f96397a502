//! What [`Error::CorruptState`](super::Error::CorruptState) found wrong with a state: a file
//! damaged, truncated, of another format or missing, a record that contradicts itself or the
//! catalog, or a catalog row no build writes. Each case is a variant a caller can match;
//! `Display` gives the message the engine has always given. Where the fault was found by
//! another library (SQLite, a JSON or time parser), its message is kept in words.

use std::fmt;

/// Why a state was refused as damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// The state file is shorter than its header.
    ShortHeader {
        /// The file's length in bytes.
        len: usize,
        /// The header's length.
        need: usize,
    },
    /// The state file does not start with the state file's magic bytes.
    BadMagic {
        /// The first 8 bytes of the file.
        magic: [u8; 8],
    },
    /// The state file's header checksum does not match the header.
    HeaderChecksum {
        /// The checksum the header holds.
        stored: u64,
        /// The checksum of the header's content.
        computed: u64,
    },
    /// The state file's header is not zero after its checksum.
    HeaderPadding,
    /// The state file's header names another header length than this build's.
    HeaderLength {
        /// The length the header names.
        found: u32,
        /// The length this build uses.
        expected: usize,
    },
    /// The state file is of a format version this build neither opens nor upgrades.
    WrongFormat {
        /// The file's version.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The state file's header names another record length than its format's.
    RecordLength {
        /// The header's length.
        header: usize,
        /// The record length the header names.
        found: u32,
        /// The record length of the file's format in this build.
        expected: usize,
    },
    /// The state file's header names a capacity that does not fit the file length it names.
    CapacityLayout {
        /// The capacity, in records.
        capacity: u32,
        /// The file length the header names.
        file_len: u64,
    },
    /// The state file is longer or shorter than its header says.
    FileLength {
        /// The file's length in bytes.
        len: u64,
        /// The length its header says.
        header: u64,
    },
    /// Another process truncated the state file while this one had it mapped.
    TruncatedInUse,
    /// A pair record of the state file contradicts itself.
    Record {
        /// The record's index.
        record: u32,
        /// What is wrong with it.
        damage: RecordDamage,
    },
    /// A slot pair's lease, read on the hot path, does not belong to its live generation.
    LeaseNotLive,
    /// The hot-state file is missing while the catalog holds projects.
    HotFileMissing,
    /// The catalog is missing beside an existing hot-state file.
    CatalogMissing,
    /// The seat-holder table is missing from a state that has had one.
    HoldersMissing,
    /// The catalog names a record beyond the state file's capacity.
    RecordBeyondCapacity {
        /// The record's index.
        record: u32,
        /// The state file's capacity.
        capacity: u32,
    },
    /// A record of the state file belongs to another project than the catalog says.
    RecordOwner {
        /// The record's index.
        record: u32,
        /// The owner tag the record holds.
        owner: u32,
        /// The project the catalog gives it.
        project: i64,
    },
    /// A record the catalog holds as free is in use in the state file.
    RecordInUse {
        /// The record's index.
        record: u32,
    },
    /// The hot state names a key row the catalog does not hold.
    UnknownKeyRow {
        /// The key row.
        row: u32,
    },
    /// A project has no data-volume pair in the catalog.
    NoDataVolumePair {
        /// The project.
        project: String,
    },
    /// An instance has no pair in the catalog.
    NoInstancePair {
        /// The instance.
        instance: String,
    },
    /// A file of the state or the installation is a symbolic link, which is never followed.
    SymlinkRefused {
        /// Which file, in words ("the state file", "the catalog", …).
        what: &'static str,
    },
    /// A file of the state or the installation is not a regular file (a FIFO, a directory, a
    /// device, …), which is never used.
    NotRegularFile {
        /// Which file, in words.
        what: &'static str,
        /// What it is instead, in words.
        kind: &'static str,
    },
    /// The installation key is not a key.
    InstallationKey {
        /// Why it does not read as one, in words.
        error: String,
    },
    /// The seat-holder table does not start with its magic bytes.
    NotHolderTable,
    /// The seat-holder table is of a version this build does not read.
    HolderVersion {
        /// The table's version.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The seat-holder table's length does not hold the entries its header names.
    HolderLength {
        /// The table's length in bytes.
        len: u64,
        /// The number of entries its header names.
        capacity: u32,
    },
    /// Another process truncated the seat-holder table while this one had it mapped.
    HoldersTruncatedInUse,
    /// The lease-slot table (`slots.tgs`) does not start with its magic bytes and version.
    NotSlotTable,
    /// The lease-slot table's length does not hold the slots its header names.
    SlotTableLength {
        /// The table's length in bytes.
        len: u64,
        /// The number of slots its header names.
        capacity: u32,
    },
    /// The catalog is not a usable SQLite database.
    UnusableCatalog {
        /// SQLite's error, in words.
        error: String,
    },
    /// The catalog's schema version cannot be read.
    UnreadableSchemaVersion {
        /// SQLite's error, in words.
        error: String,
    },
    /// The catalog is of a schema version this build neither reads nor upgrades.
    SchemaVersion {
        /// The catalog's version.
        found: i64,
        /// The version this build reads.
        expected: i64,
    },
    /// The catalog records no schema version.
    NoSchemaVersion,
    /// A step upgrading the catalog's schema failed.
    CatalogUpgrade {
        /// The version the step upgrades from.
        version: i64,
        /// SQLite's error, in words.
        error: String,
    },
    /// A pair in the catalog has a license class no build writes.
    UnknownLicenseClass {
        /// The stored class.
        text: String,
    },
    /// The catalog's license pool cannot be read.
    UnreadableLicenseTable {
        /// SQLite's error, in words.
        error: String,
    },
    /// A key's account has a usage period but no reset term.
    NoResetTerm {
        /// The key.
        key: String,
    },
    /// An audit entry does not read as an event.
    UnreadableEvent {
        /// The audit entry.
        seq: i64,
        /// The JSON parser's error, in words.
        error: String,
    },
    /// An audit entry's time is not an RFC 3339 time.
    EventTime {
        /// The audit entry.
        seq: i64,
        /// The time parser's error, in words.
        error: String,
    },
    /// A key stored under an id does not read as a key.
    KeyJson {
        /// The key's id.
        id: String,
        /// The JSON parser's error, in words.
        error: String,
    },
    /// A key row does not read as a key.
    KeyRowJson {
        /// The key row.
        row: u32,
        /// The JSON parser's error, in words.
        error: String,
    },
    /// A trusted vendor key is not a public key.
    TrustedKey {
        /// The stored key.
        public: String,
        /// Why it does not read as one, in words.
        error: String,
    },
    /// The time a vendor key was trusted is not an RFC 3339 time.
    TrustedKeyTime {
        /// The stored key.
        public: String,
        /// The time parser's error, in words.
        error: String,
    },
}

/// What is wrong with a pair record (see [`Corruption::Record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordDamage {
    /// A limit is beyond the largest a key may have.
    LimitBeyondMax {
        /// The larger of the Active and Reserved limits.
        limit: u64,
    },
    /// A seat pair's gauge records a switch, but its cursor has not switched.
    SwitchWithoutExpiry {
        /// The gauge.
        gauge: u64,
    },
    /// The cursor has switched to a reserve its generation does not hold.
    SwitchedWithoutReserve,
    /// The lease in use belongs to another generation than the cursor's.
    LeaseGeneration {
        /// The lease's generation.
        lease: u64,
        /// The cursor's generation.
        cursor: u64,
    },
    /// The cursor is beyond the end of its lease.
    CursorBeyondLease {
        /// The cursor's offset.
        cursor: u64,
        /// The lease's end.
        end: u64,
    },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::ShortHeader { len, need } => {
                write!(f, "file is {len} bytes, shorter than the {need}-byte header")
            }
            Corruption::BadMagic { magic } => {
                write!(f, "not a Tollgate state file (magic {magic:02x?})")
            }
            Corruption::HeaderChecksum { stored, computed } => write!(
                f,
                "header checksum {stored:#018x} does not match its content ({computed:#018x})"
            ),
            Corruption::HeaderPadding => f.write_str("header padding is not zero"),
            Corruption::HeaderLength { found, expected } => write!(
                f,
                "layout of {found}-byte header, this build uses {expected}"
            ),
            Corruption::WrongFormat { found, expected } => write!(
                f,
                "format version {found}, this build reads version {expected}"
            ),
            Corruption::RecordLength { header, found, expected } => write!(
                f,
                "layout of {header}-byte header and {found}-byte records, this build uses {header} and {expected}"
            ),
            Corruption::CapacityLayout { capacity, file_len } => write!(
                f,
                "capacity {capacity} does not fit a layout of {file_len} bytes"
            ),
            Corruption::FileLength { len, header } => write!(
                f,
                "file is {len} bytes but its header says {header}: it was truncated or extended"
            ),
            Corruption::TruncatedInUse => f.write_str(
                "the state file was truncated while in use; its counters are lost to this process",
            ),
            Corruption::Record { record, damage } => write!(f, "record {record}: {damage}"),
            Corruption::LeaseNotLive => {
                f.write_str("a slot pair's lease does not belong to its live generation")
            }
            Corruption::HotFileMissing => {
                f.write_str("the hot-state file is missing but the catalog holds projects")
            }
            Corruption::CatalogMissing => {
                f.write_str("the catalog is missing beside an existing hot-state file")
            }
            Corruption::HoldersMissing => f.write_str(
                "the seat-holder table is missing: the seats held on this state cannot be accounted",
            ),
            Corruption::RecordBeyondCapacity { record, capacity } => write!(
                f,
                "the catalog names record {record} beyond the capacity {capacity}"
            ),
            Corruption::RecordOwner { record, owner, project } => write!(
                f,
                "record {record} belongs to project {owner}, the catalog says {project}"
            ),
            Corruption::RecordInUse { record } => write!(
                f,
                "record {record} is in use but the catalog does not know it"
            ),
            Corruption::UnknownKeyRow { row } => write!(
                f,
                "the hot state names key row {row}, which the catalog does not hold"
            ),
            Corruption::NoDataVolumePair { project } => {
                write!(f, "project \"{project}\" has no data-volume pair")
            }
            Corruption::NoInstancePair { instance } => {
                write!(f, "instance \"{instance}\" has no pair")
            }
            Corruption::SymlinkRefused { what } => {
                write!(f, "{what} is a symbolic link; it is not followed")
            }
            Corruption::NotRegularFile { what, kind } => {
                write!(f, "{what} is {kind}, not a regular file; it is not used")
            }
            Corruption::InstallationKey { error } => {
                write!(f, "not an installation key: {error}")
            }
            Corruption::NotHolderTable => f.write_str("not a Tollgate seat-holder table"),
            Corruption::NotSlotTable => f.write_str("not a version-1 Tollgate lease-slot table"),
            Corruption::SlotTableLength { len, capacity } => write!(
                f,
                "{len} bytes do not hold the {capacity} lease slots the header names"
            ),
            Corruption::HolderVersion { found, expected } => write!(
                f,
                "seat-holder table version {found}, this build reads {expected}"
            ),
            Corruption::HolderLength { len, capacity } => write!(
                f,
                "{len} bytes do not hold the {capacity} entries the header names"
            ),
            Corruption::HoldersTruncatedInUse => f.write_str(
                "the seat-holder table was truncated while in use; the seats it held are lost to this process",
            ),
            Corruption::UnusableCatalog { error } => {
                write!(f, "not a usable SQLite catalog: {error}")
            }
            Corruption::UnreadableSchemaVersion { error } => {
                write!(f, "no readable schema version: {error}")
            }
            Corruption::SchemaVersion { found, expected } => write!(
                f,
                "catalog schema version {found}, this build reads {expected}"
            ),
            Corruption::NoSchemaVersion => f.write_str("catalog has no schema version"),
            Corruption::CatalogUpgrade { version, error } => write!(
                f,
                "upgrading the catalog from version {version}: {error}"
            ),
            Corruption::UnknownLicenseClass { text } => {
                write!(f, "unknown license class {text:?}")
            }
            Corruption::UnreadableLicenseTable { error } => {
                write!(f, "unreadable license table: {error}")
            }
            Corruption::NoResetTerm { key } => write!(
                f,
                "the account of key \"{key}\" has a period but no reset term"
            ),
            Corruption::UnreadableEvent { seq, error } => {
                write!(f, "event {seq} is unreadable: {error}")
            }
            Corruption::EventTime { seq, error } => {
                write!(f, "event {seq} has a bad time: {error}")
            }
            Corruption::KeyJson { id, error } => {
                write!(f, "key {id:?} holds unreadable JSON: {error}")
            }
            Corruption::KeyRowJson { row, error } => {
                write!(f, "key row {row} holds unreadable JSON: {error}")
            }
            Corruption::TrustedKey { public, error } => {
                write!(f, "trusted key {public:?} is unreadable: {error}")
            }
            Corruption::TrustedKeyTime { public, error } => {
                write!(f, "trusted key {public:?} has a bad time: {error}")
            }
        }
    }
}

impl fmt::Display for RecordDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordDamage::LimitBeyondMax { limit } => write!(f, "limit {limit} beyond the maximum"),
            RecordDamage::SwitchWithoutExpiry { gauge } => write!(
                f,
                "seat gauge {gauge:#x} records a switch without the expired flag"
            ),
            RecordDamage::SwitchedWithoutReserve => {
                f.write_str("switched to a reserve the generation does not hold")
            }
            RecordDamage::LeaseGeneration { lease, cursor } => write!(
                f,
                "lease of generation {lease} under the cursor of generation {cursor}"
            ),
            RecordDamage::CursorBeyondLease { cursor, end } => {
                write!(f, "cursor {cursor} beyond its lease's end {end}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each variant's message, as the engine gave it when the reason was a string.
    #[test]
    fn display_gives_the_messages_of_before() {
        let error = || "boom".to_owned();
        let cases: Vec<(Corruption, &str)> = vec![
            (
                Corruption::ShortHeader { len: 12, need: 4096 },
                "file is 12 bytes, shorter than the 4096-byte header",
            ),
            (
                Corruption::BadMagic { magic: *b"TOLLGATF" },
                "not a Tollgate state file (magic [54, 4f, 4c, 4c, 47, 41, 54, 46])",
            ),
            (
                Corruption::HeaderChecksum { stored: 0xab, computed: 0x1234 },
                "header checksum 0x00000000000000ab does not match its content (0x0000000000001234)",
            ),
            (Corruption::HeaderPadding, "header padding is not zero"),
            (
                Corruption::HeaderLength { found: 512, expected: 4096 },
                "layout of 512-byte header, this build uses 4096",
            ),
            (
                Corruption::WrongFormat { found: 9, expected: 4 },
                "format version 9, this build reads version 4",
            ),
            (
                Corruption::RecordLength { header: 4096, found: 128, expected: 144 },
                "layout of 4096-byte header and 128-byte records, this build uses 4096 and 144",
            ),
            (
                Corruption::CapacityLayout { capacity: 0, file_len: 4096 },
                "capacity 0 does not fit a layout of 4096 bytes",
            ),
            (
                Corruption::FileLength { len: 5000, header: 4240 },
                "file is 5000 bytes but its header says 4240: it was truncated or extended",
            ),
            (
                Corruption::TruncatedInUse,
                "the state file was truncated while in use; its counters are lost to this process",
            ),
            (
                Corruption::Record {
                    record: 3,
                    damage: RecordDamage::LimitBeyondMax { limit: 7 },
                },
                "record 3: limit 7 beyond the maximum",
            ),
            (
                Corruption::Record {
                    record: 3,
                    damage: RecordDamage::SwitchWithoutExpiry { gauge: 0x5_0000_0001 },
                },
                "record 3: seat gauge 0x500000001 records a switch without the expired flag",
            ),
            (
                Corruption::Record { record: 3, damage: RecordDamage::SwitchedWithoutReserve },
                "record 3: switched to a reserve the generation does not hold",
            ),
            (
                Corruption::Record {
                    record: 3,
                    damage: RecordDamage::LeaseGeneration { lease: 4, cursor: 6 },
                },
                "record 3: lease of generation 4 under the cursor of generation 6",
            ),
            (
                Corruption::Record {
                    record: 3,
                    damage: RecordDamage::CursorBeyondLease { cursor: 900, end: 800 },
                },
                "record 3: cursor 900 beyond its lease's end 800",
            ),
            (
                Corruption::LeaseNotLive,
                "a slot pair's lease does not belong to its live generation",
            ),
            (
                Corruption::HotFileMissing,
                "the hot-state file is missing but the catalog holds projects",
            ),
            (
                Corruption::CatalogMissing,
                "the catalog is missing beside an existing hot-state file",
            ),
            (
                Corruption::HoldersMissing,
                "the seat-holder table is missing: the seats held on this state cannot be accounted",
            ),
            (
                Corruption::RecordBeyondCapacity { record: 70, capacity: 64 },
                "the catalog names record 70 beyond the capacity 64",
            ),
            (
                Corruption::RecordOwner { record: 2, owner: 5, project: 6 },
                "record 2 belongs to project 5, the catalog says 6",
            ),
            (
                Corruption::RecordInUse { record: 8 },
                "record 8 is in use but the catalog does not know it",
            ),
            (
                Corruption::UnknownKeyRow { row: 11 },
                "the hot state names key row 11, which the catalog does not hold",
            ),
            (
                Corruption::NoDataVolumePair { project: "P".into() },
                "project \"P\" has no data-volume pair",
            ),
            (
                Corruption::NoInstancePair { instance: "I".into() },
                "instance \"I\" has no pair",
            ),
            (
                Corruption::SymlinkRefused { what: "the catalog" },
                "the catalog is a symbolic link; it is not followed",
            ),
            (
                Corruption::NotRegularFile { what: "the anchor", kind: "a FIFO" },
                "the anchor is a FIFO, not a regular file; it is not used",
            ),
            (
                Corruption::InstallationKey { error: error() },
                "not an installation key: boom",
            ),
            (Corruption::NotHolderTable, "not a Tollgate seat-holder table"),
            (
                Corruption::NotSlotTable,
                "not a version-1 Tollgate lease-slot table",
            ),
            (
                Corruption::SlotTableLength { len: 64, capacity: 2 },
                "64 bytes do not hold the 2 lease slots the header names",
            ),
            (
                Corruption::HolderVersion { found: 2, expected: 1 },
                "seat-holder table version 2, this build reads 1",
            ),
            (
                Corruption::HolderLength { len: 100, capacity: 4 },
                "100 bytes do not hold the 4 entries the header names",
            ),
            (
                Corruption::HoldersTruncatedInUse,
                "the seat-holder table was truncated while in use; the seats it held are lost to this process",
            ),
            (
                Corruption::UnusableCatalog { error: error() },
                "not a usable SQLite catalog: boom",
            ),
            (
                Corruption::UnreadableSchemaVersion { error: error() },
                "no readable schema version: boom",
            ),
            (
                Corruption::SchemaVersion { found: 9, expected: 5 },
                "catalog schema version 9, this build reads 5",
            ),
            (Corruption::NoSchemaVersion, "catalog has no schema version"),
            (
                Corruption::CatalogUpgrade { version: 3, error: error() },
                "upgrading the catalog from version 3: boom",
            ),
            (
                Corruption::UnknownLicenseClass { text: "gold".into() },
                "unknown license class \"gold\"",
            ),
            (
                Corruption::UnreadableLicenseTable { error: error() },
                "unreadable license table: boom",
            ),
            (
                Corruption::NoResetTerm { key: "K-1".into() },
                "the account of key \"K-1\" has a period but no reset term",
            ),
            (
                Corruption::UnreadableEvent { seq: 12, error: error() },
                "event 12 is unreadable: boom",
            ),
            (
                Corruption::EventTime { seq: 12, error: error() },
                "event 12 has a bad time: boom",
            ),
            (
                Corruption::KeyJson { id: "K-1".into(), error: error() },
                "key \"K-1\" holds unreadable JSON: boom",
            ),
            (
                Corruption::KeyRowJson { row: 4, error: error() },
                "key row 4 holds unreadable JSON: boom",
            ),
            (
                Corruption::TrustedKey { public: "AAA".into(), error: error() },
                "trusted key \"AAA\" is unreadable: boom",
            ),
            (
                Corruption::TrustedKeyTime { public: "AAA".into(), error: error() },
                "trusted key \"AAA\" has a bad time: boom",
            ),
        ];
        for (corruption, text) in cases {
            assert_eq!(corruption.to_string(), text, "{corruption:?}");
        }
    }
}
