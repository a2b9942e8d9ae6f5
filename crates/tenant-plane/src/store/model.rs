//! The records the store holds, as the API shows them: incidents, alerts, changes, log lines
//! and runbooks, with their closed vocabularies (status, severity, level, change kind) and
//! RFC 3339 timestamps.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

/// A point in time, stored as microseconds since the Unix epoch (UTC) and shown as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Now.
    pub fn now() -> Timestamp {
        Timestamp::from_datetime(OffsetDateTime::now_utc())
    }

    /// From a date-time (sub-microsecond precision is dropped).
    pub fn from_datetime(dt: OffsetDateTime) -> Timestamp {
        let nanos = dt.unix_timestamp_nanos();
        Timestamp((nanos / 1000).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }

    /// Parses RFC 3339 (`2026-11-02T14:03:07Z`, `2026-11-02T15:03:07.250+01:00`).
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        OffsetDateTime::parse(text.trim(), &Rfc3339)
            .map(Timestamp::from_datetime)
            .map_err(|_| {
                format!(
                    "{:?} is not an RFC 3339 timestamp such as 2026-11-02T14:03:07Z",
                    truncate(text, 64)
                )
            })
    }

    /// Microseconds since the epoch.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// The time `d` earlier (saturating).
    pub fn minus(self, d: std::time::Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(d.as_micros().min(i64::MAX as u128) as i64),
        )
    }

    /// The time `d` later (saturating).
    pub fn plus(self, d: std::time::Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(d.as_micros().min(i64::MAX as u128) as i64),
        )
    }

    /// RFC 3339 in UTC, with as many fractional digits as needed.
    pub fn to_rfc3339(self) -> String {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        dt.format(&Rfc3339)
            .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .examples(["2026-11-02T14:03:07.250Z"])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Declares a closed vocabulary: serde and `FromStr` accept exactly these names (plus the
/// listed aliases), and errors list what is accepted.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            /// The accepted names, for error messages.
            pub fn valid_names() -> String {
                let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                names.join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let lower = s.trim().to_ascii_lowercase();
                match lower.as_str() {
                    $( $text $(| $alias)* => Ok($name::$variant), )+
                    _ => Err(format!(
                        "{:?} is not {}; use {}",
                        truncate(s, 40),
                        $what,
                        Self::valid_names()
                    )),
                }
            }
        }
    };
}

vocabulary! {
    /// Where an incident is in its life. `open` and `acknowledged` incidents are "open" for
    /// alert correlation.
    IncidentStatus, "an incident status" {
        /// Declared, nobody on it yet.
        Open = "open",
        /// Someone is working on it.
        Acknowledged = "acknowledged",
        /// The impact is over.
        Resolved = "resolved",
        /// Reviewed and done.
        Closed = "closed",
    }
}

impl IncidentStatus {
    /// Whether new alerts may still join it.
    pub fn is_open(self) -> bool {
        matches!(self, IncidentStatus::Open | IncidentStatus::Acknowledged)
    }
}

vocabulary! {
    /// How bad an incident or alert is. Alertmanager's `warning` is accepted as `medium` and
    /// `error` as `high`.
    Severity, "a severity" {
        /// Outage of a critical path.
        Critical = "critical" | "sev1" | "p1",
        /// Major degradation.
        High = "high" | "error" | "major" | "sev2" | "p2",
        /// Partial or minor degradation.
        Medium = "medium" | "warning" | "warn" | "sev3" | "p3",
        /// Little user impact.
        Low = "low" | "minor" | "sev4" | "p4",
        /// For information.
        Info = "info" | "informational" | "none",
    }
}

vocabulary! {
    /// A log line's level. Common spellings from other loggers are accepted.
    LogLevel, "a log level" {
        /// Very detailed tracing.
        Trace = "trace",
        /// Debugging detail.
        Debug = "debug" | "verbose",
        /// Normal operation.
        Info = "info" | "information" | "notice",
        /// Something unexpected that was handled.
        Warn = "warn" | "warning",
        /// A failed operation.
        Error = "error" | "err",
        /// The process or a critical component failed.
        Fatal = "fatal" | "critical" | "crit" | "emerg" | "emergency" | "alert" | "panic",
    }
}

