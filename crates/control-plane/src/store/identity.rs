//! Tenants, users and API tokens.

use super::{BeginWrite, Store, StoreError, new_id, now, q, query_err, with_db};

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct UserRow {
    /// The user id.
    pub id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The e-mail address.
    pub email: String,
    /// `owner`, `admin` or `viewer`.
    pub role: String,
    /// When created.
    pub created_at: i64,
}

/// Who an API token belongs to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenOwner {
    /// The user id.
    pub user_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The user's role.
    pub role: String,
}

impl Store {
    /// Creates a tenant with its owner, its credit account (with an opening grant when
    /// `initial_millicredits` is positive) and the owner's first API token, in one
    /// transaction.
    pub async fn create_tenant(
        &self,
        id: &str,
        name: &str,
        owner_email: &str,
        token_hash: &str,
        initial_millicredits: i64,
    ) -> Result<UserRow, StoreError> {
        let t = now();
        let user = UserRow {
            id: new_id(),
            tenant_id: id.to_owned(),
            email: owner_email.to_owned(),
            role: "owner".to_owned(),
            created_at: t,
        };
        with_db!(self.db, |p| {
            let mut tx = p.begin_write().await.map_err(q("starting a transaction"))?;
            sqlx::query("INSERT INTO tenants (id, name, created_at, settings_version) VALUES ($1, $2, $3, 0)")
                .bind(id)
                .bind(name)
                .bind(t)
                .execute(&mut *tx)
                .await
                .map_err(query_err("creating a tenant", "a tenant with this id"))?;
            sqlx::query("INSERT INTO users (id, tenant_id, email, role, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&user.id)
                .bind(id)
                .bind(owner_email)
                .bind("owner")
                .bind(t)
                .execute(&mut *tx)
                .await
                .map_err(q("creating the owner"))?;
            sqlx::query("INSERT INTO api_tokens (id, tenant_id, user_id, token_hash, name, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(new_id())
                .bind(id)
                .bind(&user.id)
                .bind(token_hash)
                .bind("bootstrap")
                .bind(t)
                .execute(&mut *tx)
                .await
                .map_err(q("creating the owner's token"))?;
            sqlx::query(
                "INSERT INTO credit_accounts (tenant_id, balance, updated_at) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(initial_millicredits.max(0))
            .bind(t)
            .execute(&mut *tx)
            .await
            .map_err(q("opening the credit account"))?;
            if initial_millicredits > 0 {
                sqlx::query("INSERT INTO credit_ledger (id, tenant_id, kind, amount, balance_after, idempotency_key, note, created_at) VALUES ($1, $2, 'grant', $3, $3, 'opening-grant', 'opening grant', $4)")
                    .bind(new_id())
                    .bind(id)
                    .bind(initial_millicredits)
                    .bind(t)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("recording the opening grant"))?;
            }
            tx.commit().await.map_err(q("committing a new tenant"))?;
            Ok(user)
        })
    }

    /// A tenant's name, if it exists.
    pub async fn tenant_name(&self, id: &str) -> Result<Option<String>, StoreError> {
        with_db!(self.db, |p| sqlx::query_scalar::<_, String>(
            "SELECT name FROM tenants WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(p)
        .await)
        .map_err(q("reading a tenant"))
    }

    /// Creates a user.
    pub async fn create_user(
        &self,
        tenant: &str,
        email: &str,
        role: &str,
    ) -> Result<UserRow, StoreError> {
        let user = UserRow {
            id: new_id(),
            tenant_id: tenant.to_owned(),
            email: email.to_owned(),
            role: role.to_owned(),
            created_at: now(),
        };
        with_db!(self.db, |p| sqlx::query(
            "INSERT INTO users (id, tenant_id, email, role, created_at) VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(&user.id)
        .bind(tenant)
        .bind(email)
        .bind(role)
        .bind(user.created_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .map_err(query_err("creating a user", "a user with this e-mail"))?;
        Ok(user)
    }

    /// The users of a tenant.
    pub async fn list_users(&self, tenant: &str) -> Result<Vec<UserRow>, StoreError> {
        with_db!(self.db, |p| sqlx::query_as::<_, UserRow>(
            "SELECT id, tenant_id, email, role, created_at FROM users WHERE tenant_id = $1 ORDER BY created_at, id"
        )
        .bind(tenant)
        .fetch_all(p)
        .await)
        .map_err(q("listing users"))
    }

    /// One user of a tenant.
    pub async fn get_user(&self, tenant: &str, id: &str) -> Result<Option<UserRow>, StoreError> {
        with_db!(self.db, |p| sqlx::query_as::<_, UserRow>(
            "SELECT id, tenant_id, email, role, created_at FROM users WHERE tenant_id = $1 AND id = $2"
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(p)
        .await)
        .map_err(q("reading a user"))
    }

    /// Stores a new API token's hash for a user of a tenant.
    pub async fn create_api_token(
        &self,
        tenant: &str,
        user: &str,
        hash: &str,
        name: &str,
    ) -> Result<String, StoreError> {
        let id = new_id();
        with_db!(self.db, |p| sqlx::query(
            "INSERT INTO api_tokens (id, tenant_id, user_id, token_hash, name, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(&id)
        .bind(tenant)
        .bind(user)
        .bind(hash)
        .bind(name)
        .bind(now())
        .execute(p)
        .await.map(|r| r.rows_affected()))
        .map_err(q("creating an API token"))?;
        Ok(id)
    }

    /// The owner of an unrevoked API token, by the token's hash.
    pub async fn token_owner(&self, hash: &str) -> Result<Option<TokenOwner>, StoreError> {
        with_db!(self.db, |p| sqlx::query_as::<_, TokenOwner>(
            "SELECT u.id AS user_id, u.tenant_id AS tenant_id, u.role AS role FROM api_tokens t JOIN users u ON u.id = t.user_id AND u.tenant_id = t.tenant_id WHERE t.token_hash = $1 AND t.revoked_at IS NULL"
        )
        .bind(hash)
        .fetch_optional(p)
        .await)
        .map_err(q("looking up an API token"))
    }
}
