//! Search quality on the labelled fixture set (`tests/fixtures/search`): keyword search must
//! find what a responder needs for the queries that name it in words they share with the
//! documents. Paraphrased queries are what hybrid search is for; the benchmark
//! (`cargo xtask bench search`) reports both.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use atlasai_tenant_plane::ingest::{Defaults, parse_ndjson};
use atlasai_tenant_plane::search::index::{DocKind, Filters};
use atlasai_tenant_plane::search::{self, ModeRequest, SearchRequest};
use atlasai_tenant_plane::store::incidents::{NewAlert, NewChange, NewIncident};
use atlasai_tenant_plane::store::runbooks::NewRunbook;
use atlasai_tenant_plane::store::{IncidentStatus, Timestamp};
use serde_json::Value;

use crate::{TestEnv, tenant};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/search")
}

fn read(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

/// The fixture's documents under their fixture keys (`incident:INC-1001`, `runbook:rb-dns`,
/// `line:L00042`), with each log line's incident key and message.
struct Loaded {
    ids: HashMap<String, String>,
    lines: HashMap<String, (String, String)>,
}

async fn load(env: &TestEnv) -> Loaded {
    let s = env.store();
    let t = tenant("acme");
    let mut ids = HashMap::new();
    for inc in read("incidents.json").as_array().unwrap() {
        let str_of = |k: &str| inc[k].as_str().unwrap().to_owned();
        let created = s
            .create_incident(
                &t,
                NewIncident {
                    external_id: Some(str_of("key")),
                    title: str_of("title"),
                    description: str_of("description"),
                    service: str_of("service"),
                    severity: str_of("severity").parse().unwrap(),
                    status: IncidentStatus::Resolved,
                    started_at: Some(Timestamp::parse(&str_of("started_at")).unwrap()),
                },
            )
            .await
            .unwrap();
        for a in inc["alerts"].as_array().unwrap() {
            s.add_alert(
                &t,
                &created.id,
                NewAlert {
                    title: a["title"].as_str().unwrap().into(),
                    description: String::new(),
                    service: str_of("service"),
                    severity: a["severity"].as_str().unwrap().parse().unwrap(),
                    source: Some("prometheus".into()),
                    fingerprint: None,
                    labels: a["labels"].as_object().unwrap().clone(),
                    fired_at: None,
                },
                None,
            )
            .await
            .unwrap();
        }
        for c in inc["changes"].as_array().unwrap() {
            s.add_change(
                &t,
                &created.id,
                NewChange {
                    kind: c["kind"].as_str().unwrap().parse().unwrap(),
                    service: str_of("service"),
                    summary: c["summary"].as_str().unwrap().into(),
                    details: c["details"].as_str().unwrap().into(),
                    author: None,
                    reference: None,
                    occurred_at: None,
                },
            )
            .await
            .unwrap();
        }
        ids.insert(format!("incident:{}", str_of("key")), created.id);
    }
    for rb in read("runbooks.json").as_array().unwrap() {
        let created = s
            .create_runbook(
                &t,
                NewRunbook {
                    title: rb["title"].as_str().unwrap().into(),
                    content: rb["content"].as_str().unwrap().into(),
                    services: serde_json::from_value(rb["services"].clone()).unwrap(),
                    tags: serde_json::from_value(rb["tags"].clone()).unwrap(),
                },
            )
            .await
            .unwrap();
        ids.insert(
            format!("runbook:{}", rb["key"].as_str().unwrap()),
            created.id,
        );
    }
    // Log lines go through the real NDJSON parser, one batch per incident.
    let text = std::fs::read_to_string(fixtures().join("logs.ndjson")).unwrap();
    let mut by_incident: HashMap<String, Vec<Value>> = HashMap::new();
    let mut lines = HashMap::new();
    for l in text.lines() {
        let mut v: Value = serde_json::from_str(l).unwrap();
        let key = v["incident"].as_str().unwrap().to_owned();
        v.as_object_mut().unwrap().remove("incident");
        lines.insert(
            v["fixture_id"].as_str().unwrap().to_owned(),
            (key.clone(), v["message"].as_str().unwrap().to_owned()),
        );
        by_incident.entry(key).or_default().push(v);
    }
    for (key, batch) in by_incident {
        let body: String = batch.iter().map(|v| format!("{v}\n")).collect();
        let parsed = parse_ndjson(
            body.as_bytes(),
            &Defaults {
                incident_id: Some(ids[&format!("incident:{key}")].clone()),
                service: None,
            },
            Timestamp::now(),
        )
        .unwrap();
        s.ingest_logs(&t, &parsed).await.unwrap();
    }
    Loaded { ids, lines }
}

/// Recall@10: the share of a query's relevant documents in the first 10 results (for log
/// queries with more than 10 relevant lines, of the first 10 possible).
pub async fn fixture_queries_find_what_responders_need(env: TestEnv) {
    let loaded = load(&env).await;
    env.index().await;
    let t = tenant("acme");
    // Map each result id back to its fixture key.
    let by_id: HashMap<&str, &str> = loaded
        .ids
        .iter()
        .map(|(k, v)| (v.as_str(), k.as_str()))
        .collect();
    let mut line_ids: HashMap<String, String> = HashMap::new();
    for inc_key in loaded.ids.keys().filter(|k| k.starts_with("incident:")) {
        let page = env
            .store()
            .list_logs(
                &t,
                &atlasai_tenant_plane::store::logs::LogFilter {
                    incident_id: Some(loaded.ids[inc_key].clone()),
                    limit: 1000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        for l in page.items {
            let fid = l.attrs.as_ref().unwrap()["fixture_id"]
                .as_str()
                .unwrap()
                .to_owned();
            line_ids.insert(l.id, fid);
        }
    }
    let mut per_note: HashMap<String, Vec<f64>> = HashMap::new();
    let mut misses = Vec::new();
    for q in read("queries.json").as_array().unwrap() {
        let query = q["query"].as_str().unwrap();
        let kind = match q["kind"].as_str() {
            Some("incident") => Some(DocKind::Incident),
            Some("runbook") => Some(DocKind::Runbook),
            Some("log") => Some(DocKind::Log),
            _ => None,
        };
        let mut relevant: HashSet<String> = HashSet::new();
        for r in q["relevant"].as_array().unwrap() {
            let r = r.as_str().unwrap();
            if let Some(rest) = r.strip_prefix("log:") {
                let (inc, needle) = rest.split_once(':').unwrap();
                for (fid, (key, msg)) in &loaded.lines {
                    if key == inc && msg.contains(needle) {
                        relevant.insert(format!("line:{fid}"));
                    }
                }
            } else {
                relevant.insert(r.to_owned());
            }
        }
        assert!(!relevant.is_empty(), "{query}: no relevant documents");
        let found = search::search(
            &env.state,
            &env.data,
            &t,
            &SearchRequest {
                q: query.into(),
                filters: Filters {
                    kind,
                    ..Filters::default()
                },
                limit: 10,
                mode: ModeRequest::Keyword,
            },
        )
        .await
        .unwrap();
        let got: HashSet<String> = found
            .results
            .iter()
            .filter_map(|r| match r.kind {
                DocKind::Log => line_ids.get(&r.id).map(|f| format!("line:{f}")),
                _ => by_id.get(r.id.as_str()).map(|k| (*k).to_owned()),
            })
            .collect();
        let hit = relevant.intersection(&got).count() as f64;
        let recall = hit / (relevant.len().min(10) as f64);
        if recall < 1.0 {
            misses.push(format!("{recall:.2} {query}"));
        }
        per_note
            .entry(q["note"].as_str().unwrap().to_owned())
            .or_default()
            .push(recall);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let worded: Vec<f64> = per_note
        .iter()
        .filter(|(note, _)| *note != "paraphrase")
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    let paraphrase = mean(&per_note["paraphrase"]);
    eprintln!(
        "keyword recall@10: worded queries {:.3} ({}), paraphrases {paraphrase:.3}; below 1: {misses:#?}",
        mean(&worded),
        worded.len()
    );
    assert!(
        mean(&worded) >= 0.95,
        "keyword recall@10 on worded queries fell to {:.3}: {misses:#?}",
        mean(&worded)
    );
}