vocabulary! {
    /// What kind of change a change record describes.
    ChangeKind, "a change kind" {
        /// A new version of a service was rolled out.
        Deploy = "deploy" | "deployment",
        /// A configuration value or file changed.
        Config = "config" | "configuration",
        /// A feature flag was flipped.
        FeatureFlag = "feature_flag" | "flag",
        /// Infrastructure changed (nodes, network, database, scaling).
        Infrastructure = "infrastructure" | "infra",
        /// A previous change was reverted.
        Rollback = "rollback",
        /// Anything else.
        Other = "other",
    }
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Incident {
    /// UUIDv7.
    pub id: String,
    /// An id from another system (PagerDuty, Jira), if given.
    pub external_id: Option<String>,
    /// One line.
    pub title: String,
    /// What is known, in prose or markdown.
    pub description: String,
    /// The service it affects.
    pub service: String,
    /// How bad it is.
    pub severity: Severity,
    /// Where it is in its life.
    pub status: IncidentStatus,
    /// When it started (defaults to when it was created).
    pub started_at: Timestamp,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// When anything about it last changed.
    pub updated_at: Timestamp,
    /// When it was resolved, if it was.
    pub resolved_at: Option<Timestamp>,
    /// When its latest alert fired.
    pub last_alert_at: Option<Timestamp>,
}

/// An incident and how much evidence is attached to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentDetail {
    /// The incident.
    #[serde(flatten)]
    pub incident: Incident,
    /// Counts of attached records.
    pub counts: EvidenceCounts,
}

/// How many records are attached to an incident.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvidenceCounts {
    /// Alerts.
    pub alerts: i64,
    /// Change and configuration records.
    pub changes: i64,
    /// Log lines.
    pub log_lines: i64,
}

/// An alert, always attached to an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// UUIDv7.
    pub id: String,
    /// The incident it belongs to.
    pub incident_id: String,
    /// The alert's name or summary.
    pub title: String,
    /// Details.
    pub description: String,
    /// The service it fired for.
    pub service: String,
    /// How bad it is.
    pub severity: Severity,
    /// What sent it (`prometheus`, `datadog`, ...).
    pub source: Option<String>,
    /// The sender's deduplication key; an alert with the same fingerprint as one on an open
    /// incident joins that incident.
    pub fingerprint: Option<String>,
    /// Labels as sent.
    #[schema(value_type = Object)]
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// When it fired.
    pub fired_at: Timestamp,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// Why it was attached where it was (for alerts that went through `POST /api/alerts`).
    #[schema(value_type = Option<Object>)]
    pub correlation: Option<serde_json::Value>,
}

/// A deploy, configuration change or other change, attached to an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    /// UUIDv7.
    pub id: String,
    /// The incident it is attached to.
    pub incident_id: String,
    /// What kind of change.
    pub kind: ChangeKind,
    /// The service it changed.
    pub service: String,
    /// One line.
    pub summary: String,
    /// The diff, the release notes, the new values.
    pub details: String,
    /// Who made it.
    pub author: Option<String>,
    /// A version, commit, pull request or ticket.
    pub reference: Option<String>,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// When it was recorded.
    pub created_at: Timestamp,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    /// UUIDv7.
    pub id: String,
    /// The incident it was ingested for, if any.
    pub incident_id: Option<String>,
    /// The service that logged it.
    pub service: String,
    /// When it was logged.
    pub ts: Timestamp,
    /// Its level.
    pub level: LogLevel,
    /// The message.
    pub message: String,
    /// Structured fields, as sent.
    #[schema(value_type = Option<Object>)]
    pub attrs: Option<serde_json::Value>,
}

/// A runbook: markdown knowledge that retrieval draws on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Runbook {
    /// UUIDv7.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Markdown.
    pub content: String,
    /// The services it applies to (empty: any).
    pub services: Vec<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A runbook without its content, for lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunbookSummary {
    /// UUIDv7.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The services it applies to.
    pub services: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Length of the markdown in characters.
    pub content_chars: i64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A recurring log message: lines that differ only in numbers, ids and addresses, counted.
/// What root cause analysis shows instead of thousands of near-identical lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogPattern {
    /// The shape's id (stable per tenant).
    pub template: i64,
    /// One line with this shape (the most recent).
    pub example: LogLine,
    /// How many lines have it.
    pub count: i64,
    /// The first one's time.
    pub first_ts: Timestamp,
    /// The last one's time.
    pub last_ts: Timestamp,
}

/// A page of results and the cursor for the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_rfc3339_with_offsets_and_fractions() {
        let t = Timestamp::parse("2026-11-02T15:03:07.250+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-02T14:03:07.25Z");
        assert_eq!(Timestamp::parse(&t.to_rfc3339()).unwrap(), t);
        let e = Timestamp::parse("yesterday").unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn vocabularies_accept_aliases_and_list_valid_values() {
        assert_eq!("WARNING".parse::<LogLevel>().unwrap(), LogLevel::Warn);
        assert_eq!("warning".parse::<Severity>().unwrap(), Severity::Medium);
        assert_eq!(
            "feature_flag".parse::<ChangeKind>().unwrap(),
            ChangeKind::FeatureFlag
        );
        let e = "loud".parse::<LogLevel>().unwrap_err();
        assert!(e.contains("trace, debug, info, warn, error, fatal"), "{e}");
        let v: Severity = serde_json::from_str("\"warning\"").unwrap();
        assert_eq!(v, Severity::Medium);
        assert_eq!(
            serde_json::to_string(&Severity::Medium).unwrap(),
            "\"medium\""
        );
    }
}
