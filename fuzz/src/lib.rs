//! Helpers shared by the fuzz targets in `fuzz_targets/`: a state directory for the targets
//! that need an engine, and key JSON.
#![deny(missing_docs)]

use std::path::PathBuf;

use tollgate_core::MAX_LIMIT_BYTES;

/// A fresh state directory for this fuzzing process, under `$TMPDIR` (`scripts/fuzz.sh` points
/// it at a tmpfs when there is one, so that the catalog's `fsync`s cost nothing, and removes it
/// afterwards). It is never deleted by the process itself: libFuzzer ends with `exit`, and the
/// engine that uses the directory lives until then.
pub fn state_dir(target: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("tollgate-fuzz-{target}-"))
        .tempdir()
        .expect("create a temporary state directory")
        .keep()
}

/// JSON of an online, commercial, standard data-volume key whose id is `id`, inserted verbatim
/// (not escaped: the bytes may break the JSON or the UTF-8 on purpose).
pub fn key_json_with_raw_id(id: &[u8], limit_bytes: u64) -> Vec<u8> {
    let mut json = br#"{"id": ""#.to_vec();
    json.extend_from_slice(id);
    json.extend_from_slice(
        format!(
            r#"", "delivery": "online", "kind": "commercial", "edition": "standard", "scheme": {{"data_volume": {{"limit_bytes": {limit_bytes}}}}}}}"#
        )
        .as_bytes(),
    );
    json
}

/// JSON of a valid data-volume key `id` at the largest limit a key may carry.
pub fn max_key_json(id: &str) -> String {
    String::from_utf8(key_json_with_raw_id(id.as_bytes(), MAX_LIMIT_BYTES))
        .expect("an id given as &str keeps the JSON UTF-8")
}
