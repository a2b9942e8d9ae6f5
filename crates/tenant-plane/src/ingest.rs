//! Log ingest: parses an NDJSON body into validated log lines, all or nothing. The first bad
//! line stops the batch with an error that names its line number and what is wrong, so a
//! client can fix its shipper; nothing is stored from a bad batch.
//!
//! Each line is one JSON object. Recognised keys (first match wins):
//!
//! | field | keys | default |
//! |---|---|---|
//! | message (required) | `message`, `msg`, `log` | |
//! | time | `ts`, `timestamp`, `@timestamp`, `time`: RFC 3339, or Unix seconds/ms/µs/ns as a number | the time of the request |
//! | level | `level`, `severity`, `lvl` | `info` |
//! | service | `service` | `?service=` of the request (required one way or the other) |
//! | incident | `incident_id` | `?incident_id=` of the request |
//! | structured fields | `attrs`, `fields` (an object) | every other key of the line |

use serde_json::{Map, Value};

use crate::store::logs::NewLogLine;
use crate::store::{LogLevel, Timestamp};
use crate::validate;

/// The longest message accepted (stack traces included).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The most lines accepted in one request.
pub const MAX_LINES: usize = 200_000;

const MESSAGE_KEYS: &[&str] = &["message", "msg", "log"];
const TIME_KEYS: &[&str] = &["ts", "timestamp", "@timestamp", "time"];
const LEVEL_KEYS: &[&str] = &["level", "severity", "lvl"];
const ATTR_KEYS: &[&str] = &["attrs", "fields"];

/// Values the request gives for every line.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// `?incident_id=`.
    pub incident_id: Option<String>,
    /// `?service=`.
    pub service: Option<String>,
}

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// One line is wrong.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number in the body (blank lines count, as in an editor).
        line: usize,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The body has no lines.
    #[error("the body has no log lines; send one JSON object per line (NDJSON)")]
    Empty,
    /// Too many lines.
    #[error("the body has more than {MAX_LINES} lines; split it into several requests")]
    TooMany,
}

/// Parses an NDJSON body. Blank lines are skipped; `\r\n` line ends are accepted.
pub fn parse_ndjson(
    body: &[u8],
    defaults: &Defaults,
    now: Timestamp,
) -> Result<Vec<NewLogLine>, IngestError> {
    let mut out = Vec::with_capacity(body.len() / 160 + 1);
    for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if out.len() == MAX_LINES {
            return Err(IngestError::TooMany);
        }
        let line = i + 1;
        let err = |reason: String| IngestError::Line { line, reason };
        out.push(parse_line(raw, defaults, now).map_err(err)?);
    }
    if out.is_empty() {
        return Err(IngestError::Empty);
    }
    Ok(out)
}

