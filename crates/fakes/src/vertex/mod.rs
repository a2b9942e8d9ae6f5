//! A fake Google Vertex AI (Gemini) server, with the OAuth token endpoint a service-account key
//! points at served on the same port.
//!
//! - `POST /token` implements the JWT bearer grant (RFC 7523) the way Google's token endpoint
//!   answers it: the assertion's RS256 signature is verified with the test key pair below, and
//!   `iss`, `aud` (this endpoint's own URL), `scope` and `exp - iat <= 3600` are checked; a bad
//!   assertion gets Google's `{"error":"invalid_grant","error_description":…}`.
//! - `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`,
//!   `:streamGenerateContent?alt=sse` and `:predict` need `Authorization: Bearer <a token this
//!   fake issued>` and answer with `google.rpc.Status` errors (`{"error":{code,message,status}}`)
//!   otherwise. Request bodies are checked field by field the way Google's JSON front end does
//!   (`Invalid JSON payload received. Unknown name "x"`), plus Gemini's own rules (roles,
//!   alternation, function response counts), so a translation bug fails loudly.
//!
//! Shapes follow googleapis/googleapis `google/cloud/aiplatform/v1/{prediction_service,content,
//! tool}.proto`. Models whose id starts with `gemini-3` behave like Gemini 3: the first function
//! call of an answer carries a `thoughtSignature`, and a request whose current turn replays a
//! function call without it is rejected.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::FutureExt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::script::{FakeReply, RetryAfter, Step, embedding_for};
use crate::server::{Fake, FakeState, Recorded, respond};

/// The service account the fake knows.
pub const CLIENT_EMAIL: &str = "atlasai-test@atlasai-fake-project.iam.gserviceaccount.com";
/// The id of the test key pair, sent as the JWT `kid`.
pub const PRIVATE_KEY_ID: &str = "3f1c0a9d5b7e2468ace013579bdf2468ace01357";
/// Where the token endpoint is served.
pub const TOKEN_PATH: &str = "/token";
/// The project written into [`service_account_json`] keys.
pub const DEFAULT_PROJECT: &str = "atlasai-fake-project";

// Test material only, never used for anything real: two RSA key pairs generated once with
// `openssl genrsa 2048` and `openssl rsa -pubout`. The first belongs to `CLIENT_EMAIL`; the second
// is a key Google has never seen, for "wrong key" tests.
const TEST_PRIVATE_KEY: &str = include_str!("test_key.pem");
const TEST_PUBLIC_KEY: &str = include_str!("test_key.pub.pem");
const UNKNOWN_PRIVATE_KEY: &str = include_str!("other_key.pem");

const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const SIGNATURE_PREFIX: &[u8] = b"fake-thought-signature:";
/// The value Google documents for replaying function calls that have no signature.
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";
const LEARN_MORE: &str =
    "Learn more: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini";
const CREATE_TIME: &str = "2026-01-15T10:00:00.000000Z";

/// What one fake serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeConfig {
    /// The project in the URL.
    pub project: String,
    /// The location in the URL (`us-central1`, `global`).
    pub location: String,
    /// The publisher model id in the URL.
    pub model: String,
    /// `expires_in` of issued access tokens; the fake rejects a token after it.
    pub token_lifetime_secs: u64,
}

impl FakeConfig {
    /// A configuration with Google's usual token lifetime.
    pub fn new(project: &str, location: &str, model: &str) -> Self {
        FakeConfig {
            project: project.to_owned(),
            location: location.to_owned(),
            model: model.to_owned(),
            token_lifetime_secs: 3599,
        }
    }
}

/// Starts a fake Vertex AI serving one publisher model in one project and location.
pub async fn start(project: &str, location: &str, model: &str) -> Fake {
    start_with(FakeConfig::new(project, location, model)).await
}

/// Starts a fake with a full configuration.
pub async fn start_with(config: FakeConfig) -> Fake {
    // Each fake signs its access tokens with its own secret, so a token from one fake is
    // worthless at another. The configuration travels in the state's free-form `model` field.
    static FAKES: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let secret = format!(
        "vertex-fake-{}-{nanos}",
        FAKES.fetch_add(1, Ordering::Relaxed)
    );
    let config = serde_json::to_string(&config).unwrap_or_default();
    Fake::start(handle_vertex, Some(secret), &config).await
}

/// A complete service-account key file whose `token_uri` points at the fake, for tests.
pub fn service_account_json(fake: &Fake) -> String {
    key_json(fake, TEST_PRIVATE_KEY)
}

/// A well-formed key for the same account but signed with a key Google does not know: the token
/// exchange fails with `invalid_grant: Invalid JWT Signature.`.
pub fn service_account_json_with_unknown_key(fake: &Fake) -> String {
    key_json(fake, UNKNOWN_PRIVATE_KEY)
}

fn key_json(fake: &Fake, private_key: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": DEFAULT_PROJECT,
        "private_key_id": PRIVATE_KEY_ID,
        "private_key": private_key,
        "client_email": CLIENT_EMAIL,
        "client_id": "104503210987654321012",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": format!("{}{TOKEN_PATH}", fake.base_url),
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/atlasai-test%40atlasai-fake-project.iam.gserviceaccount.com",
        "universe_domain": "googleapis.com",
    })
    .to_string()
}

