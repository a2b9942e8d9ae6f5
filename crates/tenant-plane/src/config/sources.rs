//! Where configuration values come from: built-in defaults, then the Helm values file, then
//! environment variables (later wins), with `*_FILE` variants for every secret. Every value
//! remembers its source so `check-config` can say where it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// A snapshot of the process environment (or a test's), taken once at start-up: a process's
/// own environment cannot change, so reloads reuse it.
#[derive(Debug, Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// The current process environment.
    pub fn from_process() -> Self {
        Env(std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect())
    }

    /// An environment from pairs, for tests.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Env(pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    /// A variable's value; empty values count as unset (compose files and Helm templates
    /// often render `VAR=""`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// Every variable name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A built-in default.
    Default,
    /// A key of the values file.
    Values {
        /// The dotted key, e.g. `byoc.model`.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// An environment variable.
    Env(&'static str),
    /// A secret file named by a `*_FILE` environment variable or a `*File` values key.
    SecretFile {
        /// The variable or key that names it, e.g. `BYOC_API_KEY_FILE` or `byoc.apiKeyFile`.
        setting: String,
        /// The file.
        path: PathBuf,
    },
    /// Derived from another setting.
    Implied(String),
}

impl Source {
    /// Whether the value lives in a file that may change while we run.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Source::Values { path, .. } | Source::SecretFile { path, .. } => Some(path),
            _ => None,
        }
    }

    /// A short name for the kind of source, for status pages.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Values { .. } => "values file",
            Source::Env(_) => "environment",
            Source::SecretFile { .. } => "secret file",
            Source::Implied(_) => "implied",
        }
    }

    /// How a message should name the setting: the variable or the values key.
    pub fn setting_name(&self) -> String {
        match self {
            Source::Default => "default".to_owned(),
            Source::Values { key, .. } => (*key).to_owned(),
            Source::Env(var) => (*var).to_owned(),
            Source::SecretFile { setting, .. } => setting.clone(),
            Source::Implied(why) => why.clone(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Values { key, path } => write!(f, "values file {} ({key})", path.display()),
            Source::Env(var) => write!(f, "env {var}"),
            Source::SecretFile { setting, path } => {
                write!(f, "file {} ({setting})", path.display())
            }
            Source::Implied(why) => write!(f, "implied by {why}"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Its source.
    pub source: Source,
}

/// The keys the tenant plane reads from a values file, with the environment variable that
/// overrides each. Chart-only keys are accepted and ignored.
pub const VALUES_KEYS: &[(&str, &str)] = &[
    ("byoc.provider", "BYOC_PROVIDER"),
    ("byoc.apiKey", "BYOC_API_KEY"),
    ("byoc.apiKeyFile", "BYOC_API_KEY_FILE"),
    ("byoc.awsAccessKeyId", "BYOC_AWS_ACCESS_KEY_ID"),
    ("byoc.awsAccessKeyIdFile", "BYOC_AWS_ACCESS_KEY_ID_FILE"),
    ("byoc.awsSecretAccessKey", "BYOC_AWS_SECRET_ACCESS_KEY"),
    (
        "byoc.awsSecretAccessKeyFile",
        "BYOC_AWS_SECRET_ACCESS_KEY_FILE",
    ),
    ("byoc.awsSessionToken", "BYOC_AWS_SESSION_TOKEN"),
    ("byoc.awsSessionTokenFile", "BYOC_AWS_SESSION_TOKEN_FILE"),
    ("byoc.model", "BYOC_MODEL"),
    ("byoc.endpointUrl", "BYOC_ENDPOINT_URL"),
    ("byoc.region", "BYOC_REGION"),
    ("byoc.bedrockUseTaskRole", "TP_BEDROCK_USE_TASK_ROLE"),
    ("byoc.bedrockModelId", "TP_BEDROCK_MODEL_ID"),
    ("byoc.apiVersion", "BYOC_API_VERSION"),
    ("byoc.organization", "BYOC_API_KEY_ORG"),
    ("byoc.gcpProject", "BYOC_GCP_PROJECT"),
    ("byoc.contextTokens", "TP_CONTEXT_TOKENS"),
    ("byoc.redaction", "TP_REDACTION"),
    ("byoc.fallbackPolicy", "TP_FALLBACK_POLICY"),
    ("embeddings.provider", "EMBEDDING_PROVIDER"),
    ("embeddings.model", "EMBEDDING_MODEL"),
    ("embeddings.endpointUrl", "EMBEDDING_ENDPOINT_URL"),
    ("embeddings.apiKey", "EMBEDDING_API_KEY"),
    ("embeddings.apiKeyFile", "EMBEDDING_API_KEY_FILE"),
];

/// Keys of the chart's `byoc:` and `embeddings:` blocks that only the chart uses (they shape
/// Kubernetes objects, not the tenant plane's behaviour).
const CHART_ONLY_KEYS: &[&str] = &["byoc.existingSecret", "byoc.existingSecretKey"];

/// The parsed `byoc:` and `embeddings:` sections of a values file.
#[derive(Debug, Clone)]
pub struct ValuesDoc {
    path: PathBuf,
    values: BTreeMap<&'static str, String>,
}

impl ValuesDoc {
    /// Reads and checks a values file. Every problem is reported, each naming the key.
    pub fn read(path: &Path) -> Result<ValuesDoc, Vec<String>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![format!(
                "values file {}: cannot read it: {e}",
                path.display()
            )]
        })?;
        Self::parse(path, &text)
    }

    /// Parses values-file text.
    pub fn parse(path: &Path, text: &str) -> Result<ValuesDoc, Vec<String>> {
        let shown = path.display();
        let doc: yaml_serde::Value = yaml_serde::from_str(text)
            .map_err(|e| vec![format!("values file {shown}: not valid YAML: {e}")])?;
        let mut values = BTreeMap::new();
        let mut errors = Vec::new();
        let root = match doc {
            yaml_serde::Value::Mapping(m) => m,
            yaml_serde::Value::Null => yaml_serde::Mapping::new(),
            _ => {
                return Err(vec![format!(
                    "values file {shown}: the top level must be a mapping with byoc: and embeddings: sections"
                )]);
            }
        };
        for section in ["byoc", "embeddings"] {
            let Some(block) = root.get(section) else {
                continue;
            };
            let block = match block {
                yaml_serde::Value::Mapping(m) => m,
                yaml_serde::Value::Null => continue,
                _ => {
                    errors.push(format!("values file {shown}: {section} must be a mapping"));
                    continue;
                }
            };
            for (k, v) in block {
                let Some(k) = k.as_str() else {
                    errors.push(format!(
                        "values file {shown}: {section} has a non-string key"
                    ));
                    continue;
                };
                let dotted = format!("{section}.{k}");
                if CHART_ONLY_KEYS.contains(&dotted.as_str()) {
                    continue;
                }
                let Some((key, _)) = VALUES_KEYS.iter().find(|(key, _)| *key == dotted) else {
                    errors.push(unknown_key_message(&shown.to_string(), section, &dotted));
                    continue;
                };
                match scalar_text(v) {
                    Ok(Some(text)) => {
                        values.insert(*key, text);
                    }
                    Ok(None) => {}
                    Err(kind) => errors.push(format!(
                        "values file {shown}: {key} must be a string, number or boolean, not {kind}"
                    )),
                }
            }
        }
        if errors.is_empty() {
            Ok(ValuesDoc {
                path: path.to_owned(),
                values,
            })
        } else {
            Err(errors)
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn get(&self, key: &'static str) -> Option<Sourced<String>> {
        self.values.get(key).map(|v| Sourced {
            value: v.clone(),
            source: Source::Values {
                key,
                path: self.path.clone(),
            },
        })
    }
}

fn unknown_key_message(path: &str, section: &str, dotted: &str) -> String {
    let valid: Vec<&str> = VALUES_KEYS
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| k.starts_with(&format!("{section}.")))
        .collect();
    let suggestion = closest(dotted, &valid)
        .map(|s| format!("did you mean {s}? "))
        .unwrap_or_default();
    format!(
        "values file {path}: unknown key {dotted}; {suggestion}valid keys under {section}: {}",
        valid
            .iter()
            .map(|k| k.trim_start_matches(&format!("{section}.")).to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The candidate within a small edit distance of `given`, if any.
pub fn closest<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let given = given.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&given, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn scalar_text(v: &yaml_serde::Value) -> Result<Option<String>, &'static str> {
    match v {
        yaml_serde::Value::Null => Ok(None),
        yaml_serde::Value::String(s) if s.trim().is_empty() => Ok(None),
        yaml_serde::Value::String(s) => Ok(Some(s.trim().to_owned())),
        yaml_serde::Value::Bool(b) => Ok(Some(b.to_string())),
        yaml_serde::Value::Number(n) => Ok(Some(n.to_string())),
        yaml_serde::Value::Sequence(_) => Err("a list"),
        yaml_serde::Value::Mapping(_) => Err("a mapping"),
        yaml_serde::Value::Tagged(_) => Err("a tagged value"),
    }
}

/// Reads settings from the layers, collecting problems instead of stopping at the first.
#[derive(Debug)]
pub struct Layers<'a> {
    env: &'a Env,
    values: Option<&'a ValuesDoc>,
    /// Every problem found so far.
    pub errors: Vec<String>,
    /// Files whose change should trigger a reload.
    pub files: Vec<PathBuf>,
}

impl<'a> Layers<'a> {
    /// Layers over an environment and an optional values file.
    pub fn new(env: &'a Env, values: Option<&'a ValuesDoc>) -> Self {
        let mut files = Vec::new();
        if let Some(v) = values {
            files.push(v.path.clone());
        }
        Layers {
            env,
            values,
            errors: Vec::new(),
            files,
        }
    }

    /// The environment.
    pub fn env(&self) -> &Env {
        self.env
    }

    /// A plain setting: the environment variable, else the values key.
    pub fn get(&self, var: &'static str, key: Option<&'static str>) -> Option<Sourced<String>> {
        if let Some(v) = self.env.get(var) {
            return Some(Sourced {
                value: v.trim().to_owned(),
                source: Source::Env(var),
            });
        }
        key.and_then(|k| self.values.and_then(|v| v.get(k)))
    }

    /// A secret, from the first of: `VAR`, the file named by `VAR_FILE`, the values key, the
    /// file named by the values key `<key>File`. A relative `<key>File` path is resolved
    /// against the values file's directory, so a chart can point at a Secret mounted beside
    /// its ConfigMap. Setting both forms in one source is an error because it is ambiguous
    /// which is meant.
    pub fn secret(
        &mut self,
        var: &'static str,
        key: Option<&'static str>,
    ) -> Option<Sourced<SecretString>> {
        let file_var = format!("{var}_FILE");
        let direct = self.env.get(var);
        let file = self.env.get(&file_var).map(PathBuf::from);
        match (direct, file) {
            (Some(_), Some(_)) => {
                self.errors.push(format!(
                    "{var} and {file_var} are both set; set only one of them"
                ));
                return None;
            }
            (Some(v), None) => {
                return Some(Sourced {
                    value: SecretString::from(v.trim().to_owned()),
                    source: Source::Env(var),
                });
            }
            (None, Some(path)) => return self.read_secret_file(file_var, path),
            (None, None) => {}
        }
        let values = self.values?;
        let key = key?;
        let file_key = VALUES_KEYS
            .iter()
            .find(|(_, v)| *v == file_var)
            .map(|(k, _)| *k);
        let inline = values.get(key);
        let by_file = file_key.and_then(|k| values.get(k));
        match (inline, by_file) {
            (Some(_), Some(f)) => {
                self.errors.push(format!(
                    "values file {}: {key} and {} are both set; set only one of them",
                    values.path.display(),
                    f.source.setting_name()
                ));
                None
            }
            (Some(s), None) => Some(Sourced {
                value: SecretString::from(s.value),
                source: s.source,
            }),
            (None, Some(f)) => {
                let path = PathBuf::from(&f.value);
                let path = if path.is_relative() {
                    values.path.parent().unwrap_or(Path::new(".")).join(path)
                } else {
                    path
                };
                self.read_secret_file(f.source.setting_name(), path)
            }
            (None, None) => None,
        }
    }

    fn read_secret_file(
        &mut self,
        setting: String,
        path: PathBuf,
    ) -> Option<Sourced<SecretString>> {
        self.files.push(path.clone());
        match std::fs::read_to_string(&path) {
            // Secrets mounted from Kubernetes or written with `echo` usually end in a newline
            // that is not part of the secret.
            Ok(text) if !text.trim().is_empty() => Some(Sourced {
                value: SecretString::from(text.trim().to_owned()),
                source: Source::SecretFile { setting, path },
            }),
            Ok(_) => {
                self.errors
                    .push(format!("{setting}: the file {} is empty", path.display()));
                None
            }
            Err(e) => {
                self.errors
                    .push(format!("{setting}: cannot read {}: {e}", path.display()));
                None
            }
        }
    }

    /// A boolean setting: `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`.
    pub fn flag(&mut self, var: &'static str, key: Option<&'static str>) -> Option<Sourced<bool>> {
        let s = self.get(var, key)?;
        match s.value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(Sourced {
                value: true,
                source: s.source,
            }),
            "0" | "false" | "no" | "off" => Some(Sourced {
                value: false,
                source: s.source,
            }),
            other => {
                self.errors.push(format!(
                    "{}: {other:?} is not a boolean; use 1 or 0 (true or false)",
                    s.source.setting_name()
                ));
                None
            }
        }
    }

    /// Records a problem.
    pub fn error(&mut self, message: String) {
        self.errors.push(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_file_typos_are_named_with_a_suggestion() {
        let errs = ValuesDoc::parse(
            Path::new("values.yaml"),
            "byoc:\n  provider: openai\n  modle: gpt-4o\n  apiKey: [1]\nembeddings:\n  provder: openai\n",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(
            errs[0].contains("byoc.modle") && errs[0].contains("did you mean byoc.model"),
            "{errs:?}"
        );
        assert!(errs[1].contains("byoc.apiKey must be a string"), "{errs:?}");
        assert!(
            errs[2].contains("embeddings.provder") && errs[2].contains("embeddings.provider"),
            "{errs:?}"
        );
    }

    #[test]
    fn values_file_reads_scalars_and_ignores_other_sections() {
        let doc = ValuesDoc::parse(
            Path::new("v.yaml"),
            "image:\n  tag: 1.2.3\nbyoc:\n  provider: bedrock\n  bedrockUseTaskRole: true\n  region: \"\"\n  existingSecret: my-secret\n",
        )
        .unwrap();
        assert_eq!(doc.get("byoc.provider").unwrap().value, "bedrock");
        assert_eq!(doc.get("byoc.bedrockUseTaskRole").unwrap().value, "true");
        assert!(doc.get("byoc.region").is_none(), "empty strings are unset");
    }

    #[test]
    fn env_wins_over_values_and_empty_env_is_unset() {
        let doc = ValuesDoc::parse(
            Path::new("v.yaml"),
            "byoc:\n  model: from-values\n  region: eu-west-1\n",
        )
        .unwrap();
        let env = Env::from_pairs([("BYOC_MODEL", "from-env"), ("BYOC_REGION", "")]);
        let layers = Layers::new(&env, Some(&doc));
        let model = layers.get("BYOC_MODEL", Some("byoc.model")).unwrap();
        assert_eq!(model.value, "from-env");
        assert_eq!(model.source, Source::Env("BYOC_MODEL"));
        let region = layers.get("BYOC_REGION", Some("byoc.region")).unwrap();
        assert_eq!(region.value, "eu-west-1");
    }

    #[test]
    fn secrets_come_from_files_without_their_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "sk-from-file\n").unwrap();
        let p = path.to_str().unwrap().to_owned();
        let env = Env::from_pairs([("BYOC_API_KEY_FILE", p.as_str())]);
        let mut layers = Layers::new(&env, None);
        let s = layers.secret("BYOC_API_KEY", Some("byoc.apiKey")).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(s.value.expose_secret(), "sk-from-file");
        assert_eq!(layers.files, vec![path]);
    }

    #[test]
    fn values_file_secret_references_resolve_against_the_values_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        std::fs::write(dir.path().join("secrets/apiKey"), "sk-mounted\n").unwrap();
        let values_path = dir.path().join("config/values.yaml");
        let doc =
            ValuesDoc::parse(&values_path, "byoc:\n  apiKeyFile: ../secrets/apiKey\n").unwrap();
        let env = Env::default();
        let mut layers = Layers::new(&env, Some(&doc));
        let s = layers.secret("BYOC_API_KEY", Some("byoc.apiKey")).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(s.value.expose_secret(), "sk-mounted");
        assert_eq!(s.source.setting_name(), "byoc.apiKeyFile");
        assert!(
            layers
                .files
                .contains(&dir.path().join("config/../secrets/apiKey"))
        );

        let doc = ValuesDoc::parse(
            &values_path,
            "byoc:\n  apiKey: inline\n  apiKeyFile: ../secrets/apiKey\n",
        )
        .unwrap();
        let mut layers = Layers::new(&env, Some(&doc));
        assert!(layers.secret("BYOC_API_KEY", Some("byoc.apiKey")).is_none());
        assert!(
            layers.errors[0].contains("byoc.apiKey and byoc.apiKeyFile are both set"),
            "{:?}",
            layers.errors
        );
    }

    #[test]
    fn closest_suggests_near_misses_only() {
        assert_eq!(
            closest("BYOC_MODLE", &["BYOC_MODEL", "BYOC_REGION"]),
            Some("BYOC_MODEL")
        );
        assert_eq!(closest("SOMETHING_ELSE", &["BYOC_MODEL"]), None);
    }
}
