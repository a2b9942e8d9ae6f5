//! AI settings rows (active and candidate per tenant or cluster) and the validations tenant
//! planes run for settings the control plane may not check itself.

use super::{BeginWrite, Store, StoreError, now, q, with_db};

/// One stored AI setting. Secrets are sealed (see `crypto`); `settings_json` never holds one.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettingsRow {
    /// The tenant.
    pub tenant_id: String,
    /// `""` for the tenant level, else the cluster.
    pub cluster_id: String,
    /// `active` or `candidate`.
    pub slot: String,
    /// `active`, `draft` or `pending_validation`.
    pub state: String,
    /// The non-secret fields.
    pub settings_json: String,
    /// The sealed secret fields.
    pub secrets_sealed: Option<String>,
    /// Why a draft failed.
    pub reason: Option<String>,
    /// When it passed validation.
    pub validated_at: Option<i64>,
    /// When saved.
    pub updated_at: i64,
    /// Who saved it.
    pub updated_by: String,
    /// Increases with every save of the tenant's settings.
    pub revision: i64,
}

/// A validation a tenant plane should run, with the settings to check.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ValidationRow {
    /// The validation id.
    pub id: String,
    /// The settings row it checks.
    pub scope_cluster_id: String,
    /// Its non-secret fields.
    pub settings_json: String,
    /// Its sealed secrets.
    pub secrets_sealed: Option<String>,
}

const UPSERT: &str = "INSERT INTO ai_settings (tenant_id, cluster_id, slot, state, settings_json, secrets_sealed, reason, validated_at, updated_at, updated_by, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (tenant_id, cluster_id, slot) DO UPDATE SET state = excluded.state, settings_json = excluded.settings_json, secrets_sealed = excluded.secrets_sealed, reason = excluded.reason, validated_at = excluded.validated_at, updated_at = excluded.updated_at, updated_by = excluded.updated_by, revision = excluded.revision";

/// How a validation ended, from the store's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishOutcome {
    /// The candidate became active.
    Activated,
    /// The candidate stays a draft with the reason.
    KeptAsDraft,
    /// The validation was unknown, someone else's, or already finished.
    NotPending,
}

impl Store {
    /// Every settings row of a tenant (both levels, both slots).
    pub async fn list_settings(&self, tenant: &str) -> Result<Vec<SettingsRow>, StoreError> {
        with_db!(self.db, |p| sqlx::query_as::<_, SettingsRow>(
            "SELECT tenant_id, cluster_id, slot, state, settings_json, secrets_sealed, reason, validated_at, updated_at, updated_by, revision FROM ai_settings WHERE tenant_id = $1 ORDER BY cluster_id, slot"
        )
            .bind(tenant)
            .fetch_all(p)
            .await)
        .map_err(q("reading AI settings"))
    }

    /// The tenant's settings version, bumped by every change tenant planes must see.
    pub async fn settings_version(&self, tenant: &str) -> Result<i64, StoreError> {
        with_db!(self.db, |p| sqlx::query_scalar::<_, i64>(
            "SELECT settings_version FROM tenants WHERE id = $1"
        )
        .bind(tenant)
        .fetch_optional(p)
        .await)
        .map(Option::unwrap_or_default)
        .map_err(q("reading the settings version"))
    }

