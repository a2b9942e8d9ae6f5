//! AI credits: the managed default model served through the control plane, metered per model
//! from the price table, with reserve → call → settle (or release) idempotent by request id.

use atlasai_core::protocol::{ManagedChatRequest, ManagedChatResponse, ManagedReason};
use atlasai_core::{ChatRequest, ChatResponse, ContentPart, Message};
use serde::Serialize;

use crate::config::Price;
use crate::error::Error;
use crate::identity::{Caller, Role};
use crate::state::AppState;
use crate::store::{
    CreditError, LedgerRow, ReserveOutcome, SettleOutcome, SettleUsage, TransferOutcome,
    UsageCountRow,
};

/// Thousandths of a credit as text: `12.345`.
pub fn display(millicredits: i64) -> String {
    let sign = if millicredits < 0 { "-" } else { "" };
    let m = millicredits.unsigned_abs();
    format!("{sign}{}.{:03}", m / 1000, m % 1000)
}

/// The cost of some tokens at a price, rounded up to a thousandth of a credit.
pub fn cost(price: &Price, prompt_tokens: u64, completion_tokens: u64) -> i64 {
    let part = |tokens: u64, per_k: i64| -> i64 {
        let per_k = u64::try_from(per_k).unwrap_or(0);
        i64::try_from(tokens.saturating_mul(per_k).div_ceil(1000)).unwrap_or(i64::MAX)
    };
    part(prompt_tokens, price.input_millicredits)
        .saturating_add(part(completion_tokens, price.output_millicredits))
}

/// An upper bound on a request's prompt tokens: every tokenizer in use spends at least one
/// byte per token, plus a few tokens of framing per message and per tool.
pub fn prompt_token_bound(request: &ChatRequest) -> u64 {
    let mut bytes = 0usize;
    for m in &request.messages {
        bytes += 8 + match m {
            Message::System { content } => content.len(),
            Message::User { content } => content
                .iter()
                .map(|p| match p {
                    ContentPart::Text { text } => text.len(),
                    // Images are priced by the provider in tiles; hold a generous amount.
                    ContentPart::ImageUrl { .. } => 2_000,
                })
                .sum(),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                content.as_deref().map_or(0, str::len)
                    + tool_calls
                        .iter()
                        .map(|c| c.name.len() + c.arguments.len() + 8)
                        .sum::<usize>()
            }
            Message::Tool {
                tool_call_id,
                content,
            } => tool_call_id.len() + content.len(),
        };
    }
    for t in &request.tools {
        bytes += 16
            + t.name.len()
            + t.description.as_deref().map_or(0, str::len)
            + t.parameters.to_string().len();
    }
    if let Some(f) = &request.response_format {
        bytes += serde_json::to_string(f).map_or(0, |s| s.len());
    }
    bytes as u64 + 64
}

fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Serves one managed-model chat for a cluster's tenant, metered in credits.
pub async fn managed_chat(
    state: &AppState,
    tenant: &str,
    req: ManagedChatRequest,
) -> Result<ManagedChatResponse, Error> {
    let (Some(client), Some(cfg)) = (&state.managed, &state.config.managed) else {
        return Err(Error::Unavailable(
            "the managed model is not configured on this control plane (CP_MANAGED_PROVIDER)"
                .to_owned(),
        ));
    };
    if !valid_request_id(&req.request_id) {
        return Err(Error::bad(
            "invalid_body",
            "request_id: use 1 to 128 letters, digits, '-', '_', '.' or ':'",
        ));
    }
    let model = cfg.settings.model.clone();
    let price = cfg.prices.get(&model).copied().ok_or_else(|| {
        Error::internal("pricing the managed model", format!("no price for {model}"))
    })?;
    let mut request = req.request;
    let max_tokens = request
        .max_tokens
        .unwrap_or(cfg.max_tokens)
        .min(cfg.max_tokens);
    request.max_tokens = Some(max_tokens);
    let estimate = cost(&price, prompt_token_bound(&request), u64::from(max_tokens));
    match state.store.reserve(tenant, &req.request_id, estimate).await {
        Ok(ReserveOutcome::Reserved { .. }) => state.metrics.debit("reserve", &model, 0),
        Ok(ReserveOutcome::Existing(r)) => {
            return match (r.state.as_str(), r.response_json) {
                ("settled", Some(json)) => {
                    let response: ChatResponse = serde_json::from_str(&json)
                        .map_err(|e| Error::internal("replaying a stored answer", e))?;
                    let balance = state.store.balance(tenant).await?.unwrap_or_default();
                    Ok(ManagedChatResponse {
                        response,
                        charged_millicredits: r.charged.unwrap_or_default(),
                        balance_millicredits: balance,
                    })
                }
                ("held", _) => Err(Error::Conflict(format!(
                    "request {} is still being served; wait for its answer",
                    req.request_id
                ))),
                _ => Err(Error::Conflict(format!(
                    "request {} failed earlier and its hold was released; send a new request id",
                    req.request_id
                ))),
            };
        }
        Err(e @ CreditError::Insufficient { .. }) => {
            state.metrics.debit("refused", &model, 0);
            tracing::info!(tenant, request_id = %req.request_id, "managed request refused: insufficient credits");
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    }
    let answer = client.chat(&request).await;
    match answer {
        Ok(response) => {
            let usage = response.usage.unwrap_or_default();
            let actual = match response.usage {
                Some(u) => cost(
                    &price,
                    u64::from(u.prompt_tokens),
                    u64::from(u.completion_tokens),
                ),
                // A provider that reports no usage is charged the hold.
                None => estimate,
            };
            let json = serde_json::to_string(&response)
                .map_err(|e| Error::internal("storing an answer", e))?;
            let settled = state
                .store
                .settle(
                    tenant,
                    &req.request_id,
                    actual,
                    &SettleUsage {
                        model: &model,
                        prompt_tokens: i64::from(usage.prompt_tokens),
                        completion_tokens: i64::from(usage.completion_tokens),
                    },
                    &json,
                )
                .await?;
            let (charged, balance) = match settled {
                SettleOutcome::Done { charged, balance } => (charged, balance),
                SettleOutcome::AlreadyFinished(r) => (
                    r.charged.unwrap_or_default(),
                    state.store.balance(tenant).await?.unwrap_or_default(),
                ),
            };
            state.metrics.debit("settle", &model, charged);
            tracing::info!(
                tenant,
                request_id = %req.request_id,
                reason = match req.reason { ManagedReason::Default => "default", ManagedReason::CloudFallback => "cloud_fallback" },
                model = %model,
                prompt_tokens = usage.prompt_tokens,
                completion_tokens = usage.completion_tokens,
                charged = %display(charged),
                "managed model call"
            );
            Ok(ManagedChatResponse {
                response,
                charged_millicredits: charged,
                balance_millicredits: balance,
            })
        }
        Err(e) => {
            state.store.release(tenant, &req.request_id).await?;
            state.metrics.debit("release", &model, 0);
            tracing::warn!(tenant, request_id = %req.request_id, error = %e, "managed model call failed; hold released");
            Err(Error::Unavailable(format!(
                "AI provider temporarily unavailable: the managed model failed: {e}"
            )))
        }
    }
}

/// The credits document for the portal.
#[derive(Debug, Serialize)]
pub struct CreditsView {
    /// The balance, as text with three decimals.
    pub balance: String,
    /// The balance in thousandths.
    pub balance_millicredits: i64,
    /// Recent ledger rows, newest first.
    pub recent: Vec<LedgerRow>,
    /// Usage counts reported by tenant planes.
    pub usage: Vec<UsageCountRow>,
    /// The managed model's price, credits per 1000 input/output tokens.
    pub managed_price: Option<ManagedPrice>,
}

/// A price for display.
#[derive(Debug, Serialize)]
pub struct ManagedPrice {
    /// The model.
    pub model: String,
    /// Credits per 1000 prompt tokens.
    pub input_per_1k: String,
    /// Credits per 1000 completion tokens.
    pub output_per_1k: String,
}

/// The balance, recent ledger and usage (viewer).
pub async fn view(state: &AppState, caller: &Caller, tenant: &str) -> Result<CreditsView, Error> {
    caller.require(tenant, Role::Viewer)?;
    let balance = state.store.balance(tenant).await?.unwrap_or_default();
    let managed_price = state.config.managed.as_ref().and_then(|m| {
        m.prices.get(&m.settings.model).map(|p| ManagedPrice {
            model: m.settings.model.clone(),
            input_per_1k: display(p.input_millicredits),
            output_per_1k: display(p.output_millicredits),
        })
    });
    Ok(CreditsView {
        balance: display(balance),
        balance_millicredits: balance,
        recent: state.store.recent_ledger(tenant, 20).await?,
        usage: state.store.usage_counts(tenant).await?,
        managed_price,
    })
}

/// A grant or adjustment by the operator, applied once per idempotency key.
pub async fn transfer(
    state: &AppState,
    tenant: &str,
    kind: &str,
    amount: &str,
    idempotency_key: &str,
    note: &str,
) -> Result<TransferOutcome, Error> {
    if kind != "grant" && kind != "adjustment" {
        return Err(Error::bad(
            "invalid_body",
            format!("kind: {kind:?} is not grant or adjustment"),
        ));
    }
    let (negative, digits) = match amount.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, amount.trim()),
    };
    let mut mc = crate::config::parse_credits(digits).ok_or_else(|| {
        Error::bad("invalid_body", format!("amount: {amount:?} is not a credit amount; use up to three decimals, for example 100 or 12.5"))
    })?;
    if negative {
        if kind == "grant" {
            return Err(Error::bad(
                "invalid_body",
                "amount: a grant must be positive; use kind adjustment to take credits away",
            ));
        }
        mc = -mc;
    }
    if idempotency_key.is_empty() || idempotency_key.len() > 128 {
        return Err(Error::bad(
            "invalid_body",
            "idempotency_key: use 1 to 128 characters",
        ));
    }
    if state.store.tenant_name(tenant).await?.is_none() {
        return Err(Error::NotFound("tenant"));
    }
    Ok(state
        .store
        .transfer(tenant, kind, mc, &format!("{kind}:{idempotency_key}"), note)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_round_up_and_display_in_credits() {
        let p = Price {
            input_millicredits: 150,
            output_millicredits: 600,
        };
        assert_eq!(cost(&p, 1000, 1000), 750);
        assert_eq!(cost(&p, 1, 0), 1, "a fraction of a thousandth rounds up");
        assert_eq!(cost(&p, 0, 0), 0);
        assert_eq!(display(750), "0.750");
        assert_eq!(display(12_345), "12.345");
        assert_eq!(display(-1_500), "-1.500");
    }

    #[test]
    fn the_prompt_bound_covers_the_text() {
        let r = ChatRequest::user("x".repeat(400));
        assert!(prompt_token_bound(&r) >= 400);
    }
}
