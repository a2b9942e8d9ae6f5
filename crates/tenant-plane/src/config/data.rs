//! Settings for the tenant plane's own data: where incidents, logs and runbooks are stored
//! (`TP_DATABASE_URL`), how large a log batch may be, how fast the search index catches up,
//! and when a new alert joins an open incident. Read from the environment only; changing them
//! needs a restart.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use url::Url;

use super::ReportRow;
use super::resolve::parse_duration;
use super::sources::{Layers, Source};

/// The default database file, inside the data directory.
pub const DEFAULT_DATABASE_FILE: &str = "atlasai.db";
const DEFAULT_MAX_CONNECTIONS: u32 = 10;
const DEFAULT_INGEST_MAX_BODY: usize = 32 * 1024 * 1024;
const MAX_INGEST_MAX_BODY: usize = 1024 * 1024 * 1024;
const DEFAULT_INDEX_REFRESH: Duration = Duration::from_secs(1);
const DEFAULT_SEARCH_EMBEDDING_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_CORRELATION_WINDOW: Duration = Duration::from_secs(2 * 3600);
const DEFAULT_EMBEDDING_THRESHOLD: f32 = 0.80;
const DEFAULT_KEYWORD_THRESHOLD: f32 = 0.45;

/// Which database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// The embedded default: one file in the data directory.
    Sqlite,
    /// PostgreSQL, for installations with several replicas.
    Postgres,
}

impl fmt::Display for DatabaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatabaseKind::Sqlite => "sqlite",
            DatabaseKind::Postgres => "postgres",
        })
    }
}

/// A validated database URL. The URL may carry a password, so it is kept secret; `display`
/// is the same URL with the password masked, for logs and `check-config`.
#[derive(Clone)]
pub struct DatabaseUrl {
    /// The engine.
    pub kind: DatabaseKind,
    /// The full URL as given (or the default SQLite URL).
    pub url: SecretString,
    /// The URL with any password replaced by `***`.
    pub display: String,
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseUrl")
            .field("kind", &self.kind)
            .field("url", &self.display)
            .finish()
    }
}

impl DatabaseUrl {
    /// The embedded default: `sqlite://<data dir>/atlasai.db`.
    pub fn default_sqlite(data_dir: &Path) -> DatabaseUrl {
        let path = data_dir.join(DEFAULT_DATABASE_FILE);
        let url = format!("sqlite://{}", path.display());
        DatabaseUrl {
            kind: DatabaseKind::Sqlite,
            display: url.clone(),
            url: SecretString::from(url),
        }
    }

    /// Parses and checks a URL, with a message naming what is accepted when it is wrong. The
    /// message never repeats the URL, which may hold a password.
    pub fn parse(text: &str) -> Result<DatabaseUrl, String> {
        let scheme = text
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => {
                if text.contains(":memory:") || text.contains("mode=memory") {
                    return Err("an in-memory SQLite database loses every incident at restart; use a file such as sqlite:///var/lib/atlasai/atlasai.db".to_owned());
                }
                SqliteConnectOptions::from_str(text).map_err(|e| {
                    format!("not a valid SQLite URL ({e}); use sqlite:///absolute/path/atlasai.db or sqlite://relative/path.db")
                })?;
                Ok(DatabaseUrl {
                    kind: DatabaseKind::Sqlite,
                    url: SecretString::from(text.to_owned()),
                    display: text.to_owned(),
                })
            }
            "postgres" | "postgresql" => {
                let url = Url::parse(text).map_err(|e| {
                    format!("not a valid PostgreSQL URL ({e}); use postgres://user:password@host:5432/database")
                })?;
                if url.host_str().is_none_or(str::is_empty) {
                    return Err("the PostgreSQL URL has no host; use postgres://user:password@host:5432/database".to_owned());
                }
                if url.path().trim_start_matches('/').is_empty() {
                    return Err("the PostgreSQL URL names no database; use postgres://user:password@host:5432/database".to_owned());
                }
                // The driver's own parser decides the query options (sslmode and friends).
                // Its message can quote the URL, so only say which part is wrong.
                PgConnectOptions::from_str(text).map_err(|_| {
                    "the PostgreSQL URL has an option the driver does not accept (check sslmode=disable|prefer|require|verify-ca|verify-full and the other query parameters)".to_owned()
                })?;
                let mut masked = url.clone();
                if masked.password().is_some() {
                    let _ = masked.set_password(Some("***"));
                }
                Ok(DatabaseUrl {
                    kind: DatabaseKind::Postgres,
                    url: SecretString::from(text.to_owned()),
                    display: masked.to_string(),
                })
            }
            _ => Err("unsupported database; use sqlite:///path/to/atlasai.db (the default is a file in TP_DATA_DIR) or postgres://user:password@host:5432/database".to_owned()),
        }
    }

    /// The URL for the driver.
    pub fn expose(&self) -> &str {
        self.url.expose_secret()
    }
}

