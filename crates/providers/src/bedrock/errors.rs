//! Bedrock error responses and stream exceptions mapped to [`ProviderError`].
//!
//! restJson1 errors carry their code in the `x-amzn-ErrorType` header (which wins) or in the
//! body's `code` / `__type`, possibly as a shape id (`namespace#Name`) or with a `:url` suffix,
//! and their text in `message`, `Message` or `errorMessage` (smithy-rs
//! `aws-smithy-json/src/protocol/error.rs`). Codes and statuses are from the Bedrock Runtime
//! service model.

use atlasai_core::ProviderErrorKind;
use http::HeaderMap;
use serde_json::Value;

use crate::error::{ProviderError, kind_for_status, refine_bad_request};
use crate::http::header_str;

/// Maps a non-success HTTP response.
pub(crate) fn map_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let body_code = parsed.as_ref().and_then(|v| {
        v.get("code")
            .or_else(|| v.get("__type"))
            .and_then(Value::as_str)
    });
    let code = header_str(headers, "x-amzn-errortype")
        .or(body_code)
        .map(sanitize_code)
        .filter(|c| !c.is_empty());
    let message = parsed.as_ref().and_then(message_of).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            format!("HTTP {status} with an empty body")
        } else {
            text.chars().take(300).collect()
        }
    });
    let kind = kind_for(code, kind_for_status(status), &message);
    let mut err = ProviderError::new(kind, message);
    err.code = code.map(str::to_owned);
    err
}

/// Maps an exception event inside a ConverseStream body (`:message-type: exception`). The
/// `:exception-type` is the union member name (`throttlingException`), the payload is the
/// exception's JSON.
pub(crate) fn map_exception(exception_type: &str, payload: &[u8]) -> ProviderError {
    let code = upper_first(exception_type);
    let message = serde_json::from_slice::<Value>(payload)
        .ok()
        .as_ref()
        .and_then(message_of)
        .unwrap_or_else(|| format!("{code} in the response stream"));
    let kind = kind_for(Some(&code), ProviderErrorKind::Unavailable, &message);
    ProviderError::new(kind, message).with_code(code)
}

