//! Tenants, users, roles and tokens: the bootstrap of a tenant by the operator, API tokens
//! exchanged for short-lived JWT access tokens, clusters and their enrollment tokens, and
//! admin tokens for a cluster's tenant-plane admin endpoints.
//!
//! Opaque tokens (API tokens, enrollment tokens, cluster credentials) are 256 random bits;
//! only their SHA-256 is stored, so a database leak does not leak usable tokens.

use std::fmt;

use atlasai_core::TenantId;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::state::AppState;
use crate::store::{ClusterRow, UserRow};

/// A user's role. Each includes the rights of those below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads settings, credits and usage.
    Viewer,
    /// Also changes settings, creates users (not owners), clusters and tokens.
    Admin,
    /// Also creates owners.
    Owner,
}

impl Role {
    /// Parses `owner`, `admin` or `viewer`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated portal user (from a verified access token).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user id.
    pub user_id: String,
    /// The user's tenant.
    pub tenant: String,
    /// The user's role.
    pub role: Role,
}

impl Caller {
    /// Checks that the caller belongs to `tenant` and has at least `role`. Another tenant's
    /// resources look exactly like missing ones.
    pub fn require(&self, tenant: &str, role: Role) -> Result<(), Error> {
        if self.tenant != tenant {
            return Err(Error::NotFound("tenant"));
        }
        if self.role < role {
            return Err(Error::Forbidden(format!(
                "this needs the {role} role; you are {}",
                self.role
            )));
        }
        Ok(())
    }
}

/// A new random token with a recognisable prefix (so leaked tokens are easy to scan for).
pub fn random_token(prefix: &str) -> Result<SecretString, Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::internal("drawing a random token", e))?;
    Ok(SecretString::from(format!(
        "{prefix}{}",
        hex::encode(bytes)
    )))
}

/// The stored form of an opaque token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn check_email(email: &str) -> Result<(), Error> {
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::bad(
            "invalid_email",
            format!("email: {email:?} is not an e-mail address"),
        ))
    }
}

fn check_name(field: &str, name: &str) -> Result<(), Error> {
    if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(Error::bad(
            "invalid_name",
            format!("{field}: use 1 to 100 characters without control characters"),
        ));
    }
    Ok(())
}

/// What the operator gets back for a new tenant. The token is shown once.
#[derive(Debug, Serialize)]
pub struct NewTenant {
    /// The tenant id.
    pub tenant_id: String,
    /// The owner.
    pub owner: UserRow,
    /// The owner's first API token; exchange it at `POST /api/v1/auth/token`.
    pub api_token: String,
}

/// Creates a tenant with its owner (operator only).
pub async fn create_tenant(
    state: &AppState,
    id: &str,
    name: &str,
    owner_email: &str,
) -> Result<NewTenant, Error> {
    TenantId::parse(id).map_err(|e| Error::bad("invalid_tenant", format!("id: {e}")))?;
    check_name("name", name)?;
    check_email(owner_email)?;
    let token = random_token("atl_")?;
    let owner = state
        .store
        .create_tenant(
            id,
            name,
            owner_email,
            &hash_token(token.expose_secret()),
            state.config.initial_millicredits,
        )
        .await?;
    tracing::info!(tenant = id, "tenant created");
    Ok(NewTenant {
        tenant_id: id.to_owned(),
        owner,
        api_token: token.expose_secret().to_owned(),
    })
}

/// An access token.
#[derive(Debug, Serialize)]
pub struct AccessToken {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The user's tenant.
    pub tenant_id: String,
    /// The user.
    pub user_id: String,
    /// The user's role.
    pub role: String,
}

/// Exchanges an API token for an access token.
pub async fn login(state: &AppState, api_token: &str) -> Result<AccessToken, Error> {
    let owner = state
        .store
        .token_owner(&hash_token(api_token.trim()))
        .await?
        .ok_or_else(|| Error::Unauthorized("unknown or revoked API token".to_owned()))?;
    let ttl = state.config.access_token_ttl;
    let token = state
        .keys
        .issue_access(&owner.user_id, &owner.tenant_id, &owner.role, ttl)
        .map_err(|e| Error::internal("signing an access token", e))?;
    Ok(AccessToken {
        access_token: token,
        token_type: "Bearer",
        expires_in: ttl.as_secs(),
        tenant_id: owner.tenant_id,
        user_id: owner.user_id,
        role: owner.role,
    })
}

