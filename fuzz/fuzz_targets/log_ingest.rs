//! Fuzz target: the NDJSON log-ingest parser (`POST /api/logs`). Any body must give lines or
//! an error naming the bad line, never a panic; every accepted line has a message and a time.
#![no_main]

use atlasai_tenant_plane::ingest::{Defaults, parse_ndjson};
use atlasai_tenant_plane::store::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let defaults = Defaults {
        incident_id: None,
        service: Some("checkout".to_owned()),
    };
    if let Ok(lines) = parse_ndjson(data, &defaults, Timestamp(1_700_000_000_000_000)) {
        for line in &lines {
            // Template extraction runs on every accepted line at ingest.
            let _ = atlasai_tenant_plane::ingest::template_id(&line.message);
        }
    }
});
