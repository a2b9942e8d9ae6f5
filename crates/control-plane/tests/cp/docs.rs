//! The control-plane reference names every variable the code reads and every endpoint it
//! serves, so the two cannot drift.

use atlasai_control_plane::config::KNOWN_VARS;
use atlasai_control_plane::http::ENDPOINTS;

#[test]
fn control_plane_reference_lists_every_variable_and_endpoint() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/control-plane.md"
    ))
    .unwrap();
    let missing: Vec<String> = KNOWN_VARS
        .iter()
        .map(|v| format!("`{v}`"))
        .chain(ENDPOINTS.iter().map(|e| format!("`{e}`")))
        .filter(|needle| !doc.contains(needle.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/control-plane.md does not mention: {missing:?}"
    );
}

#[test]
fn every_listed_endpoint_is_served() {
    // The router answers unknown paths with a "no such endpoint" 404; every listed endpoint
    // must be routed (its handler may still answer 401, 400 or 404 for a missing resource).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cp = crate::support::Cp::start(&[]).await;
        for e in ENDPOINTS {
            let (method, template) = e.split_once(' ').unwrap();
            let path = template
                .replace("{tenant}", "t")
                .replace("{cluster}", "c")
                .replace("{user}", "u")
                .replace("{id}", "v");
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let resp = client
                .request(method.parse().unwrap(), cp.at(&path))
                .send()
                .await
                .unwrap();
            let body = resp.text().await.unwrap_or_default();
            assert!(
                !body.contains("endpoint (see docs/control-plane.md) not found"),
                "{e} is not routed"
            );
        }
    });
}
