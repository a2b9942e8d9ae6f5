//! An independent SigV4 verifier, written from the AWS Signature Version 4 specification
//! ("Create a canonical request", "Create a string to sign", "Calculate the signature") so
//! that the client's signer (aws-sigv4) is checked against a second implementation.
//!
//! Rejections use the error codes and wording AWS front ends return:
//! `MissingAuthenticationTokenException`, `IncompleteSignatureException`,
//! `UnrecognizedClientException` (unknown key id or session token) and
//! `InvalidSignatureException` (wrong secret, scope, or clock).

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::server::Recorded;

/// The service name every Bedrock request must be signed for.
pub(crate) const SERVICE: &str = "bedrock";
/// How far the request time may be from ours.
const MAX_SKEW_SECS: i64 = 5 * 60;

/// What the fake accepts.
#[derive(Debug)]
pub(crate) struct Expected<'a> {
    pub(crate) access_key_id: &'a str,
    pub(crate) secret: &'a str,
    pub(crate) session_token: Option<&'a str>,
    pub(crate) region: &'a str,
}

/// Why a request was refused: an HTTP status, an AWS error code and its message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

fn reject(status: u16, code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        status,
        code,
        message: message.into(),
    }
}

const INVALID_TOKEN: &str = "The security token included in the request is invalid.";

/// Checks a request's `Authorization` header against the expected credentials.
pub(crate) fn verify(expected: &Expected<'_>, req: &Recorded) -> Result<(), Rejection> {
    let Some(authorization) = req.header("authorization") else {
        return Err(reject(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let Some(fields) = authorization.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(reject(
            403,
            "IncompleteSignatureException",
            format!(
                "Authorization header requires the AWS4-HMAC-SHA256 algorithm. Authorization={authorization}"
            ),
        ));
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in fields.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(reject(
            403,
            "IncompleteSignatureException",
            format!(
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters. Authorization={authorization}"
            ),
        ));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, terminator] = scope[..] else {
        return Err(reject(
            403,
            "IncompleteSignatureException",
            format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
            ),
        ));
    };
    if key_id != expected.access_key_id {
        return Err(reject(403, "UnrecognizedClientException", INVALID_TOKEN));
    }
    let token = req.header("x-amz-security-token");
    if token != expected.session_token {
        return Err(reject(403, "UnrecognizedClientException", INVALID_TOKEN));
    }
    let Some(amz_date) = req.header("x-amz-date") else {
        return Err(reject(
            403,
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let Some(request_time) = parse_amz_date(amz_date) else {
        return Err(reject(
            403,
            "IncompleteSignatureException",
            format!("Invalid X-Amz-Date '{amz_date}'"),
        ));
    };
    if !amz_date.starts_with(date) || date.len() != 8 {
        return Err(reject(
            403,
            "InvalidSignatureException",
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{date}' != '{}', from '{amz_date}'.",
                &amz_date[..8]
            ),
        ));
    }
    if region != expected.region {
        return Err(reject(
            403,
            "InvalidSignatureException",
            "Credential should be scoped to a valid region.",
        ));
    }
    if service != SERVICE {
        return Err(reject(
            403,
            "InvalidSignatureException",
            format!("Credential should be scoped to correct service: '{SERVICE}'."),
        ));
    }
    if terminator != "aws4_request" {
        return Err(reject(
            403,
            "InvalidSignatureException",
            format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
            ),
        ));
    }
    let now = unix_now();
    if request_time < now - MAX_SKEW_SECS {
        return Err(reject(
            403,
            "InvalidSignatureException",
            format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
                format_amz_date(now - MAX_SKEW_SECS),
                format_amz_date(now)
            ),
        ));
    }
    if request_time > now + MAX_SKEW_SECS {
        return Err(reject(
            403,
            "InvalidSignatureException",
            format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
                format_amz_date(now + MAX_SKEW_SECS),
                format_amz_date(now)
            ),
        ));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") {
        return Err(reject(
            403,
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    let body_hash = hex::encode(Sha256::digest(&req.body));
    if let Some(claimed) = req.header("x-amz-content-sha256")
        && claimed != body_hash
        && claimed != "UNSIGNED-PAYLOAD"
    {
        return Err(reject(
            400,
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ));
    }
    let canonical = canonical_request(req, &names, signed_headers, &body_hash);
    let scope = format!("{date}/{region}/{service}/{terminator}");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(expected.secret, date, region, service);
    let want = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    if want != signature {
        return Err(reject(
            403,
            "InvalidSignatureException",
            format!(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
            ),
        ));
    }
    Ok(())
}

/// The canonical request: method, canonical URI, canonical query, canonical headers, signed
/// header names, payload hash.
fn canonical_request(
    req: &Recorded,
    names: &[&str],
    signed_headers: &str,
    body_hash: &str,
) -> String {
    // The path arrives encoded once; services other than S3 sign each segment encoded again.
    let uri = if req.path.is_empty() {
        "/".to_owned()
    } else {
        req.path
            .split('/')
            .map(uri_encode)
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut query: Vec<(String, String)> = req
        .query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(k)),
                uri_encode(&percent_decode(v)),
            )
        })
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in names {
        let values: Vec<String> = req
            .headers
            .get_all(*name)
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    format!(
        "{}\n{uri}\n{query}\n{headers}\n{signed_headers}\n{body_hash}",
        req.method.as_str()
    )
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// URI-encodes every byte except the unreserved characters `A-Z a-z 0-9 - _ . ~`.
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and nothing else).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this arm cannot run.
        Err(_) => Vec::new(),
    }
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Parses `YYYYMMDDTHHMMSSZ` into Unix seconds.
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(num(0..4)?, num(4..6)?, num(6..8)?);
    Some(days * 86_400 + num(9..11)? * 3600 + num(11..13)? * 60 + num(13..15)?)
}

fn format_amz_date(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// RFC 3339 in UTC (`2026-01-02T03:04:05Z`), as the ECS credentials endpoint writes times.
pub(crate) fn format_rfc3339(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use http::{HeaderMap, HeaderValue, Method};

    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(parse_amz_date("2015-08-30"), None);
    }

    /// The `get-vanilla` case of the AWS SigV4 test suite (key `AKIDEXAMPLE`, service
    /// `service`, 2015-08-30): checks the canonical request and key derivation against the
    /// published signature.
    #[test]
    fn the_aws_test_suite_vanilla_get_signature_matches() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        let req = Recorded {
            method: Method::GET,
            path: "/".into(),
            query: None,
            headers,
            body: Bytes::new(),
        };
        let body_hash = hex::encode(Sha256::digest(b""));
        let canonical =
            canonical_request(&req, &["host", "x-amz-date"], "host;x-amz-date", &body_hash);
        assert_eq!(
            canonical,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let sts = format!(
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "service",
        );
        assert_eq!(
            hex::encode(hmac(&key, sts.as_bytes())),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn paths_are_encoded_a_second_time() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("h"));
        let req = Recorded {
            method: Method::POST,
            path: "/model/a.b-v1%3A0/converse".into(),
            query: Some("b=2&a=x%20y".into()),
            headers,
            body: Bytes::new(),
        };
        let canonical = canonical_request(&req, &["host"], "host", "x");
        assert!(
            canonical.starts_with("POST\n/model/a.b-v1%253A0/converse\na=x%20y&b=2\nhost:h\n"),
            "{canonical}"
        );
    }
}