fn parse_line(raw: &[u8], defaults: &Defaults, now: Timestamp) -> Result<NewLogLine, String> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| {
        format!("not valid JSON ({e}); each line must be one JSON object such as {{\"ts\": \"2026-11-02T14:03:07Z\", \"level\": \"error\", \"message\": \"...\"}}")
    })?;
    let Value::Object(mut obj) = value else {
        return Err("expected a JSON object such as {\"ts\": \"2026-11-02T14:03:07Z\", \"level\": \"error\", \"message\": \"...\"}".to_owned());
    };

    let (mkey, message) = take_first(&mut obj, MESSAGE_KEYS)
        .ok_or_else(|| "missing \"message\" (\"msg\" and \"log\" are accepted too)".to_owned())?;
    let message = match message {
        Value::String(s) => s,
        _ => return Err(format!("\"{mkey}\" must be a string")),
    };
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(format!(
            "\"{mkey}\" is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
            message.len()
        ));
    }

    let ts = match take_first(&mut obj, TIME_KEYS) {
        None => now,
        Some((key, Value::String(s))) => {
            Timestamp::parse(&s).map_err(|e| format!("\"{key}\": {e}"))?
        }
        Some((key, Value::Number(n))) => epoch_number(&n)
            .ok_or_else(|| format!("\"{key}\": {n} is not a Unix time in seconds, milliseconds, microseconds or nanoseconds"))?,
        Some((key, _)) => {
            return Err(format!(
                "\"{key}\" must be an RFC 3339 string such as 2026-11-02T14:03:07Z or a Unix time number"
            ));
        }
    };

    let level = match take_first(&mut obj, LEVEL_KEYS) {
        None => LogLevel::Info,
        Some((key, Value::String(s))) => s.parse().map_err(|e| format!("\"{key}\": {e}"))?,
        Some((key, _)) => return Err(format!("\"{key}\" must be a string such as \"error\"")),
    };

    let service = match obj.remove("service") {
        Some(Value::String(s)) => {
            validate::name("service", &s).map_err(|e| format!("\"service\": {e}"))?
        }
        Some(_) => return Err("\"service\" must be a string".to_owned()),
        None => defaults.service.clone().ok_or_else(|| {
            "missing \"service\"; give it on each line or as ?service= on the request".to_owned()
        })?,
    };

    let incident_id = match obj.remove("incident_id") {
        Some(Value::String(s)) => {
            let id =
                validate::id("incident_id", &s).map_err(|e| format!("\"incident_id\": {e}"))?;
            if let Some(d) = &defaults.incident_id
                && *d != id
            {
                return Err(format!(
                    "\"incident_id\" {id} differs from ?incident_id={d} of the request"
                ));
            }
            Some(id)
        }
        Some(Value::Null) | None => defaults.incident_id.clone(),
        Some(_) => return Err("\"incident_id\" must be a string".to_owned()),
    };

    let mut attrs = match take_first(&mut obj, ATTR_KEYS) {
        None | Some((_, Value::Null)) => Map::new(),
        Some((_, Value::Object(m))) => m,
        Some((key, _)) => return Err(format!("\"{key}\" must be an object")),
    };
    // Flat JSON logs carry their structured fields at the top level: keep them.
    attrs.extend(obj);
    let attrs = (!attrs.is_empty()).then(|| Value::Object(attrs).to_string());

    let template = template_id(&message);
    Ok(NewLogLine {
        incident_id,
        service,
        ts,
        level,
        message,
        attrs,
        template,
    })
}

