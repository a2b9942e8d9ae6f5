//! The models the OpenAI-compatible endpoint answers to: the configured chat model, the
//! configured embedding model, and aliases for them (`TP_MODEL_ALIASES`), so that tools with a
//! hard-wired model name (`gpt-4o`) reach the customer's model without a code change.

use std::fmt;

/// What a model name is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embeddings,
}

impl Purpose {
    fn keyword(self) -> &'static str {
        match self {
            Purpose::Chat => "@chat",
            Purpose::Embeddings => "@embeddings",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Purpose::Chat => "chat",
            Purpose::Embeddings => "embedding",
        })
    }
}

/// One alias: a name clients may use, and what it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// The name clients send.
    pub name: String,
    /// The configured model it stands for.
    pub purpose: Purpose,
}

/// A model as `GET /v1/models` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<'a> {
    /// The id clients send.
    pub id: &'a str,
    /// Chat or embeddings.
    pub purpose: Purpose,
    /// Who serves it: the provider kind (`bedrock`, `openai`, ...).
    pub owned_by: &'a str,
}

/// Why a model name was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No configured model or alias has this name.
    Unknown,
    /// The name is a model of the other kind (an embedding model sent to chat).
    WrongPurpose(Purpose),
}

/// The configured models and their aliases, resolved once per configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelCatalog {
    chat: Option<(String, String)>,
    embeddings: Option<(String, String)>,
    aliases: Vec<Alias>,
}

impl ModelCatalog {
    /// A catalogue of the configured models: (model id, provider name) for chat and for
    /// embeddings, when configured.
    pub fn new(chat: Option<(String, String)>, embeddings: Option<(String, String)>) -> Self {
        ModelCatalog {
            chat,
            embeddings,
            aliases: Vec::new(),
        }
    }

    /// The configured model for a purpose.
    pub fn configured(&self, purpose: Purpose) -> Option<&str> {
        self.slot(purpose).map(|(id, _)| id.as_str())
    }

    fn slot(&self, purpose: Purpose) -> Option<&(String, String)> {
        match purpose {
            Purpose::Chat => self.chat.as_ref(),
            Purpose::Embeddings => self.embeddings.as_ref(),
        }
    }

    /// Checks that a requested name may be used for a purpose.
    pub fn resolve(&self, name: &str, purpose: Purpose) -> Result<(), Miss> {
        let is = |p: Purpose| match self.configured(p) {
            Some(id) => {
                id == name
                    || self
                        .aliases
                        .iter()
                        .any(|a| a.purpose == p && a.name == name)
            }
            None => false,
        };
        if is(purpose) {
            return Ok(());
        }
        let other = match purpose {
            Purpose::Chat => Purpose::Embeddings,
            Purpose::Embeddings => Purpose::Chat,
        };
        if is(other) {
            Err(Miss::WrongPurpose(other))
        } else {
            Err(Miss::Unknown)
        }
    }

