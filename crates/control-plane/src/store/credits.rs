//! AI credits: one balance per tenant and an append-only ledger, changed together in one
//! transaction. Amounts are thousandths of a credit.
//!
//! A debit is a conditional update (`... WHERE balance >= $amount`), so concurrent debits can
//! never take a balance below zero, and every ledger row carries a unique idempotency key per
//! tenant, so a retried request never applies twice. Managed calls reserve an estimate first
//! (`credit_reservations`, keyed by request id), then settle on the actual usage (refunding the
//! difference) or release the whole hold on failure; a reservation moves out of `held` exactly
//! once.

use super::{BeginWrite, Store, StoreError, new_id, now, q, with_db};

/// A ledger row.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct LedgerRow {
    /// The row id.
    pub id: String,
    /// `grant`, `adjustment`, `reserve`, `settle`, `release` or `usage`.
    pub kind: String,
    /// The signed change to the balance.
    pub amount: i64,
    /// The balance after the change.
    pub balance_after: i64,
    /// The managed request, for reserve/settle/release.
    pub request_id: Option<String>,
    /// The model, for settle and usage rows.
    pub model: Option<String>,
    /// Prompt tokens, for settle and usage rows.
    pub prompt_tokens: Option<i64>,
    /// Completion tokens, for settle and usage rows.
    pub completion_tokens: Option<i64>,
    /// A note.
    pub note: Option<String>,
    /// When.
    pub created_at: i64,
}

/// A reservation for one managed request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Reservation {
    /// The request id.
    pub request_id: String,
    /// The amount held.
    pub amount: i64,
    /// `held`, `settled` or `released`.
    pub state: String,
    /// What was finally charged (settled only).
    pub charged: Option<i64>,
    /// The stored answer (settled only), replayed to retries.
    pub response_json: Option<String>,
}

/// Why a debit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CreditError {
    /// The balance does not cover the amount.
    #[error(
        "insufficient credits: the balance is {balance} and this needs {needed} (thousandths of a credit)"
    )]
    Insufficient {
        /// The balance now.
        balance: i64,
        /// What was needed.
        needed: i64,
    },
    /// The tenant has no credit account (no such tenant).
    #[error("no credit account for this tenant")]
    NoAccount,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of a reservation.
#[derive(Debug, Clone)]
pub enum ReserveOutcome {
    /// The amount is now held; the balance after.
    Reserved {
        /// The balance after the hold.
        balance: i64,
    },
    /// This request id was reserved before (a retry): nothing new was held.
    Existing(Reservation),
}

/// The outcome of settling or releasing.
#[derive(Debug, Clone)]
pub enum SettleOutcome {
    /// Done; what was charged in the end and the balance after.
    Done {
        /// Charged.
        charged: i64,
        /// Balance after.
        balance: i64,
    },
    /// It had been settled or released already (a retry).
    AlreadyFinished(Reservation),
}

/// The outcome of a grant or adjustment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferOutcome {
    /// Applied; the balance after.
    Applied {
        /// Balance after.
        balance: i64,
    },
    /// This idempotency key was applied before; nothing changed.
    Duplicate,
}

/// Actual usage of a settled call.
#[derive(Debug, Clone)]
pub struct SettleUsage<'a> {
    /// The model.
    pub model: &'a str,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
}

impl Store {
    /// The balance, or `None` without an account.
    pub async fn balance(&self, tenant: &str) -> Result<Option<i64>, StoreError> {
        with_db!(self.db, |p| sqlx::query_scalar::<_, i64>(
            "SELECT balance FROM credit_accounts WHERE tenant_id = $1"
        )
        .bind(tenant)
        .fetch_optional(p)
        .await)
        .map_err(q("reading a balance"))
    }

