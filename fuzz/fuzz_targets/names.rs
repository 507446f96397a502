//! `check_name` on arbitrary strings: never panics, and accepts exactly the names of rule R1 in
//! docs/rules.md and the look-alike rule: 1..=64 bytes of UTF-8 with no control character (NUL
//! included), no format character (Unicode category Cf), and already in normalization form C.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::{check_name, Error, MAX_NAME_BYTES};
use unicode_general_category::{get_general_category, GeneralCategory};
use unicode_normalization::UnicodeNormalization;

fuzz_target!(|data: &[u8]| {
    let name = String::from_utf8_lossy(data);
    let valid = (1..=MAX_NAME_BYTES).contains(&name.len())
        && !name.chars().any(char::is_control)
        && !name
            .chars()
            .any(|c| get_general_category(c) == GeneralCategory::Format)
        && name.nfc().eq(name.chars());
    match check_name("project name", &name) {
        Ok(()) => assert!(valid, "{name:?} was accepted"),
        Err(Error::InvalidArgument { field, reason }) => {
            assert!(!valid, "{name:?} was refused: {reason}");
            assert_eq!(field, "project name");
            assert!(!reason.is_empty());
        }
        Err(other) => panic!("{name:?} refused with {other:?}, not InvalidArgument"),
    }
});
