//! Showing that a secret is set without showing it, and scrubbing secrets out of text.

use secrecy::{ExposeSecret, SecretString};

/// Describes a secret for humans: `set (…c123)` for long secrets, `set` for short ones, so
/// placeholders such as `none` or `ollama` and short passwords are never echoed.
pub fn describe(secret: &SecretString) -> String {
    let s = secret.expose_secret();
    let chars = s.chars().count();
    if chars >= 16 {
        let tail: String = s.chars().skip(chars - 4).collect();
        format!("set (…{tail})")
    } else {
        "set".to_owned()
    }
}

/// The last four characters of a long secret, for APIs that show which key is set.
pub fn last_four(secret: &SecretString) -> Option<String> {
    let s = secret.expose_secret();
    let chars = s.chars().count();
    (chars >= 16).then(|| s.chars().skip(chars - 4).collect())
}

/// Replaces every occurrence of known secrets in a text. Provider error messages sometimes
/// echo a key or a signed header; anything we show or log passes through here first.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<SecretString>,
}

impl Redactor {
    /// A redactor for these secrets; empty and very short values are ignored because
    /// replacing them would mangle ordinary words.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a SecretString>) -> Self {
        let secrets = secrets
            .into_iter()
            .filter(|s| s.expose_secret().len() >= 6)
            .cloned()
            .collect();
        Redactor { secrets }
    }

    /// The text with every known secret replaced by `[REDACTED]`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            let s = s.expose_secret();
            if out.contains(s) {
                out = out.replace(s, "[REDACTED]");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_never_echoed() {
        assert_eq!(describe(&SecretString::from("none")), "set");
        assert_eq!(describe(&SecretString::from("ollama")), "set");
        assert_eq!(
            describe(&SecretString::from("sk-proj-abcdefghijklmnop1234")),
            "set (…1234)"
        );
    }

    #[test]
    fn redactor_removes_known_secrets() {
        let key = SecretString::from("sk-live-verysecret");
        let r = Redactor::new([&key]);
        assert_eq!(
            r.scrub("bad key sk-live-verysecret given"),
            "bad key [REDACTED] given"
        );
    }
}