/// Whether a recorded request was a token exchange.
pub fn is_token_request(req: &Recorded) -> bool {
    req.path == TOKEN_PATH
}

fn handle_vertex(
    state: Arc<FakeState>,
    req: Recorded,
) -> futures_util::future::BoxFuture<'static, Response> {
    handle(state, req).boxed()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

async fn handle(state: Arc<FakeState>, req: Recorded) -> Response {
    let config: FakeConfig = match serde_json::from_str(&state.model) {
        Ok(c) => c,
        Err(_) => FakeConfig::new(DEFAULT_PROJECT, "us-central1", "gemini-2.0-flash"),
    };
    let secret = state.expected_key.clone().unwrap_or_default();
    if req.path == TOKEN_PATH && req.method == http::Method::POST {
        return token_endpoint(&config, &secret, &req);
    }
    let Some(route) = Route::parse(&req.path) else {
        return not_found_page(&req);
    };
    if req.method != http::Method::POST {
        return not_found_page(&req);
    }
    let method = match route.method.as_str() {
        "generateContent" => Method::Generate,
        "streamGenerateContent" => Method::Stream {
            sse: query_param(&req, "alt").as_deref() == Some("sse"),
        },
        "predict" => Method::Predict,
        _ => return not_found_page(&req),
    };
    if let Some(resp) = check_auth(&secret, &req, &method) {
        return resp;
    }
    if route.project != config.project {
        return permission_denied(&route);
    }
    if route.location != config.location || route.model != config.model {
        return google_error(
            404,
            "NOT_FOUND",
            &format!(
                "Publisher Model `projects/{}/locations/{}/publishers/google/models/{}` was not found or your project does not have access to it. Please ensure you are using a valid model version. For more information, see: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions",
                route.project, route.location, route.model
            ),
            Vec::new(),
        );
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return bad_request(
                "Invalid JSON payload received. Expected an object at the top level of the request body.".to_owned(),
            );
        }
    };
    let check = match method {
        Method::Predict => validate_predict(&body, &config.model),
        _ => validate_generate(&body, &config.model),
    };
    if let Some(message) = check {
        return bad_request(message);
    }
    let mut step = state.next_step();
    if let Step::Stall(d) = step {
        tokio::time::sleep(d).await;
        step = Step::Reply(state.default_reply());
    }
    match method {
        Method::Predict => predict(&body, &config, step),
        Method::Generate => generate(&config, step, None),
        Method::Stream { sse } => generate(&config, step, Some(sse)),
    }
}

enum Method {
    Generate,
    Stream { sse: bool },
    Predict,
}

impl Method {
    fn rpc(&self) -> &'static str {
        match self {
            Method::Generate => "GenerateContent",
            Method::Stream { .. } => "StreamGenerateContent",
            Method::Predict => "Predict",
        }
    }
}

struct Route {
    project: String,
    location: String,
    model: String,
    method: String,
}

impl Route {
    /// `/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:{method}`.
    fn parse(path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/v1/projects/")?;
        let (project, rest) = rest.split_once('/')?;
        let rest = rest.strip_prefix("locations/")?;
        let (location, rest) = rest.split_once('/')?;
        let rest = rest.strip_prefix("publishers/google/models/")?;
        let (model, method) = rest.split_once(':')?;
        (!model.contains('/')).then(|| Route {
            project: project.to_owned(),
            location: location.to_owned(),
            model: model.to_owned(),
            method: method.to_owned(),
        })
    }

    fn resource(&self) -> String {
        format!(
            "projects/{}/locations/{}/publishers/google/models/{}",
            self.project, self.location, self.model
        )
    }
}

fn query_param(req: &Recorded, name: &str) -> Option<String> {
    form_pairs(req.query.as_deref().unwrap_or_default())
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Decodes `application/x-www-form-urlencoded` text.
fn form_pairs(text: &str) -> Vec<(String, String)> {
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

// ---------------------------------------------------------------------------------------------
// The token endpoint.

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

fn token_endpoint(config: &FakeConfig, secret: &str, req: &Recorded) -> Response {
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
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
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

fn check_auth(secret: &str, req: &Recorded, method: &Method) -> Option<Response> {
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
                "method": format!("google.cloud.aiplatform.v1.PredictionService.{}", method.rpc()),
            },
        })],
    ))
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// A `google.rpc.Status` error body.
fn google_error(code: u16, status: &str, message: &str, details: Vec<Value>) -> Response {
    let mut error = json!({"code": code, "message": message, "status": status});
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    respond::raw(
        code,
        "application/json; charset=UTF-8",
        json!({ "error": error }).to_string(),
    )
}

fn bad_request(message: String) -> Response {
    google_error(400, "INVALID_ARGUMENT", &message, Vec::new())
}