/// When `POST /api/alerts` attaches a new alert to an open incident.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorrelationSettings {
    /// Only incidents active (created or alerted) within this time of the alert qualify.
    pub window: Duration,
    /// Minimum cosine similarity when embeddings are available.
    pub embedding_threshold: f32,
    /// Minimum keyword similarity (weighted token overlap, 0 to 1) otherwise.
    pub keyword_threshold: f32,
}

impl Default for CorrelationSettings {
    fn default() -> Self {
        CorrelationSettings {
            window: DEFAULT_CORRELATION_WINDOW,
            embedding_threshold: DEFAULT_EMBEDDING_THRESHOLD,
            keyword_threshold: DEFAULT_KEYWORD_THRESHOLD,
        }
    }
}

/// Everything about the tenant plane's data.
#[derive(Debug, Clone)]
pub struct DataSettings {
    /// The database (`TP_DATABASE_URL`).
    pub database: DatabaseUrl,
    /// Connection pool size (`TP_DATABASE_MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// The largest accepted `POST /api/logs` body in bytes (`TP_INGEST_MAX_BODY`).
    pub ingest_max_body: usize,
    /// How often the search index looks for new data and commits (`TP_INDEX_REFRESH`).
    pub index_refresh: Duration,
    /// How long a search waits for the query's embedding before answering keyword-only
    /// (`TP_SEARCH_EMBEDDING_TIMEOUT`).
    pub search_embedding_timeout: Duration,
    /// Alert correlation thresholds.
    pub correlation: CorrelationSettings,
}

impl DataSettings {
    /// The defaults for a data directory.
    pub fn defaults(data_dir: &Path) -> DataSettings {
        DataSettings {
            database: DatabaseUrl::default_sqlite(data_dir),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            ingest_max_body: DEFAULT_INGEST_MAX_BODY,
            index_refresh: DEFAULT_INDEX_REFRESH,
            search_embedding_timeout: DEFAULT_SEARCH_EMBEDDING_TIMEOUT,
            correlation: CorrelationSettings::default(),
        }
    }
}

fn row(setting: &'static str, value: String, source: Source) -> ReportRow {
    ReportRow {
        setting,
        value,
        source,
    }
}

/// Reads the data settings, recording every problem in `l`.
pub(super) fn resolve(
    l: &mut Layers<'_>,
    data_dir: &Path,
    report: &mut Vec<ReportRow>,
) -> DataSettings {
    let mut s = DataSettings::defaults(data_dir);

    match l.secret("TP_DATABASE_URL", None) {
        Some(url) => match DatabaseUrl::parse(url.value.expose_secret()) {
            Ok(db) => {
                report.push(row("database", db.display.clone(), url.source));
                s.database = db;
            }
            Err(problem) => l.error(format!("{}: {problem}", url.source.setting_name())),
        },
        None => report.push(row("database", s.database.display.clone(), Source::Default)),
    }

    s.max_connections = match l.get("TP_DATABASE_MAX_CONNECTIONS", None) {
        Some(v) => match v.value.parse::<u32>() {
            Ok(n) if (1..=200).contains(&n) => {
                report.push(row("database max connections", n.to_string(), v.source));
                n
            }
            _ => {
                l.error(format!(
                    "TP_DATABASE_MAX_CONNECTIONS: {:?} is not a number from 1 to 200",
                    v.value
                ));
                DEFAULT_MAX_CONNECTIONS
            }
        },
        None => {
            report.push(row(
                "database max connections",
                DEFAULT_MAX_CONNECTIONS.to_string(),
                Source::Default,
            ));
            DEFAULT_MAX_CONNECTIONS
        }
    };

    s.ingest_max_body = match l.get("TP_INGEST_MAX_BODY", None) {
        Some(v) => match parse_size(&v.value) {
            Some(n) if (1024..=MAX_INGEST_MAX_BODY).contains(&n) => {
                report.push(row("ingest max body", human_size(n), v.source));
                n
            }
            _ => {
                l.error(format!(
                    "TP_INGEST_MAX_BODY: {:?} is not a size from 1KiB to 1GiB; use bytes (33554432) or a unit (32MiB, 64MB)",
                    v.value
                ));
                DEFAULT_INGEST_MAX_BODY
            }
        },
        None => {
            report.push(row(
                "ingest max body",
                human_size(DEFAULT_INGEST_MAX_BODY),
                Source::Default,
            ));
            DEFAULT_INGEST_MAX_BODY
        }
    };

    s.index_refresh = duration_setting(
        l,
        report,
        "TP_INDEX_REFRESH",
        "index refresh",
        DEFAULT_INDEX_REFRESH,
        Duration::from_millis(50)..=Duration::from_secs(60),
    );
    s.search_embedding_timeout = duration_setting(
        l,
        report,
        "TP_SEARCH_EMBEDDING_TIMEOUT",
        "search embedding timeout",
        DEFAULT_SEARCH_EMBEDDING_TIMEOUT,
        Duration::from_millis(100)..=Duration::from_secs(120),
    );
    s.correlation.window = duration_setting(
        l,
        report,
        "TP_CORRELATION_WINDOW",
        "correlation window",
        DEFAULT_CORRELATION_WINDOW,
        Duration::from_secs(60)..=Duration::from_secs(30 * 24 * 3600),
    );
    s.correlation.embedding_threshold = threshold(
        l,
        report,
        "TP_CORRELATION_EMBEDDING_THRESHOLD",
        "correlation embedding threshold",
        DEFAULT_EMBEDDING_THRESHOLD,
    );
    s.correlation.keyword_threshold = threshold(
        l,
        report,
        "TP_CORRELATION_KEYWORD_THRESHOLD",
        "correlation keyword threshold",
        DEFAULT_KEYWORD_THRESHOLD,
    );
    s
}

