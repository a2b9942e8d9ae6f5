//! API keys for the OpenAI-compatible endpoint, each bound to one tenant.
//!
//! Static keys come from `TP_API_KEYS` or `TP_API_KEYS_FILE` (air-gapped installs; the file
//! reloads live like every other secret file). Only SHA-256 digests of the keys are kept in
//! memory after parsing, and a presented key is compared with every configured digest in
//! constant time, so neither the response nor its timing says how close a guess was.
//!
//! Seam for control-plane-issued keys: [`ApiKeys::authenticate`] is the one question the HTTP
//! layer asks. When the control plane issues keys, their digests join the static ones here (or
//! a second lookup behind the same call), and callers do not change.

use std::fmt;

use atlasai_core::TenantId;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// Keys shorter than this are refused: they would be guessable.
pub const MIN_KEY_CHARS: usize = 16;
/// Keys longer than this are refused: no generator produces them, and headers have limits.
pub const MAX_KEY_CHARS: usize = 512;

/// One configured key: its digest and the tenant it acts for.
#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    tenant: TenantId,
}

/// The configured API keys. `Debug` shows how many keys each tenant has, never a key.
#[derive(Clone, Default)]
pub struct ApiKeys {
    entries: Vec<Entry>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.entries.len())
            .field("tenants", &self.tenants())
            .finish()
    }
}

/// Where the key list came from, so problems can point at the right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysFrom {
    /// The `TP_API_KEYS` variable: entries separated by commas or newlines.
    Variable,
    /// A file (`TP_API_KEYS_FILE`): problems are reported by line.
    File,
}

impl ApiKeys {
    /// Parses `tenant:key` entries separated by newlines or commas. Blank entries and lines
    /// starting with `#` are skipped. Every problem is reported, each naming the line (files)
    /// or entry (the variable) but never echoing a key.
    pub fn parse(text: &str, from: KeysFrom) -> Result<ApiKeys, Vec<String>> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut positions: Vec<String> = Vec::new();
        let mut errors = Vec::new();
        let mut entry_no = 0usize;
        for (line_no, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            for raw in line.split(',') {
                let raw = raw.trim();
                if raw.is_empty() {
                    continue;
                }
                entry_no += 1;
                let at = match from {
                    KeysFrom::File => format!("line {}", line_no + 1),
                    KeysFrom::Variable => format!("entry {entry_no}"),
                };
                match parse_entry(raw) {
                    Ok((tenant, digest)) => {
                        if let Some(i) = entries.iter().position(|e| e.digest == digest) {
                            errors.push(format!(
                                "{at}: the same key is already given at {}; every key must be unique",
                                positions[i]
                            ));
                            continue;
                        }
                        entries.push(Entry { digest, tenant });
                        positions.push(at);
                    }
                    Err(problem) => errors.push(format!("{at}: {problem}")),
                }
            }
        }
        if errors.is_empty() {
            Ok(ApiKeys { entries })
        } else {
            Err(errors)
        }
    }

    /// The tenant a presented key acts for, or `None` when it is not a configured key. Takes
    /// the same time whichever key matches, or none.
    pub fn authenticate(&self, presented: &str) -> Option<&TenantId> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = Choice::from(0);
        let mut index = 0u32;
        for (i, entry) in self.entries.iter().enumerate() {
            let hit = entry.digest.ct_eq(&digest);
            // `i` fits: a key list that long would not fit in memory as text first.
            index = u32::conditional_select(&index, &(i as u32), hit);
            found |= hit;
        }
        bool::from(found)
            .then(|| self.entries.get(index as usize).map(|e| &e.tenant))
            .flatten()
    }

    /// Whether no key is configured (then the endpoint refuses every request).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The tenants that have keys, each once, sorted.
    pub fn tenants(&self) -> Vec<&TenantId> {
        let mut t: Vec<&TenantId> = self.entries.iter().map(|e| &e.tenant).collect();
        t.sort();
        t.dedup();
        t
    }
}

fn parse_entry(raw: &str) -> Result<(TenantId, [u8; 32]), String> {
    let Some((tenant, key)) = raw.split_once(':') else {
        return Err(
            "expected tenant:key (the tenant id, a colon, then the key); generate keys with `openssl rand -hex 32`"
                .to_owned(),
        );
    };
    // Nothing from the entry is echoed, not even the tenant part: an entry written the wrong
    // way round (key:tenant) would otherwise put the key into logs.
    let tenant = TenantId::parse(tenant.trim()).map_err(|_| {
        "the tenant id before the colon is invalid: use 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit (entries are tenant:key)".to_owned()
    })?;
    let key = key.trim();
    let chars = key.chars().count();
    if chars < MIN_KEY_CHARS {
        return Err(format!(
            "the key has {chars} characters; keys need at least {MIN_KEY_CHARS} (generate one with `openssl rand -hex 32`)"
        ));
    }
    if chars > MAX_KEY_CHARS {
        return Err(format!("the key is longer than {MAX_KEY_CHARS} characters"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the key may only hold printable ASCII without spaces (it travels in an HTTP header)"
                .to_owned(),
        );
    }
    Ok((tenant, Sha256::digest(key.as_bytes()).into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "acme-key-0123456789abcdef";
    const B: &str = "globex-key-0123456789abcdef";

    #[test]
    fn keys_authenticate_to_their_tenant_only() {
        let keys = ApiKeys::parse(
            &format!("# rotated 2026-01\nacme:{A}\n\nglobex:{B}, acme:{A}-next\n"),
            KeysFrom::File,
        )
        .unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys.authenticate(A).map(TenantId::as_str), Some("acme"));
        assert_eq!(keys.authenticate(B).map(TenantId::as_str), Some("globex"));
        assert_eq!(
            keys.authenticate(&format!("{A}-next"))
                .map(TenantId::as_str),
            Some("acme")
        );
        assert_eq!(keys.authenticate(&A[..A.len() - 1]), None);
        assert_eq!(keys.authenticate(""), None);
        assert_eq!(
            keys.tenants()
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>(),
            ["acme", "globex"]
        );
    }

    #[test]
    fn problems_name_the_line_and_never_echo_a_key() {
        let secret = "short-secret";
        let errs = ApiKeys::parse(
            &format!("acme:{A}\nno-colon-here-{secret}\nglobex:{secret}\nbad tenant:{B}\nacme2:{A}\nx:with space in key 1234"),
            KeysFrom::File,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert!(
            errs[0].starts_with("line 2: expected tenant:key"),
            "{errs:?}"
        );
        assert!(errs[1].starts_with("line 3: the key has 12 characters"));
        assert!(
            errs[2].starts_with("line 4: the tenant id before the colon"),
            "{errs:?}"
        );
        assert!(errs[3].contains("already given at line 1;"), "{errs:?}");
        assert!(errs[4].contains("printable ASCII"), "{errs:?}");
        for e in &errs {
            assert!(
                !e.contains(secret) && !e.contains(A) && !e.contains("bad"),
                "{e}"
            );
        }
    }

    #[test]
    fn variable_entries_are_numbered_and_debug_hides_keys() {
        let errs = ApiKeys::parse(&format!("acme:{A},globex"), KeysFrom::Variable).unwrap_err();
        assert!(errs[0].starts_with("entry 2:"), "{errs:?}");
        let keys = ApiKeys::parse(&format!("acme:{A}"), KeysFrom::Variable).unwrap();
        let shown = format!("{keys:?}");
        assert!(!shown.contains(A) && shown.contains("acme"), "{shown}");
        assert!(ApiKeys::default().is_empty());
    }
}