fn take_first(
    obj: &mut Map<String, Value>,
    keys: &[&'static str],
) -> Option<(&'static str, Value)> {
    for key in keys {
        if let Some(v) = obj.remove(*key) {
            return Some((key, v));
        }
    }
    None
}

/// Unix time as a number: the magnitude says the unit (seconds until the year 5138,
/// milliseconds, microseconds, then nanoseconds), as log shippers emit all four.
fn epoch_number(n: &serde_json::Number) -> Option<Timestamp> {
    let x = n.as_f64()?;
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    let micros = if x < 1e11 {
        x * 1e6
    } else if x < 1e14 {
        x * 1e3
    } else if x < 1e17 {
        x
    } else {
        x / 1e3
    };
    (micros < 9.0e18).then_some(Timestamp(micros as i64))
}

/// The message's shape: the text with numbers, hexadecimal ids, UUIDs and addresses masked, so
/// `timeout after 3000ms talking to 10.0.3.4:5432` and `timeout after 2950ms talking to
/// 10.0.3.9:5432` share a shape.
pub fn template_text(message: &str) -> String {
    let head: String = message.chars().take(512).collect();
    let mut out = String::with_capacity(head.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let has_digit = run.bytes().any(|b| b.is_ascii_digit());
        if has_digit && run.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push('#');
        } else if has_digit {
            // Mixed words such as 3000ms or pod7: mask only the digits.
            let mut in_digits = false;
            for c in run.chars() {
                if c.is_ascii_digit() {
                    if !in_digits {
                        out.push('#');
                    }
                    in_digits = true;
                } else {
                    out.push(c);
                    in_digits = false;
                }
            }
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in head.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// A stable 64-bit id for a message's shape (FNV-1a of [`template_text`]).
pub fn template_id(message: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in template_text(message).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Vec<NewLogLine>, IngestError> {
        parse_ndjson(
            body.as_bytes(),
            &Defaults {
                incident_id: None,
                service: Some("api".to_owned()),
            },
            Timestamp(1_000_000),
        )
    }

    #[test]
    fn accepts_common_shapes_and_keeps_extra_fields() {
        let lines = parse(concat!(
            "{\"ts\":\"2026-11-02T14:03:07Z\",\"level\":\"ERROR\",\"message\":\"boom\",\"trace_id\":\"abc\"}\n",
            "\r\n",
            "{\"@timestamp\":1762092187,\"severity\":\"warning\",\"msg\":\"slow\",\"service\":\"db\"}\r\n",
            "{\"log\":\"plain\",\"fields\":{\"pod\":\"api-7f9c\"}}\n",
        ))
        .unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].level, LogLevel::Error);
        assert_eq!(lines[0].service, "api");
        assert_eq!(lines[0].attrs.as_deref(), Some("{\"trace_id\":\"abc\"}"));
        assert_eq!(lines[1].level, LogLevel::Warn);
        assert_eq!(lines[1].service, "db");
        assert_eq!(lines[1].ts, Timestamp(1_762_092_187_000_000));
        assert_eq!(
            lines[2].ts,
            Timestamp(1_000_000),
            "no time: the request's time"
        );
        assert_eq!(lines[2].level, LogLevel::Info);
    }

    #[test]
    fn names_the_first_bad_line_counting_blank_lines() {
        let body = "{\"message\":\"ok\"}\n\n{\"message\":\"ok\"}\n{\"message\": 5}\n{\"oops\n";
        assert_eq!(
            parse(body).unwrap_err(),
            IngestError::Line {
                line: 4,
                reason: "\"message\" must be a string".to_owned()
            }
        );
        let e = parse("{\"message\":\"a\"}\nnot json\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2: not valid JSON"), "{e}");
        let e = parse("{\"message\":\"a\",\"level\":\"loud\"}").unwrap_err();
        assert!(e.to_string().contains("line 1: \"level\""), "{e}");
        let e = parse("{\"message\":\"a\",\"ts\":\"yesterday\"}").unwrap_err();
        assert!(e.to_string().contains("RFC 3339"), "{e}");
        assert_eq!(parse("\n\n").unwrap_err(), IngestError::Empty);
        let e =
            parse_ndjson(b"{\"message\":\"a\"}", &Defaults::default(), Timestamp(0)).unwrap_err();
        assert!(e.to_string().contains("?service="), "{e}");
    }

    #[test]
    fn shapes_ignore_numbers_ids_and_addresses() {
        assert_eq!(
            template_id("timeout after 3000ms talking to 10.0.3.4:5432"),
            template_id("timeout after 2950ms talking to 10.0.3.9:5432")
        );
        assert_eq!(
            template_text("order 550e8400-e29b-41d4-a716-446655440000 failed on pod-7f9c6"),
            "order #-#-#-#-# failed on pod-#"
        );
        assert_ne!(
            template_id("connection refused"),
            template_id("connection reset")
        );
    }

    #[test]
    fn epoch_numbers_in_any_unit() {
        let s = Timestamp(1_762_092_187_000_000);
        for n in [
            "1762092187",
            "1762092187000",
            "1762092187000000",
            "1762092187000000000",
        ] {
            let v: serde_json::Number = n.parse().unwrap();
            assert_eq!(epoch_number(&v), Some(s), "{n}");
        }
    }
}

/// `POST /api/logs` and `GET /api/logs` query parameters.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    /// Lines for this incident (ingest: the default for every line).
    pub incident_id: Option<String>,
    /// Lines of this service (ingest: the default for every line).
    pub service: Option<String>,
    /// Listing only: levels, comma-separated (`error,fatal`).
    pub level: Option<String>,
    /// Listing only: at or after (RFC 3339).
    pub since: Option<String>,
    /// Listing only: before (RFC 3339).
    pub until: Option<String>,
    /// Listing only: page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// Listing only: `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// What `POST /api/logs` answers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct IngestResult {
    /// Lines stored.
    pub accepted: usize,
    /// The first stored line's id.
    pub first_id: Option<String>,
    /// The last stored line's id.
    pub last_id: Option<String>,
    /// The tenant's write batch they were stored under (`GET /api/search/status` shows how far
    /// the index has caught up).
    pub batch: i64,
}

