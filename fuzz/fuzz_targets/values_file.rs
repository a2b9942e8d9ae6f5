//! Fuzz target: the Helm values file parser (`--values`, `TP_VALUES_FILE`). Any input must
//! give a document or a list of errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = atlasai_tenant_plane::config::ValuesDoc::parse(std::path::Path::new("values.yaml"), text);
    }
});