fn permission_denied(route: &Route) -> Response {
    google_error(
        403,
        "PERMISSION_DENIED",
        &format!(
            "Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/{}' (or it may not exist).",
            route.resource()
        ),
        vec![json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "IAM_PERMISSION_DENIED",
            "domain": "aiplatform.googleapis.com",
            "metadata": {"permission": "aiplatform.endpoints.predict", "resource": route.resource()},
        })],
    )
}

/// Google's front end answers unknown URLs with an HTML page, not JSON.
fn not_found_page(req: &Recorded) -> Response {
    respond::raw(
        404,
        "text/html; charset=UTF-8",
        format!(
            "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n  <p><b>404.</b> <ins>That’s an error.</ins>\n  <p>The requested URL <code>{}</code> was not found on this server.  <ins>That’s all we know.</ins>\n",
            req.path
        ),
    )
}

fn error_for_status(config: &FakeConfig, status: u16, retry_after: Option<RetryAfter>) -> Response {
    let resource = format!(
        "projects/{}/locations/{}/publishers/google/models/{}",
        config.project, config.location, config.model
    );
    let mut details = Vec::new();
    let (rpc, message) = match status {
        400 => ("INVALID_ARGUMENT", "Request contains an invalid argument.".to_owned()),
        401 => (
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.".to_owned(),
        ),
        403 => (
            "PERMISSION_DENIED",
            format!("Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/{resource}' (or it may not exist)."),
        ),
        404 => (
            "NOT_FOUND",
            format!("Publisher Model `{resource}` was not found or your project does not have access to it. Please ensure you are using a valid model version. For more information, see: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"),
        ),
        409 => ("ABORTED", "The operation was aborted.".to_owned()),
        429 => {
            if let Some(wait) = retry_after {
                let secs = match wait {
                    RetryAfter::Seconds(s) => format!("{s}s"),
                    RetryAfter::Millis(ms) => format!("{}.{:03}s", ms / 1000, ms % 1000),
                };
                details.push(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": secs}));
            }
            (
                "RESOURCE_EXHAUSTED",
                "Resource exhausted. Please try again later. Please refer to https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.".to_owned(),
            )
        }
        500 => ("INTERNAL", "Internal error encountered.".to_owned()),
        501 => ("UNIMPLEMENTED", "Operation is not implemented, or supported, or enabled.".to_owned()),
        // A 502 comes from Google's front end, as an HTML page.
        502 => {
            return respond::with_retry_after(
                respond::raw(
                    502,
                    "text/html; charset=UTF-8",
                    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 502 (Server Error)!!1</title>\n  <p><b>502.</b> <ins>That’s an error.</ins>\n  <p>The server encountered a temporary error and could not complete your request.<p>Please try again in 30 seconds.  <ins>That’s all we know.</ins>\n",
                ),
                retry_after,
            );
        }
        503 => ("UNAVAILABLE", "The service is currently unavailable.".to_owned()),
        504 => ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete.".to_owned()),
        other => ("UNKNOWN", format!("fake upstream error {other}")),
    };
    respond::with_retry_after(google_error(status, rpc, &message, details), retry_after)
}

// ---------------------------------------------------------------------------------------------
// Request validation, the way the API rejects bad requests.

fn unknown_fields(obj: &Map<String, Value>, allowed: &[&str], at: &str) -> Option<String> {
    let name = obj.keys().find(|k| !allowed.contains(&k.as_str()))?;
    Some(if at.is_empty() {
        format!("Invalid JSON payload received. Unknown name \"{name}\": Cannot find field.")
    } else {
        format!(
            "Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field."
        )
    })
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("Invalid JSON payload received. Expected an object at '{at}'."))
}

const REQUEST_FIELDS: &[&str] = &[
    "model",
    "contents",
    "systemInstruction",
    "cachedContent",
    "tools",
    "toolConfig",
    "labels",
    "safetySettings",
    "modelArmorConfig",
    "generationConfig",
];
const CONTENT_FIELDS: &[&str] = &["role", "parts"];
const PART_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "mediaResolution",
];
const PART_DATA: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
];
const FUNCTION_CALL_FIELDS: &[&str] = &["name", "args", "partialArgs", "willContinue"];
const FUNCTION_RESPONSE_FIELDS: &[&str] = &["name", "response", "parts"];
const GENERATION_FIELDS: &[&str] = &[
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "responseLogprobs",
    "logprobs",
    "presencePenalty",
    "frequencyPenalty",
    "seed",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "routingConfig",
    "thinkingConfig",
    "responseModalities",
    "mediaResolution",
    "speechConfig",
    "audioTimestamp",
    "enableAffectiveDialog",
    "imageConfig",
];
const TOOL_FIELDS: &[&str] = &[
    "functionDeclarations",
    "retrieval",
    "googleSearch",
    "googleSearchRetrieval",
    "codeExecution",
    "urlContext",
    "enterpriseWebSearch",
    "googleMaps",
    "computerUse",
];
const DECLARATION_FIELDS: &[&str] = &[
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
];
/// The OpenAPI subset `Schema` of `openapi.proto`; JSON Schema goes in `parametersJsonSchema`.
const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "default",
    "items",
    "minItems",
    "maxItems",
    "enum",
    "properties",
    "propertyOrdering",
    "required",
    "minProperties",
    "maxProperties",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "additionalProperties",
    "ref",
    "defs",
];

