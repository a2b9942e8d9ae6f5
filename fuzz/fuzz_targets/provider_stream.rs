//! Fuzz target: every dialect's stream framing (SSE, AWS event stream) and stream parser on
//! arbitrary bytes, split into chunks at arbitrary points (the first byte picks the dialect,
//! the second the chunk size). Any stream must end in events or an error, never a panic or a
//! hang.
#![no_main]

use atlasai_providers::fuzzing::{Dialect, parse_stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let dialect = Dialect::from_byte(data[0]);
    let chunk = usize::from(data[1]).max(1);
    let chunks: Vec<Vec<u8>> = data[2..].chunks(chunk).map(<[u8]>::to_vec).collect();
    let _ = parse_stream(dialect, chunks);
});
