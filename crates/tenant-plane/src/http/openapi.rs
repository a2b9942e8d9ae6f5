//! The OpenAPI description, generated from the handlers' annotations so it cannot drift.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::openai::ApiKeyScheme;

/// Every endpoint of the tenant plane.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "AtlasAI tenant plane", description = "BYOC AI inside the customer's network"),
    paths(super::health::healthz, super::health::readyz, super::ai::test_connection, super::ai::rca, super::ai::runbook, super::ai::chat, super::ai::search, super::jobs::list, super::jobs::get, super::jobs::events, super::status::status, super::audit::egress, openapi_json,
        super::incidents::create, super::incidents::list, super::incidents::get, super::incidents::update,
        super::incidents::add_alert, super::incidents::list_alerts, super::incidents::add_change, super::incidents::list_changes,
        super::alerts::create, super::logs::ingest, super::logs::list,
        super::runbooks::create, super::runbooks::list, super::runbooks::get,
        super::search::search, super::search::status,
        super::metrics::metrics,
        super::openai::chat_completions, super::openai::embeddings, super::openai::list_models, super::openai::get_model),
    modifiers(&AdminToken, &ApiKeyScheme),
)]
pub struct ApiDoc;

#[derive(Debug)]
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "TP_ADMIN_TOKEN, or the token in <data dir>/admin-token",
                    ))
                    .build(),
            ),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta", responses((status = 200, description = "the OpenAPI document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