fn validate_generate(body: &Value, model: &str) -> Option<String> {
    check_generate(body, model).err()
}

fn check_generate(body: &Value, model: &str) -> Result<(), String> {
    let obj = object(body, "")?;
    if let Some(m) = unknown_fields(obj, REQUEST_FIELDS, "") {
        return Err(m);
    }
    let no_parts = format!(
        "Unable to submit request because it must include at least one parts field, which describes the prompt input. {LEARN_MORE}"
    );
    let contents = match obj.get("contents") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        _ => return Err(no_parts),
    };
    let mut previous_role = "";
    for (i, content) in contents.iter().enumerate() {
        let at = format!("contents[{i}]");
        let c = object(content, &at)?;
        if let Some(m) = unknown_fields(c, CONTENT_FIELDS, &at) {
            return Err(m);
        }
        let role = c.get("role").and_then(Value::as_str).unwrap_or_default();
        if role != "user" && role != "model" {
            return Err("Please use a valid role: user, model.".to_owned());
        }
        if role == previous_role {
            return Err(
                "Please ensure that multiturn requests alternate between user and model."
                    .to_owned(),
            );
        }
        previous_role = if role == "user" { "user" } else { "model" };
        let parts = match c.get("parts") {
            Some(Value::Array(p)) if !p.is_empty() => p,
            _ => return Err(no_parts),
        };
        for (j, part) in parts.iter().enumerate() {
            check_part(part, &format!("{at}.parts[{j}]"))?;
        }
    }
    check_function_turns(contents)?;
    if model.starts_with("gemini-3") {
        check_thought_signatures(contents)?;
    }
    if let Some(system) = obj.get("systemInstruction") {
        let s = object(system, "system_instruction")?;
        if let Some(m) = unknown_fields(s, CONTENT_FIELDS, "system_instruction") {
            return Err(m);
        }
        for (j, part) in s
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_part(part, &format!("system_instruction.parts[{j}]"))?;
        }
    }
    let declared = check_tools(obj.get("tools"))?;
    check_tool_config(obj.get("toolConfig"), &declared)?;
    check_generation_config(obj.get("generationConfig"))
}

fn check_part(part: &Value, at: &str) -> Result<(), String> {
    let p = object(part, at)?;
    if let Some(m) = unknown_fields(p, PART_FIELDS, at) {
        return Err(m);
    }
    let data: Vec<&str> = PART_DATA
        .iter()
        .copied()
        .filter(|k| p.contains_key(*k))
        .collect();
    if data.len() != 1 {
        return Err(format!(
            "Invalid value at '{at}': exactly one of text, inline_data, file_data, function_call, function_response must be set; found {}.",
            data.len()
        ));
    }
    if let Some(text) = p.get("text") {
        match text.as_str() {
            Some("") => {
                return Err(format!(
                    "Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again. {LEARN_MORE}"
                ));
            }
            Some(_) => {}
            None => return Err(format!("Invalid value at '{at}.text' (TYPE_STRING)")),
        }
    }
    if let Some(call) = p.get("functionCall") {
        let c = object(call, &format!("{at}.function_call"))?;
        if let Some(m) = unknown_fields(c, FUNCTION_CALL_FIELDS, &format!("{at}.function_call")) {
            return Err(m);
        }
        if c.get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!(
                "Unable to submit request because the function call at '{at}' has no name."
            ));
        }
        if c.get("args").is_some_and(|a| !a.is_object()) {
            return Err(format!(
                "Invalid value at '{at}.function_call.args' (type.googleapis.com/google.protobuf.Struct)"
            ));
        }
    }
    if let Some(resp) = p.get("functionResponse") {
        let r = object(resp, &format!("{at}.function_response"))?;
        if let Some(m) = unknown_fields(
            r,
            FUNCTION_RESPONSE_FIELDS,
            &format!("{at}.function_response"),
        ) {
            return Err(m);
        }
        if r.get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!(
                "Unable to submit request because the function response at '{at}' has no name."
            ));
        }
        if !r.get("response").is_some_and(Value::is_object) {
            return Err(format!(
                "Invalid value at '{at}.function_response.response' (type.googleapis.com/google.protobuf.Struct)"
            ));
        }
    }
    if let Some(sig) = p.get("thoughtSignature")
        && sig
            .as_str()
            .is_none_or(|s| STANDARD.decode(s).is_err() && s != SKIP_SIGNATURE)
    {
        return Err(format!(
            "Invalid value at '{at}.thought_signature' (TYPE_BYTES), Base64 decoding failed"
        ));
    }
    Ok(())
}

fn count_parts(content: &Value, key: &str) -> usize {
    content["parts"]
        .as_array()
        .map(|p| p.iter().filter(|p| p.get(key).is_some()).count())
        .unwrap_or(0)
}

