//! Clusters (tenant planes): enrollment, credentials and their last status report.

use super::{Store, StoreError, new_id, now, q, query_err, with_db};

/// A cluster as the portal shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClusterRow {
    /// The cluster id.
    pub id: String,
    /// The tenant.
    pub tenant_id: String,
    /// Its name.
    pub name: String,
    /// When created.
    pub created_at: i64,
    /// When it enrolled, if it has.
    pub enrolled_at: Option<i64>,
    /// When it last called.
    pub last_seen_at: Option<i64>,
    /// Its last status report (JSON).
    pub status_json: Option<String>,
}

/// The cluster a credential belongs to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EnrolledCluster {
    /// The cluster id.
    pub id: String,
    /// The tenant.
    pub tenant_id: String,
}

impl Store {
    /// Creates a cluster that can enroll once with the token whose hash is given.
    pub async fn create_cluster(
        &self,
        tenant: &str,
        name: &str,
        enroll_hash: &str,
    ) -> Result<ClusterRow, StoreError> {
        let row = ClusterRow {
            id: new_id(),
            tenant_id: tenant.to_owned(),
            name: name.to_owned(),
            created_at: now(),
            enrolled_at: None,
            last_seen_at: None,
            status_json: None,
        };
        with_db!(self.db, |p| sqlx::query(
            "INSERT INTO clusters (id, tenant_id, name, enroll_token_hash, created_at) VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(&row.id)
        .bind(tenant)
        .bind(name)
        .bind(enroll_hash)
        .bind(row.created_at)
        .execute(p)
        .await.map(|r| r.rows_affected()))
        .map_err(query_err("creating a cluster", "a cluster with this name"))?;
        Ok(row)
    }

    /// The clusters of a tenant.
    pub async fn list_clusters(&self, tenant: &str) -> Result<Vec<ClusterRow>, StoreError> {
        with_db!(self.db, |p| sqlx::query_as::<_, ClusterRow>(
            "SELECT id, tenant_id, name, created_at, enrolled_at, last_seen_at, status_json FROM clusters WHERE tenant_id = $1 ORDER BY created_at, id"
        )
            .bind(tenant)
            .fetch_all(p)
            .await)
        .map_err(q("listing clusters"))
    }

    /// One cluster of a tenant.
    pub async fn get_cluster(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<ClusterRow>, StoreError> {
        with_db!(self.db, |p| sqlx::query_as::<_, ClusterRow>(
            "SELECT id, tenant_id, name, created_at, enrolled_at, last_seen_at, status_json FROM clusters WHERE tenant_id = $1 AND id = $2"
        )
            .bind(tenant)
            .bind(id)
            .fetch_optional(p)
            .await)
        .map_err(q("reading a cluster"))
    }

    /// Spends an enrollment token: the cluster gets its credential and the token stops
    /// working, atomically (two tenant planes racing with one token: one wins).
    pub async fn enroll(
        &self,
        enroll_hash: &str,
        credential_hash: &str,
    ) -> Result<Option<EnrolledCluster>, StoreError> {
        with_db!(self.db, |p| sqlx::query_as::<_, EnrolledCluster>(
            "UPDATE clusters SET enroll_token_hash = NULL, credential_hash = $1, enrolled_at = $2, last_seen_at = $2 WHERE enroll_token_hash = $3 RETURNING id, tenant_id"
        )
        .bind(credential_hash)
        .bind(now())
        .bind(enroll_hash)
        .fetch_optional(p)
        .await)
        .map_err(q("enrolling a cluster"))
    }

    /// The cluster a credential belongs to.
    pub async fn cluster_by_credential(
        &self,
        credential_hash: &str,
    ) -> Result<Option<EnrolledCluster>, StoreError> {
        with_db!(self.db, |p| sqlx::query_as::<_, EnrolledCluster>(
            "SELECT id, tenant_id FROM clusters WHERE credential_hash = $1"
        )
        .bind(credential_hash)
        .fetch_optional(p)
        .await)
        .map_err(q("authenticating a cluster"))
    }

    /// Records a cluster's status report (or just that it was seen, with `None`).
    pub async fn touch_cluster(
        &self,
        cluster: &str,
        status_json: Option<&str>,
    ) -> Result<(), StoreError> {
        match status_json {
            Some(s) => with_db!(self.db, |p| sqlx::query(
                "UPDATE clusters SET status_json = $1, last_seen_at = $2 WHERE id = $3"
            )
            .bind(s)
            .bind(now())
            .bind(cluster)
            .execute(p)
            .await
            .map(|r| r.rows_affected())),
            None => with_db!(self.db, |p| sqlx::query(
                "UPDATE clusters SET last_seen_at = $1 WHERE id = $2"
            )
            .bind(now())
            .bind(cluster)
            .execute(p)
            .await
            .map(|r| r.rows_affected())),
        }
        .map(|_| ())
        .map_err(q("recording a cluster's status"))
    }
}
