//! Portal API handlers: tenants, users, tokens, clusters, AI settings and credits. Each one
//! extracts, authenticates and calls a service; authorisation (tenant and role) happens in
//! the service, so no handler can forget it.

use std::sync::Arc;

use atlasai_core::portal::AiSettings;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Body;
use super::auth::{Operator, User};
use crate::error::Error;
use crate::identity::Role;
use crate::state::AppState;
use crate::store::TransferOutcome;
use crate::{ai_settings, credits, identity};

type S = State<Arc<AppState>>;

/// `POST /api/v1/tenants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    id: String,
    name: String,
    owner_email: String,
}

pub async fn create_tenant(
    _op: Operator,
    State(s): S,
    Body(b): Body<NewTenant>,
) -> Result<Response, Error> {
    let out = identity::create_tenant(&s, &b.id, &b.name, &b.owner_email).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `POST /api/v1/auth/token`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    api_token: String,
}

pub async fn login(
    State(s): S,
    Body(b): Body<Login>,
) -> Result<Json<identity::AccessToken>, Error> {
    identity::login(&s, &b.api_token).await.map(Json)
}

#[derive(Debug, Serialize)]
pub struct TenantInfo {
    id: String,
    name: String,
    user_id: String,
    role: Role,
}

pub async fn tenant(
    User(c): User,
    State(s): S,
    Path(tenant): Path<String>,
) -> Result<Json<TenantInfo>, Error> {
    c.require(&tenant, Role::Viewer)?;
    let name = s
        .store
        .tenant_name(&tenant)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    Ok(Json(TenantInfo {
        id: tenant,
        name,
        user_id: c.user_id,
        role: c.role,
    }))
}

pub async fn list_users(
    User(c): User,
    State(s): S,
    Path(tenant): Path<String>,
) -> Result<Response, Error> {
    c.require(&tenant, Role::Admin)?;
    Ok(Json(json!({"users": s.store.list_users(&tenant).await?})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    email: String,
    role: String,
}

pub async fn create_user(
    User(c): User,
    State(s): S,
    Path(tenant): Path<String>,
    Body(b): Body<NewUser>,
) -> Result<Response, Error> {
    let u = identity::create_user(&s, &c, &tenant, &b.email, &b.role).await?;
    Ok((StatusCode::CREATED, Json(u)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
}

pub async fn create_token(
    User(c): User,
    State(s): S,
    Path((tenant, user)): Path<(String, String)>,
    Body(b): Body<NewToken>,
) -> Result<Response, Error> {
    let t = identity::create_api_token(&s, &c, &tenant, &user, &b.name).await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

pub async fn list_clusters(
    User(c): User,
    State(s): S,
    Path(tenant): Path<String>,
) -> Result<Response, Error> {
    let view = ai_settings::get(&s, &c, &tenant).await?;
    Ok(Json(json!({"clusters": view.clusters})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCluster {
    name: String,
}

pub async fn create_cluster(
    User(c): User,
    State(s): S,
    Path(tenant): Path<String>,
    Body(b): Body<NewCluster>,
) -> Result<Response, Error> {
    let out = identity::create_cluster(&s, &c, &tenant, &b.name).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

pub async fn tp_admin_token(
    User(c): User,
    State(s): S,
    Path((tenant, cluster)): Path<(String, String)>,
) -> Result<Response, Error> {
    let t = identity::issue_tp_admin_token(&s, &c, &tenant, &cluster).await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

pub async fn get_settings(
    User(c): User,
    State(s): S,
    Path(tenant): Path<String>,
) -> Result<Response, Error> {
    Ok(Json(ai_settings::get(&s, &c, &tenant).await?).into_response())
}

/// 200 when active, 202 when waiting for a tenant plane, 422 when kept as a draft.
fn saved(out: ai_settings::SaveOutcome) -> Response {
    let status = match out.state {
        "active" => StatusCode::OK,
        "pending_validation" => StatusCode::ACCEPTED,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (status, Json(out)).into_response()
}

pub async fn put_settings(
    User(c): User,
    State(s): S,
    Path(tenant): Path<String>,
    Body(b): Body<AiSettings>,
) -> Result<Response, Error> {
    Ok(saved(ai_settings::save(&s, &c, &tenant, None, b).await?))
}

pub async fn put_cluster_settings(
    User(c): User,
    State(s): S,
    Path((tenant, cluster)): Path<(String, String)>,
    Body(b): Body<AiSettings>,
) -> Result<Response, Error> {
    Ok(saved(
        ai_settings::save(&s, &c, &tenant, Some(&cluster), b).await?,
    ))
}

pub async fn delete_cluster_settings(
    User(c): User,
    State(s): S,
    Path((tenant, cluster)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    ai_settings::delete_override(&s, &c, &tenant, &cluster).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn test_settings(
    User(c): User,
    State(s): S,
    Path(tenant): Path<String>,
    Body(b): Body<AiSettings>,
) -> Result<Response, Error> {
    Ok(Json(ai_settings::test(&s, &c, &tenant, None, b).await?).into_response())
}

pub async fn test_cluster_settings(
    User(c): User,
    State(s): S,
    Path((tenant, cluster)): Path<(String, String)>,
    Body(b): Body<AiSettings>,
) -> Result<Response, Error> {
    Ok(Json(ai_settings::test(&s, &c, &tenant, Some(&cluster), b).await?).into_response())
}

pub async fn list_models(
    User(c): User,
    State(s): S,
    Path(tenant): Path<String>,
    Body(b): Body<AiSettings>,
) -> Result<Response, Error> {
    let models = ai_settings::models(&s, &c, &tenant, None, b).await?;
    Ok(Json(json!({"models": models})).into_response())
}

pub async fn list_cluster_models(
    User(c): User,
    State(s): S,
    Path((tenant, cluster)): Path<(String, String)>,
    Body(b): Body<AiSettings>,
) -> Result<Response, Error> {
    let models = ai_settings::models(&s, &c, &tenant, Some(&cluster), b).await?;
    Ok(Json(json!({"models": models})).into_response())
}

pub async fn credits(
    User(c): User,
    State(s): S,
    Path(tenant): Path<String>,
) -> Result<Response, Error> {
    Ok(Json(credits::view(&s, &c, &tenant).await?).into_response())
}

/// `POST /api/v1/tenants/{tenant}/credits/transfers` (operator).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    kind: String,
    amount: String,
    idempotency_key: String,
    #[serde(default)]
    note: String,
}

pub async fn transfer(
    _op: Operator,
    State(s): S,
    Path(tenant): Path<String>,
    Body(b): Body<Transfer>,
) -> Result<Response, Error> {
    let out =
        credits::transfer(&s, &tenant, &b.kind, &b.amount, &b.idempotency_key, &b.note).await?;
    let balance = s.store.balance(&tenant).await?.unwrap_or_default();
    let applied = matches!(out, TransferOutcome::Applied { .. });
    Ok((
        if applied { StatusCode::CREATED } else { StatusCode::OK },
        Json(json!({"applied": applied, "balance": credits::display(balance), "balance_millicredits": balance})),
    )
        .into_response())
}