/// Each function-call turn must be answered by a turn with as many function responses.
fn check_function_turns(contents: &[Value]) -> Result<(), String> {
    for pair in contents.windows(2) {
        let calls = count_parts(&pair[0], "functionCall");
        let responses = count_parts(&pair[1], "functionResponse");
        if (calls > 0 || responses > 0) && calls != responses {
            return Err("Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.".to_owned());
        }
    }
    if let Some(first) = contents.first()
        && count_parts(first, "functionResponse") > 0
    {
        return Err("Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.".to_owned());
    }
    Ok(())
}

/// Gemini 3: in the current turn (after the last user text), the first function call of each
/// model step must come back with the signature it was issued with.
fn check_thought_signatures(contents: &[Value]) -> Result<(), String> {
    let current = contents
        .iter()
        .rposition(|c| c["role"] == "user" && count_parts(c, "text") > 0)
        .map_or(0, |i| i + 1);
    for (i, content) in contents.iter().enumerate().skip(current) {
        let parts = content["parts"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some(first_call) = parts.iter().find(|p| p.get("functionCall").is_some()) else {
            continue;
        };
        let signed = first_call
            .get("thoughtSignature")
            .and_then(Value::as_str)
            .is_some_and(|s| {
                s == SKIP_SIGNATURE
                    || STANDARD
                        .decode(s)
                        .is_ok_and(|b| b.starts_with(SIGNATURE_PREFIX))
            });
        if !signed {
            let name = first_call["functionCall"]["name"]
                .as_str()
                .unwrap_or_default();
            return Err(format!(
                "Unable to submit request because function call `{name}` in the {}. content block is missing a `thought_signature`. Learn more: https://cloud.google.com/vertex-ai/generative-ai/docs/thought-signatures",
                i + 1
            ));
        }
    }
    Ok(())
}

fn valid_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_schema(schema: &Value, at: &str) -> Result<(), String> {
    let s = object(schema, at)?;
    if let Some(m) = unknown_fields(s, SCHEMA_FIELDS, at) {
        return Err(m);
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            check_schema(v, &format!("{at}.properties[{k}].value"))?;
        }
    }
    if let Some(items) = s.get("items") {
        check_schema(items, &format!("{at}.items"))?;
    }
    Ok(())
}

/// Returns the declared function names.
fn check_tools(tools: Option<&Value>) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    let Some(tools) = tools else { return Ok(names) };
    let tools = tools
        .as_array()
        .ok_or_else(|| "Invalid JSON payload received. Expected an array at 'tools'.".to_owned())?;
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        let t = object(tool, &at)?;
        if let Some(m) = unknown_fields(t, TOOL_FIELDS, &at) {
            return Err(m);
        }
        let decls = t
            .get("functionDeclarations")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (j, decl) in decls.iter().enumerate() {
            let at = format!("{at}.function_declarations[{j}]");
            let d = object(decl, &at)?;
            if let Some(m) = unknown_fields(d, DECLARATION_FIELDS, &at) {
                return Err(m);
            }
            let name = d.get("name").and_then(Value::as_str).unwrap_or_default();
            if !valid_function_name(name) {
                return Err(format!(
                    "* GenerateContentRequest.{at}.name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.) or dashes (-), with a maximum length of 64.\n"
                ));
            }
            if names.iter().any(|n| n == name) {
                return Err(format!(
                    "* GenerateContentRequest.{at}.name: Duplicate function declaration name `{name}`.\n"
                ));
            }
            names.push(name.to_owned());
            match (d.get("parameters"), d.get("parametersJsonSchema")) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "* GenerateContentRequest.{at}: `parameters` and `parameters_json_schema` are mutually exclusive.\n"
                    ));
                }
                (Some(schema), None) => check_schema(schema, &format!("{at}.parameters"))?,
                (None, Some(schema)) => {
                    if schema.get("type").and_then(Value::as_str) != Some("object") {
                        return Err(format!(
                            "* GenerateContentRequest.{at}.parameters_json_schema: the schema must describe an object (\"type\": \"object\").\n"
                        ));
                    }
                }
                (None, None) => {}
            }
        }
    }
    Ok(names)
}

fn check_tool_config(config: Option<&Value>, declared: &[String]) -> Result<(), String> {
    let Some(config) = config else { return Ok(()) };
    let c = object(config, "tool_config")?;
    if let Some(m) = unknown_fields(
        c,
        &["functionCallingConfig", "retrievalConfig"],
        "tool_config",
    ) {
        return Err(m);
    }
    let Some(fc) = c.get("functionCallingConfig") else {
        return Ok(());
    };
    let at = "tool_config.function_calling_config";
    let f = object(fc, at)?;
    if let Some(m) = unknown_fields(
        f,
        &[
            "mode",
            "allowedFunctionNames",
            "streamFunctionCallArguments",
        ],
        at,
    ) {
        return Err(m);
    }
    let mode = f
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("MODE_UNSPECIFIED");
    if !["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"].contains(&mode) {
        return Err(format!(
            "Invalid value at '{at}.mode' (type.googleapis.com/google.cloud.aiplatform.v1.FunctionCallingConfig.Mode), \"{mode}\""
        ));
    }
    if let Some(names) = f.get("allowedFunctionNames").and_then(Value::as_array) {
        if mode != "ANY" && mode != "VALIDATED" {
            return Err(format!(
                "* GenerateContentRequest.{at}.allowed_function_names: allowed_function_names can only be set when mode is ANY or VALIDATED.\n"
            ));
        }
        if let Some(unknown) = names
            .iter()
            .filter_map(Value::as_str)
            .find(|n| !declared.iter().any(|d| d == n))
        {
            return Err(format!(
                "* GenerateContentRequest.{at}.allowed_function_names: function `{unknown}` is not declared in tools.\n"
            ));
        }
    }
    Ok(())
}

