//! Text utilities for retrieval: the chunks that get embedded (one per incident, one per
//! runbook section, one per distinct log message shape), a content hash to skip unchanged
//! chunks, keyword similarity for alert correlation without embeddings, and reciprocal rank
//! fusion.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use crate::store::logs::TemplateRow;
use crate::store::vectors::kind;
use crate::store::{Incident, Runbook};

/// The longest chunk embedded, in characters (about 400 tokens: within every embedding
/// model's input limit, and short enough that one chunk is about one thing).
pub const MAX_CHUNK_CHARS: usize = 1500;
/// At most this many chunks per runbook.
const MAX_RUNBOOK_CHUNKS: usize = 64;

/// Text to embed, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// `incident`, `runbook` or `log_template`.
    pub kind: &'static str,
    /// The document.
    pub doc_id: String,
    /// Position within the document.
    pub chunk: i32,
    /// The text.
    pub text: String,
    /// Hash of the text (with the kind), to skip re-embedding unchanged text.
    pub hash: String,
}

impl Chunk {
    fn new(kind: &'static str, doc_id: String, chunk: i32, text: String) -> Chunk {
        let hash = format!("{:016x}", fnv(kind.as_bytes(), text.as_bytes()));
        Chunk {
            kind,
            doc_id,
            chunk,
            text,
            hash,
        }
    }
}

fn fnv(a: &[u8], b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in a.iter().chain([0u8].iter()).chain(b) {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => text[..i].to_owned(),
        None => text.to_owned(),
    }
}

/// An incident's chunk: title, service, severity and the start of its description. Alerts
/// and changes are not part of it, so attaching them does not re-embed the incident.
pub fn incident_chunk(i: &Incident) -> Chunk {
    let text = format!(
        "{}\nservice: {} severity: {}\n{}",
        i.title,
        i.service,
        i.severity.as_str(),
        i.description
    );
    Chunk::new(
        kind::INCIDENT,
        i.id.clone(),
        0,
        clip(&text, MAX_CHUNK_CHARS),
    )
}

/// A log message shape's chunk: its service, level and one example line.
pub fn template_chunk(t: &TemplateRow) -> Chunk {
    let text = format!("[{}] {}: {}", t.service, t.level, t.example);
    Chunk::new(
        kind::LOG_TEMPLATE,
        t.template.to_string(),
        0,
        clip(&text, MAX_CHUNK_CHARS),
    )
}

/// A runbook's chunks: one per markdown section (a heading and what follows it), each
/// prefixed with the runbook's title and the heading so it stands on its own; long sections
/// are split at paragraph boundaries.
pub fn runbook_chunks(r: &Runbook) -> Vec<Chunk> {
    let mut sections: Vec<(String, String)> = Vec::new();
    let mut heading = String::new();
    let mut body = String::new();
    let mut in_code = false;
    for line in r.content.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            if !body.trim().is_empty() || !heading.is_empty() {
                sections.push((heading.clone(), body.clone()));
            }
            heading = line.trim_start_matches('#').trim().to_owned();
            body.clear();
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    if !body.trim().is_empty() || !heading.is_empty() {
        sections.push((heading, body));
    }
    let mut chunks = Vec::new();
    for (heading, body) in sections {
        let prefix = if heading.is_empty() || heading == r.title {
            format!("{}\n", r.title)
        } else {
            format!("{} — {}\n", r.title, heading)
        };
        let budget = MAX_CHUNK_CHARS
            .saturating_sub(prefix.chars().count())
            .max(200);
        let mut current = String::new();
        for para in body.split("\n\n") {
            let para = para.trim();
            if para.is_empty() {
                continue;
            }
            if !current.is_empty() && current.chars().count() + para.chars().count() + 2 > budget {
                chunks.push(format!("{prefix}{current}"));
                current.clear();
            }
            if !current.is_empty() {
                current.push_str("\n\n");
            }
            current.push_str(&clip(para, budget));
        }
        if !current.is_empty() || chunks.is_empty() {
            chunks.push(format!("{prefix}{current}"));
        }
    }
    chunks
        .into_iter()
        .take(MAX_RUNBOOK_CHUNKS)
        .enumerate()
        .map(|(n, text)| {
            Chunk::new(
                kind::RUNBOOK,
                r.id.clone(),
                n as i32,
                clip(&text, MAX_CHUNK_CHARS),
            )
        })
        .collect()
}

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is",
    "it", "its", "of", "on", "or", "the", "this", "to", "was", "were", "will", "with",
];

