//! `Key::from_json` on arbitrary text: never panics, and a key that parses serialises to JSON
//! that parses back to the same key and serialises to the same text again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::{Error, Key};

fuzz_target!(|data: &[u8]| {
    // Lossy, so that inputs with a stray invalid byte still reach the parser.
    let text = String::from_utf8_lossy(data);
    match Key::from_json(&text) {
        Ok(key) => {
            key.validate().expect("a parsed key is valid");
            let json = key.to_json();
            let again =
                Key::from_json(&json).unwrap_or_else(|e| panic!("{json} does not parse back: {e}"));
            assert_eq!(again, key, "{json}");
            assert_eq!(again.to_json(), json);
        }
        Err(Error::InvalidArgument { reason, .. }) => assert!(!reason.is_empty()),
        Err(other) => panic!("key JSON refused with {other:?}, not InvalidArgument"),
    }
});