fn check_generation_config(config: Option<&Value>) -> Result<(), String> {
    let Some(config) = config else { return Ok(()) };
    let at = "generation_config";
    let g = object(config, at)?;
    if let Some(m) = unknown_fields(g, GENERATION_FIELDS, at) {
        return Err(m);
    }
    let mime = g
        .get("responseMimeType")
        .and_then(Value::as_str)
        .unwrap_or("text/plain");
    if !["text/plain", "application/json", "text/x.enum"].contains(&mime) {
        return Err(format!(
            "Unable to submit request because it has a mimeType parameter with value {mime}, which is not supported. Update the mimeType and try again. {LEARN_MORE}"
        ));
    }
    if g.contains_key("responseSchema") && g.contains_key("responseJsonSchema") {
        return Err("* GenerateContentRequest.generation_config: `response_schema` and `response_json_schema` are mutually exclusive.\n".to_owned());
    }
    if (g.contains_key("responseSchema") || g.contains_key("responseJsonSchema"))
        && mime != "application/json"
    {
        return Err("Unable to submit request because setting a response schema requires response_mime_type application/json. Update the mimeType and try again.".to_owned());
    }
    if let Some(schema) = g.get("responseSchema") {
        check_schema(schema, "generation_config.response_schema")?;
    }
    if let Some(seed) = g.get("seed")
        && seed.as_i64().is_none_or(|s| i32::try_from(s).is_err())
    {
        return Err(format!(
            "Invalid value at 'generation_config.seed' (TYPE_INT32), {seed}"
        ));
    }
    if let Some(max) = g.get("maxOutputTokens")
        && max.as_i64().is_none_or(|m| m < 1)
    {
        return Err(format!(
            "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), {max}"
        ));
    }
    if let Some(t) = g.get("temperature").and_then(Value::as_f64)
        && !(0.0..=2.0).contains(&t)
    {
        return Err(format!(
            "Unable to submit request because it has a temperature value of {t} but the supported range is from 0 (inclusive) to 2.0001 (exclusive). Update the value and try again."
        ));
    }
    if let Some(stops) = g.get("stopSequences")
        && stops
            .as_array()
            .is_none_or(|s| s.len() > 5 || s.iter().any(|x| !x.is_string()))
    {
        return Err("Unable to submit request because it has more than 5 stop sequences or a stop sequence that is not a string.".to_owned());
    }
    Ok(())
}

const TASK_TYPES: &[&str] = &[
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
];

fn validate_predict(body: &Value, model: &str) -> Option<String> {
    check_predict(body, model).err()
}

fn check_predict(body: &Value, model: &str) -> Result<(), String> {
    let obj = object(body, "")?;
    if let Some(m) = unknown_fields(obj, &["instances", "parameters"], "") {
        return Err(m);
    }
    let instances = match obj.get("instances") {
        Some(Value::Array(i)) if !i.is_empty() => i,
        _ => return Err("Unable to submit request because it has no instances. Add at least one instance and try again.".to_owned()),
    };
    if instances.len() > 250 {
        return Err(format!(
            "Unable to submit request because it has {} instances but the model supports up to 250. Reduce the number of instances and try again.",
            instances.len()
        ));
    }
    if model.starts_with("gemini-embedding") && instances.len() > 1 {
        return Err(format!(
            "Unable to submit request because {model} supports only one instance per request. Send one text per request and try again."
        ));
    }
    for (i, instance) in instances.iter().enumerate() {
        let at = format!("instances[{i}]");
        let inst = object(instance, &at)?;
        if let Some(m) = unknown_fields(inst, &["content", "task_type", "title", "mimeType"], &at) {
            return Err(m);
        }
        if !inst.get("content").is_some_and(Value::is_string) {
            return Err(format!(
                "Unable to submit request because {at} has no content. Add the text to embed and try again."
            ));
        }
        if let Some(task) = inst.get("task_type")
            && !task.as_str().is_some_and(|t| TASK_TYPES.contains(&t))
        {
            return Err(format!(
                "Unable to submit request because {at} has an unsupported task_type {task}."
            ));
        }
    }
    if let Some(params) = obj.get("parameters") {
        let p = object(params, "parameters")?;
        if let Some(m) = unknown_fields(p, &["autoTruncate", "outputDimensionality"], "parameters")
        {
            return Err(m);
        }
        if let Some(d) = p.get("outputDimensionality")
            && d.as_u64().is_none_or(|d| d == 0 || d > 3072)
        {
            return Err(format!(
                "Unable to submit request because outputDimensionality {d} is out of range (1 to 3072)."
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Answers.

fn usage(reply: &FakeReply) -> Value {
    json!({
        "promptTokenCount": reply.prompt_tokens,
        "candidatesTokenCount": reply.completion_tokens,
        "totalTokenCount": reply.prompt_tokens + reply.completion_tokens,
        "trafficType": "ON_DEMAND",
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": reply.completion_tokens}],
    })
}

fn response_id() -> String {
    static IDS: AtomicU64 = AtomicU64::new(1);
    format!("fAkE{:08x}Qk9yZmFrZQ", IDS.fetch_add(1, Ordering::Relaxed))
}

/// The parts of an answer: text, then one part per function call. Gemini 3 signs the first
/// call of a step.
fn reply_parts(config: &FakeConfig, reply: &FakeReply) -> Vec<Value> {
    let mut parts = Vec::new();
    if let Some(text) = &reply.text {
        parts.push(json!({"text": text}));
    }
    for (i, call) in reply.tool_calls.iter().enumerate() {
        parts.push(call_part(config, i, &call.name, &call.arguments));
    }
    parts
}

fn call_part(config: &FakeConfig, index: usize, name: &str, args: &Value) -> Value {
    let mut part = json!({"functionCall": {"name": name, "args": args}});
    if index == 0 && config.model.starts_with("gemini-3") {
        let mut sig = SIGNATURE_PREFIX.to_vec();
        sig.extend_from_slice(name.as_bytes());
        part["thoughtSignature"] = Value::from(STANDARD.encode(sig));
    }
    part
}

fn response(
    config: &FakeConfig,
    id: &str,
    parts: Vec<Value>,
    finish: Option<&str>,
    usage: Value,
) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}});
    if let Some(f) = finish {
        candidate["finishReason"] = Value::from(f);
        candidate["avgLogprobs"] = Value::from(-0.125);
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": config.model,
        "createTime": CREATE_TIME,
        "responseId": id,
    })
}

