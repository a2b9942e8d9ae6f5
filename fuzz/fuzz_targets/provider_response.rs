//! Fuzz target: every dialect's response and error-body parsers on arbitrary bytes (the first
//! byte picks the dialect). Any body must give an answer or a `ProviderError`, never a panic.
#![no_main]

use atlasai_providers::fuzzing::{Dialect, parse_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else { return };
    let _ = parse_response(Dialect::from_byte(*first), body);
});
