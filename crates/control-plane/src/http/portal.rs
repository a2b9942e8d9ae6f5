//! The portal's Settings → AI page: a static HTML shell plus a small vanilla script that
//! talks to the same JSON API as every other client. No tenant data is rendered on the
//! server, and the script writes data into the page only as text, never as markup; a strict
//! Content-Security-Policy allows nothing but this origin's own script and style.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

const PAGE: &str = include_str!("../portal/ai.html");
const SCRIPT: &str = include_str!("../portal/ai.js");
const STYLE: &str = include_str!("../portal/ai.css");

fn with_headers(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

pub async fn index() -> Redirect {
    Redirect::to("/portal/settings/ai")
}

pub async fn ai_page() -> Response {
    with_headers("text/html; charset=utf-8", PAGE)
}

pub async fn script() -> Response {
    with_headers("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    with_headers("text/css; charset=utf-8", STYLE)
}