fn complete(config: &FakeConfig, reply: &FakeReply) -> Value {
    let mut parts = reply_parts(config, reply);
    if parts.is_empty() {
        parts.push(json!({"text": ""}));
    }
    response(config, &response_id(), parts, Some("STOP"), usage(reply))
}

/// The chunks of a streamed answer: text in pieces, each function call whole in its own
/// chunk, and a last chunk with `finishReason` and the full usage.
fn chunks(config: &FakeConfig, reply: &FakeReply) -> Vec<Value> {
    let id = response_id();
    let partial = json!({"trafficType": "ON_DEMAND"});
    let mut out: Vec<Value> = reply
        .text_pieces()
        .into_iter()
        .map(|piece| {
            response(
                config,
                &id,
                vec![json!({"text": piece})],
                None,
                partial.clone(),
            )
        })
        .collect();
    for (i, call) in reply.tool_calls.iter().enumerate() {
        out.push(response(
            config,
            &id,
            vec![call_part(config, i, &call.name, &call.arguments)],
            None,
            partial.clone(),
        ));
    }
    // The final chunk repeats the last text piece with the finish reason, as Vertex does; with
    // no text it carries an empty text part.
    let last_parts = match out.last() {
        Some(last) if reply.tool_calls.is_empty() && reply.text.is_some() => {
            let parts = last["candidates"][0]["content"]["parts"].clone();
            out.pop();
            parts
        }
        _ => json!([{"text": ""}]),
    };
    let parts = last_parts.as_array().cloned().unwrap_or_default();
    out.push(response(config, &id, parts, Some("STOP"), usage(reply)));
    out
}

fn sse_frames(chunks: &[Value]) -> Vec<Bytes> {
    chunks
        .iter()
        .map(|c| Bytes::from(format!("data: {c}\r\n\r\n")))
        .collect()
}

/// `streamGenerateContent` without `alt=sse` streams one JSON array.
fn json_array_frames(chunks: &[Value]) -> Vec<Bytes> {
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let lead = if i == 0 { "[" } else { ",\r\n" };
        out.push(Bytes::from(format!("{lead}{c}")));
    }
    out.push(Bytes::from_static(b"]"));
    out
}