/// Verifies an access token into a caller.
pub fn authenticate(state: &AppState, token: &str) -> Result<Caller, Error> {
    let claims = state
        .keys
        .verify_access(token)
        .map_err(|e| Error::Unauthorized(e.to_string()))?;
    let role = Role::parse(&claims.role)
        .ok_or_else(|| Error::Unauthorized("invalid access token: unknown role".to_owned()))?;
    Ok(Caller {
        user_id: claims.sub,
        tenant: claims.tenant,
        role,
    })
}

/// Creates a user. Admins create admins and viewers; only owners create owners.
pub async fn create_user(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    email: &str,
    role: &str,
) -> Result<UserRow, Error> {
    caller.require(tenant, Role::Admin)?;
    check_email(email)?;
    let role = Role::parse(role).ok_or_else(|| {
        Error::bad(
            "invalid_role",
            format!("role: {role:?} is not a role; use owner, admin or viewer"),
        )
    })?;
    if role > caller.role {
        return Err(Error::Forbidden(format!(
            "only an owner can create a user with the {role} role"
        )));
    }
    Ok(state
        .store
        .create_user(tenant, email, role.as_str())
        .await?)
}

/// A new API token, shown once.
#[derive(Debug, Serialize)]
pub struct NewApiToken {
    /// The token id.
    pub id: String,
    /// The token.
    pub api_token: String,
}

/// Creates an API token for a user: for yourself, or (admins) for anyone in the tenant.
pub async fn create_api_token(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    user_id: &str,
    name: &str,
) -> Result<NewApiToken, Error> {
    caller.require(tenant, Role::Viewer)?;
    if caller.user_id != user_id {
        caller.require(tenant, Role::Admin)?;
    }
    check_name("name", name)?;
    let user = state
        .store
        .get_user(tenant, user_id)
        .await?
        .ok_or(Error::NotFound("user"))?;
    if Role::parse(&user.role).is_some_and(|r| r > caller.role) {
        return Err(Error::Forbidden(
            "you cannot create tokens for a user with a higher role".to_owned(),
        ));
    }
    let token = random_token("atl_")?;
    let id = state
        .store
        .create_api_token(tenant, user_id, &hash_token(token.expose_secret()), name)
        .await?;
    Ok(NewApiToken {
        id,
        api_token: token.expose_secret().to_owned(),
    })
}

/// A new cluster and its one-time enrollment token.
#[derive(Debug, Serialize)]
pub struct NewCluster {
    /// The cluster id.
    pub cluster_id: String,
    /// Its name.
    pub name: String,
    /// Set this as `TP_CP_ENROLL_TOKEN` on the tenant plane; it works once.
    pub enroll_token: String,
}

/// Creates a cluster (admin).
pub async fn create_cluster(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    name: &str,
) -> Result<NewCluster, Error> {
    caller.require(tenant, Role::Admin)?;
    check_name("name", name)?;
    let token = random_token("atl_enroll_")?;
    let row: ClusterRow = state
        .store
        .create_cluster(tenant, name, &hash_token(token.expose_secret()))
        .await?;
    Ok(NewCluster {
        cluster_id: row.id,
        name: row.name,
        enroll_token: token.expose_secret().to_owned(),
    })
}

/// An admin token for one cluster's tenant-plane admin endpoints.
#[derive(Debug, Serialize)]
pub struct TpAdminToken {
    /// The JWT; send it as `Authorization: Bearer` to the tenant plane.
    pub token: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Issues a tenant-plane admin token (admin).
pub async fn issue_tp_admin_token(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    cluster: &str,
) -> Result<TpAdminToken, Error> {
    caller.require(tenant, Role::Admin)?;
    state
        .store
        .get_cluster(tenant, cluster)
        .await?
        .ok_or(Error::NotFound("cluster"))?;
    let (token, expires_at) = state
        .keys
        .issue_tp_admin(
            &caller.user_id,
            tenant,
            cluster,
            caller.role.as_str(),
            state.config.tp_admin_token_ttl,
        )
        .map_err(|e| Error::internal("signing an admin token", e))?;
    Ok(TpAdminToken { token, expires_at })
}