/// Words for keyword similarity: lowercase, split at punctuation and at camelCase boundaries
/// (`HighErrorRate` is high, error, rate), without stop words, bare numbers, or a plural `s`.
pub fn keywords(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut word = String::new();
    let mut prev_lower = false;
    let mut push = |w: &mut String| {
        if w.len() > 1 && !w.bytes().all(|b| b.is_ascii_digit()) && !STOPWORDS.contains(&w.as_str())
        {
            let stem = if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
                w[..w.len() - 1].to_owned()
            } else {
                w.clone()
            };
            out.insert(stem);
        }
        w.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && prev_lower {
                push(&mut word);
            }
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            word.extend(c.to_lowercase());
        } else {
            push(&mut word);
            prev_lower = false;
        }
    }
    push(&mut word);
    out
}

/// Dice similarity of two keyword sets, 0 to 1.
pub fn keyword_similarity(a: &HashSet<String>, b: &HashSet<String>) -> f32 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let common = a.intersection(b).count();
    2.0 * common as f32 / (a.len() + b.len()) as f32
}

/// The constant of reciprocal rank fusion (the value from Cormack et al., used by most search
/// engines): large enough that the top few ranks of one list do not drown the other list.
pub const RRF_K: f32 = 60.0;

/// Fuses ranked lists: each item scores the sum over lists of 1 / (k + rank), rank from 1.
/// Returns items best first; ties keep the order of first appearance.
pub fn reciprocal_rank_fusion<K: Clone + Eq + Hash>(lists: &[Vec<K>]) -> Vec<(K, f32)> {
    let ranked: Vec<Vec<(K, usize)>> = lists
        .iter()
        .map(|l| {
            l.iter()
                .cloned()
                .enumerate()
                .map(|(i, k)| (k, i + 1))
                .collect()
        })
        .collect();
    fuse_ranked(&ranked)
}

/// Like [`reciprocal_rank_fusion`], with each item's rank given explicitly, so several items
/// may share a rank (log lines of one message shape share the shape's vector rank).
pub fn fuse_ranked<K: Clone + Eq + Hash>(lists: &[Vec<(K, usize)>]) -> Vec<(K, f32)> {
    let mut scores: HashMap<K, (f32, usize)> = HashMap::new();
    let mut order = 0usize;
    for list in lists {
        for (key, rank) in list {
            let e = scores.entry(key.clone()).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            e.0 += 1.0 / (RRF_K + *rank as f32);
        }
    }
    let mut out: Vec<(K, f32, usize)> = scores.into_iter().map(|(k, (s, o))| (k, s, o)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.into_iter().map(|(k, s, _)| (k, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Timestamp;

    #[test]
    fn runbooks_split_by_section_with_context() {
        let r = Runbook {
            id: "r".into(),
            title: "Postgres failover".into(),
            content: "# Postgres failover\nIntro.\n\n## Check replication lag\nRun `SELECT 1`.\n```\n# not a heading\n```\n## Promote\nUse patronictl.\n".into(),
            services: vec![],
            tags: vec![],
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        let chunks = runbook_chunks(&r);
        assert_eq!(chunks.len(), 3, "{chunks:#?}");
        assert!(chunks[0].text.starts_with("Postgres failover\nIntro."));
        assert!(
            chunks[1]
                .text
                .starts_with("Postgres failover — Check replication lag")
        );
        assert!(
            chunks[1].text.contains("# not a heading"),
            "code blocks are not headings"
        );
        assert_eq!(chunks[2].chunk, 2);
        assert_ne!(chunks[1].hash, chunks[2].hash);
    }

    #[test]
    fn keywords_split_camel_case_and_drop_noise() {
        let k = keywords("HighErrorRate on payments-api: 503s for the checkout 42");
        for w in ["high", "error", "rate", "payment", "api", "503", "checkout"] {
            assert!(k.contains(w), "{w} missing from {k:?}");
        }
        assert!(!k.contains("the") && !k.contains("42"));
        let a = keywords("Payments API error rate high");
        assert!(keyword_similarity(&a, &k) > 0.5);
        assert_eq!(keyword_similarity(&a, &keywords("disk full on node")), 0.0);
    }

    #[test]
    fn shared_ranks_score_alike() {
        let fused = fuse_ranked(&[vec![("a", 1), ("b", 2)], vec![("b", 1), ("c", 1)]]);
        assert_eq!(fused[0].0, "b");
        assert_eq!(fused[1].1, fused[2].1, "a and c each have one first place");
    }

    #[test]
    fn fusion_rewards_agreement() {
        let fused = reciprocal_rank_fusion(&[vec!["a", "b", "c"], vec!["c", "a", "d"]]);
        assert_eq!(fused[0].0, "a");
        assert_eq!(fused[1].0, "c");
        assert!(fused.iter().any(|(k, _)| *k == "d"));
    }
}
