//! The configuration reference names every setting the code reads, so the two cannot drift.

use atlasai_tenant_plane::config::{KNOWN_VARS, VALUES_KEYS};

#[test]
fn configuration_reference_lists_every_variable_and_values_key() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/configuration.md"
    ))
    .unwrap();
    let missing: Vec<&str> = KNOWN_VARS
        .iter()
        .copied()
        .chain(VALUES_KEYS.iter().map(|(key, _)| *key))
        .filter(|name| !doc.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not mention: {missing:?}"
    );
}
