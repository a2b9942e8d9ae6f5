//! Fuzz target: configuration resolution from arbitrary environment variables (one
//! `NAME=value` per line). Any environment must give a configuration or a list of errors,
//! never a panic. Settings that touch the outside world (files named by `*_FILE`, DNS for the
//! air-gapped check) are left out so every run is pure and fast.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let pairs: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.ends_with("_FILE") && *k != "TP_AIR_GAPPED" && *k != "TP_VALUES_FILE")
        .collect();
    let inputs = atlasai_tenant_plane::config::ConfigInputs {
        env: atlasai_tenant_plane::config::Env::from_pairs(pairs),
        values_flag: None,
    };
    if let Ok(config) = atlasai_tenant_plane::config::load(&inputs) {
        let _ = config.render_report();
    }
});