fn duration_setting(
    l: &mut Layers<'_>,
    report: &mut Vec<ReportRow>,
    var: &'static str,
    setting: &'static str,
    default: Duration,
    range: std::ops::RangeInclusive<Duration>,
) -> Duration {
    let Some(v) = l.get(var, None) else {
        report.push(row(setting, human_duration(default), Source::Default));
        return default;
    };
    match parse_duration(&v.value) {
        Some(d) if range.contains(&d) => {
            report.push(row(setting, human_duration(d), v.source));
            d
        }
        _ => {
            l.error(format!(
                "{var}: {:?} is not a duration from {} to {}; use seconds (2) or a number with a unit (500ms, 30s, 2h)",
                v.value,
                human_duration(*range.start()),
                human_duration(*range.end())
            ));
            default
        }
    }
}

fn threshold(
    l: &mut Layers<'_>,
    report: &mut Vec<ReportRow>,
    var: &'static str,
    setting: &'static str,
    default: f32,
) -> f32 {
    let Some(v) = l.get(var, None) else {
        report.push(row(setting, default.to_string(), Source::Default));
        return default;
    };
    match v.value.parse::<f32>() {
        Ok(x) if x.is_finite() && (0.0..=1.0).contains(&x) => {
            report.push(row(setting, x.to_string(), v.source));
            x
        }
        _ => {
            l.error(format!(
                "{var}: {:?} is not a number from 0 to 1 (for example 0.8)",
                v.value
            ));
            default
        }
    }
}

/// Parses `33554432`, `32MiB`, `32MB`, `512KiB`, `1GiB` (units are case-insensitive; `MB`
/// and `MiB` both mean 2^20 bytes, which is what operators expect of a body limit).
pub(crate) fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let n: usize = num.parse().ok()?;
    let mult: usize = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn human_size(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if n.is_multiple_of(MIB) {
        format!("{}MiB", n / MIB)
    } else if n.is_multiple_of(1024) {
        format!("{}KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("32MiB"), Some(32 * 1024 * 1024));
        assert_eq!(parse_size("64mb"), Some(64 * 1024 * 1024));
        assert_eq!(parse_size("512 KiB"), Some(512 * 1024));
        assert_eq!(parse_size("1GiB"), Some(1024 * 1024 * 1024));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("12 parsecs"), None);
    }

    #[test]
    fn database_urls() {
        let pg = DatabaseUrl::parse("postgres://atlas:hunter2@db.internal:5432/atlasai").unwrap();
        assert_eq!(pg.kind, DatabaseKind::Postgres);
        assert!(!pg.display.contains("hunter2"), "{}", pg.display);
        assert!(!format!("{pg:?}").contains("hunter2"));
        let sq = DatabaseUrl::parse("sqlite:///var/lib/atlasai/atlasai.db").unwrap();
        assert_eq!(sq.kind, DatabaseKind::Sqlite);
        for (bad, says) in [
            ("mysql://root@db/atlas", "unsupported database"),
            ("sqlite::memory:", "in-memory"),
            ("postgres:///atlas", "no host"),
            ("postgres://db.internal:5432", "names no database"),
            ("postgres://u:hunter2@db/x?sslmode=sometimes", "sslmode"),
        ] {
            let e = DatabaseUrl::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{bad}: {e}");
        }
    }
}