    /// Every name clients may use: the configured models first, then the aliases.
    pub fn list(&self) -> Vec<Listed<'_>> {
        let mut out = Vec::new();
        for purpose in [Purpose::Chat, Purpose::Embeddings] {
            if let Some((id, owner)) = self.slot(purpose) {
                out.push(Listed {
                    id,
                    purpose,
                    owned_by: owner,
                });
            }
        }
        for a in &self.aliases {
            if let Some((_, owner)) = self.slot(a.purpose) {
                out.push(Listed {
                    id: &a.name,
                    purpose: a.purpose,
                    owned_by: owner,
                });
            }
        }
        out
    }

    /// The names usable for a purpose, for "did you mean" messages.
    pub fn names_for(&self, purpose: Purpose) -> Vec<&str> {
        self.list()
            .into_iter()
            .filter(|l| l.purpose == purpose)
            .map(|l| l.id)
            .collect()
    }

    /// Adds aliases from `TP_MODEL_ALIASES`: `alias=target` entries separated by commas or
    /// newlines, where the target is the configured chat or embedding model id, or `@chat` /
    /// `@embeddings` (which follow the configuration when the model changes). Returns the
    /// problems (errors) and the notes (warnings) found.
    pub fn add_aliases(&mut self, text: &str) -> (Vec<String>, Vec<String>) {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for raw in text.split([',', '\n']) {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let Some((name, target)) = raw.split_once('=') else {
                errors.push(format!(
                    "{raw:?} is not alias=model; write for example gpt-4o=@chat or text-embedding-3-small=@embeddings"
                ));
                continue;
            };
            let (name, target) = (name.trim(), target.trim());
            if name.is_empty() || name.len() > 256 || name.chars().any(char::is_whitespace) {
                errors.push(format!(
                    "{name:?} is not a valid alias: use 1 to 256 characters without spaces"
                ));
                continue;
            }
            let purpose = if target == Purpose::Chat.keyword() {
                Some(Purpose::Chat)
            } else if target == Purpose::Embeddings.keyword() {
                Some(Purpose::Embeddings)
            } else if self.configured(Purpose::Chat) == Some(target) {
                Some(Purpose::Chat)
            } else if self.configured(Purpose::Embeddings) == Some(target) {
                Some(Purpose::Embeddings)
            } else {
                None
            };
            let Some(purpose) = purpose else {
                errors.push(format!(
                    "{name}={target}: {target:?} is not a configured model; use @chat or @embeddings, or the model id itself ({})",
                    self.describe_configured()
                ));
                continue;
            };
            if self.configured(Purpose::Chat) == Some(name)
                || self.configured(Purpose::Embeddings) == Some(name)
            {
                errors.push(format!(
                    "{name}: the alias is the name of a configured model; an alias must be a different name"
                ));
                continue;
            }
            if self.aliases.iter().any(|a| a.name == name) {
                errors.push(format!("{name}: the alias is given twice"));
                continue;
            }
            if self.configured(purpose).is_none() {
                warnings.push(format!(
                    "TP_MODEL_ALIASES: {name} stands for the {purpose} model, but none is configured; requests for it answer 404 until one is"
                ));
            }
            self.aliases.push(Alias {
                name: name.to_owned(),
                purpose,
            });
        }
        (errors, warnings)
    }

    fn describe_configured(&self) -> String {
        match (
            self.configured(Purpose::Chat),
            self.configured(Purpose::Embeddings),
        ) {
            (Some(c), Some(e)) => format!("chat model {c:?}, embedding model {e:?}"),
            (Some(c), None) => format!("chat model {c:?}"),
            (None, Some(e)) => format!("embedding model {e:?}"),
            (None, None) => "no model is configured".to_owned(),
        }
    }

    /// The aliases.
    pub fn aliases(&self) -> &[Alias] {
        &self.aliases
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> ModelCatalog {
        ModelCatalog::new(
            Some(("claude-3-5-sonnet".into(), "anthropic".into())),
            Some(("text-embedding-3-small".into(), "openai".into())),
        )
    }

    #[test]
    fn aliases_resolve_by_purpose_and_list_after_the_models() {
        let mut c = catalog();
        let (errors, warnings) =
            c.add_aliases("gpt-4o=@chat, gpt-4o-mini=claude-3-5-sonnet\nada=@embeddings");
        assert!(errors.is_empty() && warnings.is_empty(), "{errors:?}");
        assert_eq!(c.resolve("gpt-4o", Purpose::Chat), Ok(()));
        assert_eq!(c.resolve("claude-3-5-sonnet", Purpose::Chat), Ok(()));
        assert_eq!(c.resolve("ada", Purpose::Embeddings), Ok(()));
        assert_eq!(
            c.resolve("ada", Purpose::Chat),
            Err(Miss::WrongPurpose(Purpose::Embeddings))
        );
        assert_eq!(
            c.resolve("gpt-3.5-turbo", Purpose::Chat),
            Err(Miss::Unknown)
        );
        let ids: Vec<&str> = c.list().iter().map(|l| l.id).collect();
        assert_eq!(
            ids,
            [
                "claude-3-5-sonnet",
                "text-embedding-3-small",
                "gpt-4o",
                "gpt-4o-mini",
                "ada"
            ]
        );
        assert_eq!(c.list()[4].owned_by, "openai");
        assert_eq!(
            c.names_for(Purpose::Chat),
            ["claude-3-5-sonnet", "gpt-4o", "gpt-4o-mini"]
        );
    }

    #[test]
    fn bad_aliases_are_explained() {
        let mut c = catalog();
        let (errors, _) = c.add_aliases(
            "gpt-4o, gpt-4=llama3, claude-3-5-sonnet=@chat, x=@chat, x=@embeddings, a b=@chat",
        );
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].contains("not alias=model"));
        assert!(errors[1].contains("\"llama3\" is not a configured model"));
        assert!(errors[1].contains("chat model \"claude-3-5-sonnet\""));
        assert!(errors[2].contains("name of a configured model"));
        assert!(errors[3].contains("given twice"));
        assert!(errors[4].contains("without spaces"));
    }

    #[test]
    fn aliases_for_a_missing_model_warn() {
        let mut c = ModelCatalog::new(Some(("m".into(), "openai".into())), None);
        let (errors, warnings) = c.add_aliases("ada=@embeddings");
        assert!(errors.is_empty());
        assert_eq!(warnings.len(), 1);
        assert_eq!(c.resolve("ada", Purpose::Embeddings), Err(Miss::Unknown));
        assert!(c.list().iter().all(|l| l.id != "ada"));
    }
}