/// `stream`: `None` for `generateContent`, `Some(sse)` for `streamGenerateContent`.
fn generate(config: &FakeConfig, step: Step, stream: Option<bool>) -> Response {
    let stream_of = |reply: &FakeReply, keep: fn(usize) -> usize, reset: bool| {
        let all = chunks(config, reply);
        let (mut frames, content_type) = match stream {
            Some(false) => (json_array_frames(&all), "application/json; charset=UTF-8"),
            _ => (sse_frames(&all), "text/event-stream"),
        };
        frames.truncate(keep(frames.len()));
        respond::stream(200, content_type, frames, reset)
    };
    match step {
        Step::Reply(reply) if stream.is_some() => stream_of(&reply, |n| n, false),
        Step::Reply(reply) => respond::raw(200, "application/json; charset=UTF-8", complete(config, &reply).to_string()),
        Step::Fail {
            status,
            retry_after,
        } => error_for_status(config, status, retry_after),
        Step::ContextTooLong => bad_request(
            "The input token count (1048590) exceeds the maximum number of tokens allowed (1048576).".to_owned(),
        ),
        Step::ToolsUnsupported => bad_request("Tool use with function calling is unsupported by the model.".to_owned()),
        Step::Malformed if stream.is_some() => respond::stream(
            200,
            "text/event-stream",
            vec![Bytes::from_static(b"data: {\"candidates\": [{\"content\": {\"role\": \"model\", \"parts\": [{\"text\": \r\n\r\n")],
            false,
        ),
        Step::Malformed => respond::raw(
            200,
            "text/html; charset=UTF-8",
            "<!DOCTYPE html><html><head><title>Sign in - Google Accounts</title></head><body></body></html>",
        ),
        // Without the last chunk no candidate carries a finish reason: the stream was cut.
        Step::Truncated(reply) if stream.is_some() => stream_of(&reply, |n| n - 1, false),
        Step::Truncated(reply) => {
            let full = complete(config, &reply).to_string();
            respond::raw(200, "application/json; charset=UTF-8", full[..full.len() / 2].to_owned())
        }
        Step::Reset(reply) if stream.is_some() => stream_of(&reply, |n| (n / 2).max(1), true),
        Step::Reset(reply) => {
            let full = complete(config, &reply).to_string();
            let half = Bytes::from(full[..full.len() / 2].to_owned());
            respond::stream(200, "application/json; charset=UTF-8", vec![half], true)
        }
        Step::Stall(_) => respond::raw(
            200,
            "application/json; charset=UTF-8",
            complete(config, &FakeReply::text("ok")).to_string(),
        ),
    }
}

fn predict(body: &Value, config: &FakeConfig, step: Step) -> Response {
    match step {
        Step::Reply(_) | Step::ToolsUnsupported | Step::Stall(_) => {}
        Step::Fail {
            status,
            retry_after,
        } => return error_for_status(config, status, retry_after),
        Step::Malformed => {
            return respond::raw(
                200,
                "text/html; charset=UTF-8",
                "<!DOCTYPE html><html><body>oops</body></html>",
            );
        }
        Step::Truncated(_) | Step::Reset(_) => {
            return respond::raw(
                200,
                "application/json; charset=UTF-8",
                "{\"predictions\": [{\"embeddings\": {\"statistics\": {\"truncated\": false, \"token_count\": 4}, \"values\": [0.01,",
            );
        }
        Step::ContextTooLong => {
            return bad_request(
                "The input token count (20482) exceeds the maximum number of tokens allowed (20000).".to_owned(),
            );
        }
    }
    let dims = body
        .pointer("/parameters/outputDimensionality")
        .and_then(Value::as_u64)
        .unwrap_or(768) as usize;
    let texts: Vec<&str> = body["instances"]
        .as_array()
        .map(|i| i.iter().filter_map(|x| x["content"].as_str()).collect())
        .unwrap_or_default();
    let predictions: Vec<Value> = texts
        .iter()
        .map(|t| {
            json!({"embeddings": {
                "statistics": {"truncated": false, "token_count": t.split_whitespace().count()},
                "values": embedding_for(t, dims),
            }})
        })
        .collect();
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    respond::raw(
        200,
        "application/json; charset=UTF-8",
        json!({"predictions": predictions, "metadata": {"billableCharacterCount": chars}})
            .to_string(),
    )
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

    #[test]
    fn validation_rejects_what_the_api_rejects() {
        let ok = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
        assert_eq!(validate_generate(&ok, "gemini-2.0-flash"), None);
        let snake = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generation_config": {}});
        assert!(
            validate_generate(&snake, "m")
                .unwrap()
                .contains("Unknown name \"generation_config\"")
        );
        let twice = json!({"contents": [{"role": "user", "parts": [{"text": "a"}]}, {"role": "user", "parts": [{"text": "b"}]}]});
        assert!(
            validate_generate(&twice, "m")
                .unwrap()
                .contains("alternate")
        );
        let id = json!({"contents": [
            {"role": "user", "parts": [{"text": "a"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}, "id": "x"}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
        ]});
        assert!(
            validate_generate(&id, "m")
                .unwrap()
                .contains("Unknown name \"id\"")
        );
        let missing = json!({"contents": [
            {"role": "user", "parts": [{"text": "a"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}, {"functionCall": {"name": "g", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
        ]});
        assert!(
            validate_generate(&missing, "m")
                .unwrap()
                .contains("number of function response parts")
        );
        let unsigned = json!({"contents": [
            {"role": "user", "parts": [{"text": "a"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
        ]});
        assert_eq!(validate_generate(&unsigned, "gemini-2.0-flash"), None);
        assert!(
            validate_generate(&unsigned, "gemini-3-pro-preview")
                .unwrap()
                .contains("thought_signature")
        );
        let schema_in_parameters = json!({
            "contents": [{"role": "user", "parts": [{"text": "a"}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "const": 1}}]}],
        });
        assert!(
            validate_generate(&schema_in_parameters, "m")
                .unwrap()
                .contains("Unknown name \"const\"")
        );
    }
}