/// Parses, checks and stores an NDJSON batch: all lines or none.
pub async fn ingest(
    data: &crate::data::Data,
    tenant: &atlasai_core::TenantId,
    body: bytes::Bytes,
    params: LogParams,
) -> Result<IngestResult, crate::data::ServiceError> {
    use crate::data::ServiceError;
    let only_listing = [
        ("level", params.level.is_some()),
        ("since", params.since.is_some()),
        ("until", params.until.is_some()),
        ("limit", params.limit.is_some()),
        ("cursor", params.cursor.is_some()),
    ];
    if let Some((name, _)) = only_listing.iter().find(|(_, set)| *set) {
        return Err(ServiceError::invalid(format!(
            "{name} is a listing parameter (GET /api/logs); POST /api/logs takes incident_id and service"
        )));
    }
    let defaults = Defaults {
        incident_id: params
            .incident_id
            .as_deref()
            .map(|i| validate::id("incident_id", i).map_err(ServiceError::Invalid))
            .transpose()?,
        service: params
            .service
            .as_deref()
            .map(|s| validate::name("service", s).map_err(ServiceError::Invalid))
            .transpose()?,
    };
    if let Some(id) = &defaults.incident_id
        && data.store.get_incident(tenant, id).await?.is_none()
    {
        return Err(ServiceError::NotFound {
            what: "incident",
            id: id.clone(),
        });
    }
    let now = Timestamp::now();
    let parse_defaults = defaults.clone();
    // Parsing tens of megabytes is CPU work: keep it off the async threads.
    let lines = tokio::task::spawn_blocking(move || parse_ndjson(&body, &parse_defaults, now))
        .await
        .map_err(|e| ServiceError::Task(e.to_string()))?
        .map_err(|e| ServiceError::Invalid(e.to_string()))?;
    // Lines may name their own incident: each must exist (first offending line reported).
    let mut checked: std::collections::HashSet<&str> = std::collections::HashSet::new();
    if let Some(id) = &defaults.incident_id {
        checked.insert(id);
    }
    for (n, line) in lines.iter().enumerate() {
        if let Some(id) = &line.incident_id
            && checked.insert(id)
            && data.store.get_incident(tenant, id).await?.is_none()
        {
            return Err(ServiceError::invalid(format!(
                "log line {}: incident_id {id} does not exist",
                n + 1
            )));
        }
    }
    let summary = data.store.ingest_logs(tenant, &lines).await?;
    data.notify_written();
    Ok(IngestResult {
        accepted: summary.accepted,
        first_id: summary.first_id,
        last_id: summary.last_id,
        batch: summary.seq,
    })
}

/// Lists log lines of an incident or a service.
pub async fn list(
    data: &crate::data::Data,
    tenant: &atlasai_core::TenantId,
    params: LogParams,
) -> Result<crate::store::Page<crate::store::LogLine>, crate::data::ServiceError> {
    use crate::data::ServiceError;
    use crate::incidents::{cursor_param, page_size, time_param};
    if params.incident_id.is_none() && params.service.is_none() {
        return Err(ServiceError::invalid(
            "give incident_id or service (or both) to list log lines",
        ));
    }
    let levels = match params.level.as_deref() {
        None => Vec::new(),
        Some(text) => text
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.parse::<LogLevel>()
                    .map_err(|e| ServiceError::invalid(format!("level: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let filter = crate::store::logs::LogFilter {
        incident_id: params
            .incident_id
            .as_deref()
            .map(|i| validate::id("incident_id", i).map_err(ServiceError::Invalid))
            .transpose()?,
        service: params
            .service
            .as_deref()
            .map(|s| validate::name("service", s).map_err(ServiceError::Invalid))
            .transpose()?,
        levels,
        since: time_param("since", params.since.as_deref())?,
        until: time_param("until", params.until.as_deref())?,
        limit: page_size(params.limit)?,
        cursor: cursor_param(params.cursor)?,
    };
    Ok(data.store.list_logs(tenant, &filter).await?)
}
