//! The fake's OAuth token endpoint (the JWT bearer grant, RFC 7523, answered the way
//! `oauth2.googleapis.com/token` answers it) and the access tokens it issues.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::response::Response;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use super::{
    CLIENT_EMAIL, FakeConfig, PRIVATE_KEY_ID, TEST_PUBLIC_KEY, TOKEN_PATH, google_error, now_secs,
};
use crate::server::{Recorded, respond};

const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Decodes `application/x-www-form-urlencoded` text.
pub(super) fn form_pairs(text: &str) -> Vec<(String, String)> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi * 16 + lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    text.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    respond::raw(
        status,
        "application/json; charset=utf-8",
        json!({"error": error, "error_description": description}).to_string(),
    )
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(400, "invalid_grant", description)
}

pub(super) fn token_endpoint(config: &FakeConfig, secret: &str, req: &Recorded) -> Response {
    let form = form_pairs(&String::from_utf8_lossy(&req.body));
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match field("grant_type") {
        Some(JWT_BEARER_GRANT) => {}
        Some(other) => {
            return oauth_error(
                400,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            );
        }
        None => return oauth_error(400, "unsupported_grant_type", "Invalid grant_type: "),
    }
    let Some(assertion) = field("assertion").filter(|a| !a.is_empty()) else {
        return oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let Ok(header) = jsonwebtoken::decode_header(assertion) else {
        return invalid_grant("Invalid JWT: the assertion is not a JWT.");
    };
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return invalid_grant("Invalid JWT Signature.");
    }
    // Google looks the signing key up by `kid`; an unknown id cannot verify.
    if header
        .kid
        .as_deref()
        .is_some_and(|kid| kid != PRIVATE_KEY_ID)
    {
        return invalid_grant("Invalid JWT Signature.");
    }
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY.as_bytes()) else {
        return oauth_error(
            500,
            "internal_failure",
            "the fake's test public key does not parse",
        );
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // Claims are checked below, one by one, for Google's specific answers.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = match jsonwebtoken::decode::<Map<String, Value>>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(_) => return invalid_grant("Invalid JWT Signature."),
    };
    if claims.get("iss").and_then(Value::as_str) != Some(CLIENT_EMAIL) {
        return invalid_grant("Invalid grant: account not found");
    }
    let own_url = format!(
        "http://{}{TOKEN_PATH}",
        req.header("host").unwrap_or_default()
    );
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == own_url,
        Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(own_url.as_str())),
        _ => false,
    };
    if !aud_ok {
        return invalid_grant(&format!(
            "Invalid JWT: Failed audience check. The right audience is {own_url}"
        ));
    }
    let scopes = claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !scopes.split(' ').any(|s| s == CLOUD_PLATFORM_SCOPE) {
        return oauth_error(
            400,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let now = now_secs();
    let iat = claims.get("iat").and_then(Value::as_u64);
    let exp = claims.get("exp").and_then(Value::as_u64);
    let timely = match (iat, exp) {
        (Some(iat), Some(exp)) => exp > iat && exp - iat <= 3600 && exp > now && iat <= now + 300,
        _ => false,
    };
    if !timely {
        return invalid_grant(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values and use a clock with skew to account for clock differences between systems.",
        );
    }
    let lifetime = config.token_lifetime_secs;
    respond::raw(
        200,
        "application/json; charset=utf-8",
        json!({
            "access_token": issue_token(secret, now + lifetime),
            "expires_in": lifetime,
            "token_type": "Bearer",
        })
        .to_string(),
    )
}

fn token_mac(secret: &str, payload: &str) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(payload.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Access tokens are self-verifying (`ya29.fake.<expiry>.<nonce>.<hmac>`), so the fake needs
/// no table of issued tokens.
fn issue_token(secret: &str, expires_at: u64) -> String {
    static NONCE: AtomicU64 = AtomicU64::new(0);
    let payload = format!("{expires_at}.{}", NONCE.fetch_add(1, Ordering::Relaxed));
    format!("ya29.fake.{payload}.{}", token_mac(secret, &payload))
}

enum TokenCheck {
    Valid,
    Expired,
    Invalid,
}

fn check_token(secret: &str, token: &str) -> TokenCheck {
    let Some(rest) = token.strip_prefix("ya29.fake.") else {
        return TokenCheck::Invalid;
    };
    let Some((payload, mac)) = rest.rsplit_once('.') else {
        return TokenCheck::Invalid;
    };
    if token_mac(secret, payload) != mac {
        return TokenCheck::Invalid;
    }
    let expires_at = payload
        .split('.')
        .next()
        .and_then(|e| e.parse::<u64>().ok())
        .unwrap_or_default();
    if now_secs() >= expires_at {
        TokenCheck::Expired
    } else {
        TokenCheck::Valid
    }
}

pub(super) fn check_auth(secret: &str, req: &Recorded, rpc: &str) -> Option<Response> {
    let token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let (message, reason) = match token.map(|t| check_token(secret, t)) {
        Some(TokenCheck::Valid) => return None,
        None => (
            "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "CREDENTIALS_MISSING",
        ),
        Some(TokenCheck::Expired) => (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "ACCESS_TOKEN_EXPIRED",
        ),
        Some(TokenCheck::Invalid) => (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "ACCESS_TOKEN_TYPE_UNSUPPORTED",
        ),
    };
    Some(google_error(
        401,
        "UNAUTHENTICATED",
        message,
        vec![json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "googleapis.com",
            "metadata": {
                "service": "aiplatform.googleapis.com",
                "method": format!("google.cloud.aiplatform.v1.PredictionService.{}", rpc),
            },
        })],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_escapes() {
        assert_eq!(
            form_pairs(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b-c_d&x=1+2"
            ),
            vec![
                ("grant_type".to_owned(), JWT_BEARER_GRANT.to_owned()),
                ("assertion".to_owned(), "a.b-c_d".to_owned()),
                ("x".to_owned(), "1 2".to_owned()),
            ]
        );
    }

    #[test]
    fn tokens_verify_only_with_their_fake_and_expire() {
        let t = issue_token("s1", now_secs() + 60);
        assert!(matches!(check_token("s1", &t), TokenCheck::Valid));
        assert!(matches!(check_token("s2", &t), TokenCheck::Invalid));
        let old = issue_token("s1", now_secs() - 1);
        assert!(matches!(check_token("s1", &old), TokenCheck::Expired));
    }
}