    /// The most recent ledger rows, newest first.
    pub async fn recent_ledger(
        &self,
        tenant: &str,
        limit: i64,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        with_db!(self.db, |p| sqlx::query_as::<_, LedgerRow>(
            "SELECT id, kind, amount, balance_after, request_id, model, prompt_tokens, completion_tokens, note, created_at FROM credit_ledger WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(p)
        .await)
        .map_err(q("reading the ledger"))
    }

    /// The sum of every ledger amount; equals the balance when the books are right.
    pub async fn ledger_sum(&self, tenant: &str) -> Result<i64, StoreError> {
        with_db!(self.db, |p| sqlx::query_scalar::<_, i64>(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM credit_ledger WHERE tenant_id = $1"
        )
        .bind(tenant)
        .fetch_one(p)
        .await)
        .map_err(q("summing the ledger"))
    }

    /// A grant (positive) or adjustment (either sign), applied once per idempotency key. An
    /// adjustment that would take the balance below zero is refused.
    pub async fn transfer(
        &self,
        tenant: &str,
        kind: &str,
        amount: i64,
        idempotency_key: &str,
        note: &str,
    ) -> Result<TransferOutcome, CreditError> {
        let t = now();
        with_db!(self.db, |p| {
            let mut tx = p.begin_write().await.map_err(q("starting a transaction"))?;
            let balance = sqlx::query_scalar::<_, i64>(
                "UPDATE credit_accounts SET balance = balance + $1, updated_at = $2 WHERE tenant_id = $3 AND balance + $1 >= 0 RETURNING balance",
            )
            .bind(amount)
            .bind(t)
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await
            .map_err(q("applying a grant"))?;
            let Some(balance) = balance else {
                drop(tx);
                return match self.balance(tenant).await? {
                    None => Err(CreditError::NoAccount),
                    Some(b) => Err(CreditError::Insufficient {
                        balance: b,
                        needed: -amount,
                    }),
                };
            };
            let inserted = sqlx::query(
                "INSERT INTO credit_ledger (id, tenant_id, kind, amount, balance_after, idempotency_key, note, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
            )
            .bind(new_id())
            .bind(tenant)
            .bind(kind)
            .bind(amount)
            .bind(balance)
            .bind(idempotency_key)
            .bind(note)
            .bind(t)
            .execute(&mut *tx)
            .await
            .map_err(q("recording a grant"))?
            .rows_affected();
            if inserted == 0 {
                // Applied before: undo this attempt's balance change.
                tx.rollback()
                    .await
                    .map_err(q("rolling back a duplicate grant"))?;
                return Ok(TransferOutcome::Duplicate);
            }
            tx.commit().await.map_err(q("committing a grant"))?;
            Ok(TransferOutcome::Applied { balance })
        })
    }

    /// Holds `amount` for a managed request. Refused with [`CreditError::Insufficient`] when
    /// the balance does not cover it; a second call with the same request id holds nothing
    /// and returns the first reservation.
    pub async fn reserve(
        &self,
        tenant: &str,
        request_id: &str,
        amount: i64,
    ) -> Result<ReserveOutcome, CreditError> {
        let t = now();
        let outcome = with_db!(self.db, |p| {
            let mut tx = p.begin_write().await.map_err(q("starting a transaction"))?;
            let fresh = sqlx::query(
                "INSERT INTO credit_reservations (tenant_id, request_id, amount, state, created_at) VALUES ($1, $2, $3, 'held', $4) ON CONFLICT (tenant_id, request_id) DO NOTHING",
            )
            .bind(tenant)
            .bind(request_id)
            .bind(amount)
            .bind(t)
            .execute(&mut *tx)
            .await
            .map_err(q("reserving credits"))?
            .rows_affected();
            if fresh == 0 {
                tx.rollback().await.map_err(q("rolling back"))?;
                None
            } else {
                let balance = sqlx::query_scalar::<_, i64>(
                    "UPDATE credit_accounts SET balance = balance - $1, updated_at = $2 WHERE tenant_id = $3 AND balance >= $1 RETURNING balance",
                )
                .bind(amount)
                .bind(t)
                .bind(tenant)
                .fetch_optional(&mut *tx)
                .await
                .map_err(q("holding credits"))?;
                match balance {
                    None => {
                        tx.rollback().await.map_err(q("rolling back"))?;
                        Some(Err(()))
                    }
                    Some(balance) => {
                        sqlx::query(
                            "INSERT INTO credit_ledger (id, tenant_id, kind, amount, balance_after, idempotency_key, request_id, created_at) VALUES ($1, $2, 'reserve', $3, $4, $5, $6, $7)",
                        )
                        .bind(new_id())
                        .bind(tenant)
                        .bind(-amount)
                        .bind(balance)
                        .bind(format!("reserve:{request_id}"))
                        .bind(request_id)
                        .bind(t)
                        .execute(&mut *tx)
                        .await
                        .map_err(q("recording a reservation"))?;
                        tx.commit().await.map_err(q("committing a reservation"))?;
                        Some(Ok(balance))
                    }
                }
            }
        });
        match outcome {
            Some(Ok(balance)) => Ok(ReserveOutcome::Reserved { balance }),
            Some(Err(())) => match self.balance(tenant).await? {
                None => Err(CreditError::NoAccount),
                Some(balance) => Err(CreditError::Insufficient {
                    balance,
                    needed: amount,
                }),
            },
            None => match self.reservation(tenant, request_id).await? {
                Some(r) => Ok(ReserveOutcome::Existing(r)),
                // The conflicting row vanished: impossible (reservations are never deleted),
                // but report it as a store problem rather than guessing.
                None => Err(CreditError::NoAccount),
            },
        }
    }

    /// A reservation by request id.
    pub async fn reservation(
        &self,
        tenant: &str,
        request_id: &str,
    ) -> Result<Option<Reservation>, StoreError> {
        with_db!(self.db, |p| sqlx::query_as::<_, Reservation>(
            "SELECT request_id, amount, state, charged, response_json FROM credit_reservations WHERE tenant_id = $1 AND request_id = $2"
        )
        .bind(tenant)
        .bind(request_id)
        .fetch_optional(p)
        .await)
        .map_err(q("reading a reservation"))
    }

    /// Settles a held reservation on actual cost: the difference is refunded. The charge is
    /// capped at the hold (the estimate is an upper bound), so settling never overdraws. The
    /// answer is stored so a retry of the same request gets it again.
    pub async fn settle(
        &self,
        tenant: &str,
        request_id: &str,
        actual: i64,
        usage: &SettleUsage<'_>,
        response_json: &str,
    ) -> Result<SettleOutcome, CreditError> {
        self.finish_reservation(tenant, request_id, Some((actual, usage, response_json)))
            .await
    }

    /// Releases a held reservation in full (the call failed).
    pub async fn release(
        &self,
        tenant: &str,
        request_id: &str,
    ) -> Result<SettleOutcome, CreditError> {
        self.finish_reservation(tenant, request_id, None).await
    }

    async fn finish_reservation(
        &self,
        tenant: &str,
        request_id: &str,
        settle: Option<(i64, &SettleUsage<'_>, &str)>,
    ) -> Result<SettleOutcome, CreditError> {
        let t = now();
        let (state, response) = match settle {
            Some((_, _, r)) => ("settled", Some(r)),
            None => ("released", None),
        };
        let done = with_db!(self.db, |p| {
            let mut tx = p.begin_write().await.map_err(q("starting a transaction"))?;
            let held = sqlx::query_scalar::<_, i64>(
                "UPDATE credit_reservations SET state = $1, response_json = $2 WHERE tenant_id = $3 AND request_id = $4 AND state = 'held' RETURNING amount",
            )
            .bind(state)
            .bind(response)
            .bind(tenant)
            .bind(request_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(q("finishing a reservation"))?;
            match held {
                None => {
                    tx.rollback().await.map_err(q("rolling back"))?;
                    None
                }
                Some(held) => {
                    let charged = settle
                        .map(|(actual, _, _)| actual.clamp(0, held))
                        .unwrap_or(0);
                    let refund = held - charged;
                    sqlx::query("UPDATE credit_reservations SET charged = $1 WHERE tenant_id = $2 AND request_id = $3")
                        .bind(charged)
                        .bind(tenant)
                        .bind(request_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(q("recording the charge"))?;
                    let balance = sqlx::query_scalar::<_, i64>(
                        "UPDATE credit_accounts SET balance = balance + $1, updated_at = $2 WHERE tenant_id = $3 RETURNING balance",
                    )
                    .bind(refund)
                    .bind(t)
                    .bind(tenant)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(q("refunding a reservation"))?;
                    let (model, pt, ct, note) = match settle {
                        Some((actual, u, _)) => (
                            Some(u.model),
                            Some(u.prompt_tokens),
                            Some(u.completion_tokens),
                            (actual > held).then(|| {
                                format!("usage cost {actual} exceeded the hold; charged the hold")
                            }),
                        ),
                        None => (
                            None,
                            None,
                            None,
                            Some("call failed; hold released".to_owned()),
                        ),
                    };
                    sqlx::query(
                        "INSERT INTO credit_ledger (id, tenant_id, kind, amount, balance_after, idempotency_key, request_id, model, prompt_tokens, completion_tokens, note, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    )
                    .bind(new_id())
                    .bind(tenant)
                    .bind(if settle.is_some() { "settle" } else { "release" })
                    .bind(refund)
                    .bind(balance)
                    .bind(format!("{state}:{request_id}"))
                    .bind(request_id)
                    .bind(model)
                    .bind(pt)
                    .bind(ct)
                    .bind(note)
                    .bind(t)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("recording a settlement"))?;
                    tx.commit().await.map_err(q("committing a settlement"))?;
                    Some((charged, balance))
                }
            }
        });
        match done {
            Some((charged, balance)) => Ok(SettleOutcome::Done { charged, balance }),
            None => match self.reservation(tenant, request_id).await? {
                Some(r) => Ok(SettleOutcome::AlreadyFinished(r)),
                None => Err(CreditError::NoAccount),
            },
        }
    }
}
