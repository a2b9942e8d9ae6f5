//! What each dialect provides to the shared scenarios.

use std::sync::Arc;
use std::time::Duration;

use atlasai_fakes::{Fake, Recorded};
use atlasai_providers::{HttpOptions, Provider, RetryPolicy};
use serde_json::Value;

/// A fake provider plus the knowledge of its wire format the scenarios need to inspect what
/// the client sent.
pub trait Harness: Sized + Send + Sync + 'static {
    /// Whether the dialect offers embeddings (otherwise `embed` must say "not supported").
    const SUPPORTS_EMBEDDINGS: bool;
    /// Whether the dialect lists models (otherwise `list_models` must say "not supported").
    const SUPPORTS_LIST_MODELS: bool;

    /// Starts the fake.
    fn start() -> impl Future<Output = Self> + Send;
    /// The fake, to script and inspect.
    fn fake(&self) -> &Fake;
    /// A client with valid credentials.
    fn client(&self, opts: HttpOptions) -> impl Future<Output = Arc<dyn Provider>> + Send;
    /// A client with valid credentials for a provider at another base URL (the fake's own
    /// base URL has the form `http://127.0.0.1:<port>`).
    fn client_at(
        &self,
        base_url: &str,
        opts: HttpOptions,
    ) -> impl Future<Output = Arc<dyn Provider>> + Send;
    /// A client whose credentials the fake rejects.
    fn client_with_bad_credentials(
        &self,
        opts: HttpOptions,
    ) -> impl Future<Output = Arc<dyn Provider>> + Send;

    /// Whether a recorded request was a model call (not, say, a token exchange).
    fn is_model_call(req: &Recorded) -> bool;
    /// The system prompt text(s) the request carried.
    fn system_texts(req: &Recorded) -> Vec<String>;
    /// The conversation turns the request carried, as (role, text) with the role spelled
    /// `user` or `assistant`.
    fn turns(req: &Recorded) -> Vec<(String, String)>;
    /// The tool names declared.
    fn tools_declared(req: &Recorded) -> Vec<String>;
    /// The tool results sent back, as (call id or function name, result text).
    fn tool_results(req: &Recorded) -> Vec<(String, String)>;
    /// The JSON schema sent for structured output, if any.
    fn json_schema_sent(req: &Recorded) -> Option<Value>;
    /// Whether the request carried a stream flag or went to a streaming route.
    fn was_streaming(req: &Recorded) -> bool;
}

/// Options that keep the suite fast: short timeouts and tiny backoffs.
pub fn fast_opts() -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
        ..HttpOptions::default()
    }
}

/// The model calls a fake received.
pub fn model_calls<H: Harness>(h: &H) -> Vec<Recorded> {
    h.fake()
        .requests()
        .into_iter()
        .filter(H::is_model_call)
        .collect()
}