    /// Saves a setting that passed validation as the active one, dropping any candidate for
    /// the same level and superseding its pending validations. Returns the new revision.
    pub async fn save_active(&self, mut row: SettingsRow) -> Result<i64, StoreError> {
        with_db!(self.db, |p| {
            let mut tx = p.begin_write().await.map_err(q("starting a transaction"))?;
            let rev = sqlx::query_scalar::<_, i64>("UPDATE tenants SET settings_version = settings_version + 1 WHERE id = $1 RETURNING settings_version")
                .bind(&row.tenant_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(q("bumping the settings version"))?;
            row.revision = rev;
            row.slot = "active".to_owned();
            row.state = "active".to_owned();
            sqlx::query(UPSERT)
                .bind(&row.tenant_id)
                .bind(&row.cluster_id)
                .bind(&row.slot)
                .bind(&row.state)
                .bind(&row.settings_json)
                .bind(&row.secrets_sealed)
                .bind(&row.reason)
                .bind(row.validated_at)
                .bind(row.updated_at)
                .bind(&row.updated_by)
                .bind(row.revision)
                .execute(&mut *tx)
                .await
                .map_err(q("saving the active AI settings"))?;
            sqlx::query("DELETE FROM ai_settings WHERE tenant_id = $1 AND cluster_id = $2 AND slot = 'candidate'")
                .bind(&row.tenant_id).bind(&row.cluster_id)
                .execute(&mut *tx).await.map_err(q("dropping the old candidate"))?;
            sqlx::query("UPDATE validations SET state = 'superseded', finished_at = $1 WHERE tenant_id = $2 AND scope_cluster_id = $3 AND state = 'pending'")
                .bind(now()).bind(&row.tenant_id).bind(&row.cluster_id)
                .execute(&mut *tx).await.map_err(q("superseding validations"))?;
            tx.commit().await.map_err(q("committing AI settings"))?;
            Ok(rev)
        })
    }

    /// Saves a setting that is not active: a draft (failed validation) or one waiting for a
    /// tenant plane to validate it (`validation_id`). The active setting is untouched.
    pub async fn save_candidate(
        &self,
        mut row: SettingsRow,
        validation_id: Option<&str>,
    ) -> Result<i64, StoreError> {
        with_db!(self.db, |p| {
            let mut tx = p.begin_write().await.map_err(q("starting a transaction"))?;
            let rev = sqlx::query_scalar::<_, i64>("UPDATE tenants SET settings_version = settings_version + 1 WHERE id = $1 RETURNING settings_version")
                .bind(&row.tenant_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(q("bumping the settings version"))?;
            row.revision = rev;
            row.slot = "candidate".to_owned();
            sqlx::query(UPSERT)
                .bind(&row.tenant_id)
                .bind(&row.cluster_id)
                .bind(&row.slot)
                .bind(&row.state)
                .bind(&row.settings_json)
                .bind(&row.secrets_sealed)
                .bind(&row.reason)
                .bind(row.validated_at)
                .bind(row.updated_at)
                .bind(&row.updated_by)
                .bind(row.revision)
                .execute(&mut *tx)
                .await
                .map_err(q("saving a draft of AI settings"))?;
            sqlx::query("UPDATE validations SET state = 'superseded', finished_at = $1 WHERE tenant_id = $2 AND scope_cluster_id = $3 AND state = 'pending'")
                .bind(now()).bind(&row.tenant_id).bind(&row.cluster_id)
                .execute(&mut *tx).await.map_err(q("superseding validations"))?;
            if let Some(id) = validation_id {
                sqlx::query("INSERT INTO validations (id, tenant_id, scope_cluster_id, revision, state, created_at) VALUES ($1, $2, $3, $4, 'pending', $5)")
                    .bind(id).bind(&row.tenant_id).bind(&row.cluster_id).bind(rev).bind(now())
                    .execute(&mut *tx).await.map_err(q("queueing a validation"))?;
            }
            tx.commit().await.map_err(q("committing AI settings"))?;
            Ok(rev)
        })
    }

    /// Removes a cluster's override (the tenant's settings apply again).
    pub async fn delete_cluster_settings(
        &self,
        tenant: &str,
        cluster: &str,
    ) -> Result<bool, StoreError> {
        with_db!(self.db, |p| {
            let mut tx = p.begin_write().await.map_err(q("starting a transaction"))?;
            let n = sqlx::query("DELETE FROM ai_settings WHERE tenant_id = $1 AND cluster_id = $2")
                .bind(tenant)
                .bind(cluster)
                .execute(&mut *tx)
                .await
                .map_err(q("removing a cluster override"))?
                .rows_affected();
            sqlx::query("UPDATE validations SET state = 'superseded', finished_at = $1 WHERE tenant_id = $2 AND scope_cluster_id = $3 AND state = 'pending'")
                .bind(now()).bind(tenant).bind(cluster)
                .execute(&mut *tx).await.map_err(q("superseding validations"))?;
            sqlx::query("UPDATE tenants SET settings_version = settings_version + 1 WHERE id = $1")
                .bind(tenant)
                .execute(&mut *tx)
                .await
                .map_err(q("bumping the settings version"))?;
            tx.commit().await.map_err(q("committing"))?;
            Ok(n > 0)
        })
    }

    /// Validations waiting for this cluster: its own level's and the tenant level's.
    pub async fn pending_validations(
        &self,
        tenant: &str,
        cluster: &str,
    ) -> Result<Vec<ValidationRow>, StoreError> {
        with_db!(self.db, |p| sqlx::query_as::<_, ValidationRow>(
            "SELECT v.id AS id, v.scope_cluster_id AS scope_cluster_id, s.settings_json AS settings_json, s.secrets_sealed AS secrets_sealed FROM validations v JOIN ai_settings s ON s.tenant_id = v.tenant_id AND s.cluster_id = v.scope_cluster_id AND s.slot = 'candidate' AND s.revision = v.revision WHERE v.tenant_id = $1 AND v.state = 'pending' AND (v.scope_cluster_id = '' OR v.scope_cluster_id = $2) ORDER BY v.created_at"
        )
        .bind(tenant)
        .bind(cluster)
        .fetch_all(p)
        .await)
        .map_err(q("reading pending validations"))
    }

    /// Records a tenant plane's verdict on a validation: on success the candidate becomes
    /// active (if it is still the one that was checked), on failure it stays a draft with
    /// the reason. A validation can be answered once, only by a cluster of its tenant that
    /// it was meant for.
    pub async fn finish_validation(
        &self,
        id: &str,
        tenant: &str,
        cluster: &str,
        ok: bool,
        reason: Option<&str>,
    ) -> Result<FinishOutcome, StoreError> {
        let t = now();
        with_db!(self.db, |p| {
            let mut tx = p.begin_write().await.map_err(q("starting a transaction"))?;
            let found = sqlx::query_as::<_, (String, i64)>(
                "UPDATE validations SET state = $1, reason = $2, finished_at = $3, finished_by = $4 WHERE id = $5 AND tenant_id = $6 AND state = 'pending' AND (scope_cluster_id = '' OR scope_cluster_id = $4) RETURNING scope_cluster_id, revision",
            )
            .bind(if ok { "passed" } else { "failed" })
            .bind(reason)
            .bind(t)
            .bind(cluster)
            .bind(id)
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await
            .map_err(q("finishing a validation"))?;
            let Some((scope, revision)) = found else {
                return Ok(FinishOutcome::NotPending);
            };
            let outcome = if ok {
                sqlx::query("DELETE FROM ai_settings WHERE tenant_id = $1 AND cluster_id = $2 AND slot = 'active' AND EXISTS (SELECT 1 FROM ai_settings c WHERE c.tenant_id = $1 AND c.cluster_id = $2 AND c.slot = 'candidate' AND c.revision = $3)")
                    .bind(tenant).bind(&scope).bind(revision)
                    .execute(&mut *tx).await.map_err(q("replacing the active settings"))?;
                let n = sqlx::query("UPDATE ai_settings SET slot = 'active', state = 'active', reason = NULL, validated_at = $1 WHERE tenant_id = $2 AND cluster_id = $3 AND slot = 'candidate' AND revision = $4")
                    .bind(t).bind(tenant).bind(&scope).bind(revision)
                    .execute(&mut *tx).await.map_err(q("activating validated settings"))?
                    .rows_affected();
                if n > 0 {
                    FinishOutcome::Activated
                } else {
                    FinishOutcome::NotPending
                }
            } else {
                sqlx::query("UPDATE ai_settings SET state = 'draft', reason = $1 WHERE tenant_id = $2 AND cluster_id = $3 AND slot = 'candidate' AND revision = $4")
                    .bind(reason).bind(tenant).bind(&scope).bind(revision)
                    .execute(&mut *tx).await.map_err(q("keeping settings as a draft"))?;
                FinishOutcome::KeptAsDraft
            };
            sqlx::query("UPDATE tenants SET settings_version = settings_version + 1 WHERE id = $1")
                .bind(tenant)
                .execute(&mut *tx)
                .await
                .map_err(q("bumping the settings version"))?;
            tx.commit().await.map_err(q("committing a validation"))?;
            Ok(outcome)
        })
    }
}