fn message_of(v: &Value) -> Option<String> {
    ["message", "Message", "errorMessage"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

/// `ValidationException:http://internal.amazon.com/coral/...` and
/// `com.amazonaws.bedrock#ValidationException` both become `ValidationException`.
fn sanitize_code(code: &str) -> &str {
    let code = code.split(':').next().unwrap_or(code);
    code.rsplit('#').next().unwrap_or(code).trim()
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// The error code decides where it is known; the status otherwise.
fn kind_for(code: Option<&str>, by_status: ProviderErrorKind, message: &str) -> ProviderErrorKind {
    let kind = match code {
        Some(
            "ThrottlingException" | "TooManyRequestsException" | "ServiceQuotaExceededException",
        ) => ProviderErrorKind::RateLimited,
        Some(
            "ServiceUnavailableException"
            | "InternalServerException"
            | "InternalFailure"
            | "ModelNotReadyException"
            | "ModelTimeoutException"
            | "ModelErrorException"
            | "ModelStreamErrorException",
        ) => ProviderErrorKind::Unavailable,
        Some(
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "MissingAuthenticationTokenException"
            | "ExpiredTokenException"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch",
        ) => ProviderErrorKind::Authentication,
        Some("ResourceNotFoundException") => ProviderErrorKind::NotFound,
        Some("ValidationException") => ProviderErrorKind::BadRequest,
        _ => by_status,
    };
    let kind = refine_bad_request(kind, message);
    // "This model doesn't support the toolConfig.toolChoice.any field." is a missing tool
    // capability too, in words the shared matcher does not know.
    if kind == ProviderErrorKind::BadRequest
        && message
            .to_ascii_lowercase()
            .contains("doesn't support the toolconfig")
    {
        return ProviderErrorKind::ToolsNotSupported;
    }
    kind
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn with_type(t: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-amzn-ErrorType", HeaderValue::from_static(t));
        h
    }

    #[test]
    fn codes_come_from_the_header_first_then_the_body() {
        let e = map_error(
            429,
            &with_type("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            br#"{"message":"Too many requests, please wait before trying again."}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::RateLimited);
        assert_eq!(e.code.as_deref(), Some("ThrottlingException"));
        assert_eq!(
            e.message,
            "Too many requests, please wait before trying again."
        );

        let e = map_error(
            400,
            &HeaderMap::new(),
            br#"{"__type":"com.amazonaws.bedrock#ValidationException","Message":"Input is too long for requested model."}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::ContextTooLong);
        assert_eq!(e.code.as_deref(), Some("ValidationException"));

        let e = map_error(
            400,
            &with_type("ValidationException"),
            br#"{"message":"This model doesn't support tool use."}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::ToolsNotSupported);
        let e = map_error(
            400,
            &with_type("ValidationException"),
            br#"{"message":"This model doesn't support the toolConfig.toolChoice.any field. Remove toolConfig.toolChoice.any and try again."}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::ToolsNotSupported);
        let e = map_error(
            400,
            &with_type("ValidationException"),
            br#"{"message":"A conversation must alternate between user and assistant roles."}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::BadRequest);
    }

    #[test]
    fn statuses_and_codes_cover_auth_availability_and_missing_models() {
        let cases = [
            (
                403,
                "InvalidSignatureException",
                ProviderErrorKind::Authentication,
            ),
            (
                403,
                "UnrecognizedClientException",
                ProviderErrorKind::Authentication,
            ),
            (
                403,
                "AccessDeniedException",
                ProviderErrorKind::Authentication,
            ),
            (
                400,
                "ExpiredTokenException",
                ProviderErrorKind::Authentication,
            ),
            (
                404,
                "ResourceNotFoundException",
                ProviderErrorKind::NotFound,
            ),
            (
                429,
                "ModelNotReadyException",
                ProviderErrorKind::Unavailable,
            ),
            (408, "ModelTimeoutException", ProviderErrorKind::Unavailable),
            (424, "ModelErrorException", ProviderErrorKind::Unavailable),
            (
                500,
                "InternalServerException",
                ProviderErrorKind::Unavailable,
            ),
            (
                503,
                "ServiceUnavailableException",
                ProviderErrorKind::Unavailable,
            ),
        ];
        for (status, code, kind) in cases {
            let e = map_error(status, &with_type(code), br#"{"message":"x"}"#);
            assert_eq!(e.kind, kind, "{code}");
            assert_eq!(e.code.as_deref(), Some(code));
        }
        let e = map_error(502, &HeaderMap::new(), b"<html>Bad Gateway</html>");
        assert_eq!(e.kind, ProviderErrorKind::Unavailable);
        assert!(e.message.contains("Bad Gateway"));
        let e = map_error(500, &HeaderMap::new(), b"");
        assert_eq!(e.message, "HTTP 500 with an empty body");
    }

    #[test]
    fn stream_exceptions_map_by_their_member_name() {
        let e = map_exception("throttlingException", br#"{"message":"Too many tokens"}"#);
        assert_eq!(e.kind, ProviderErrorKind::RateLimited);
        assert_eq!(e.code.as_deref(), Some("ThrottlingException"));
        let e = map_exception(
            "validationException",
            br#"{"message":"Input is too long for requested model."}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::ContextTooLong);
        let e = map_exception(
            "modelStreamErrorException",
            br#"{"message":"boom","originalStatusCode":500}"#,
        );
        assert_eq!(e.kind, ProviderErrorKind::Unavailable);
        let e = map_exception("somethingNew", b"not json");
        assert_eq!(e.kind, ProviderErrorKind::Unavailable);
        assert_eq!(e.message, "SomethingNew in the response stream");
    }
}
