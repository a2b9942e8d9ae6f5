//! Provider contract tests: one suite of scenarios, run against every dialect's client talking
//! to an in-process fake of that provider (`atlasai-fakes`). Each dialect supplies a
//! [`Harness`](harness::Harness); [`contract_suite!`] stamps out the scenarios for it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] functions fail loudly by design"
)]

mod harness;
mod limits;
mod redaction;
mod scenarios;

/// Generates one test per scenario for a harness.
macro_rules! contract_suite {
    ($module:ident, $harness:ty) => {
        mod $module {
            use crate::scenarios as s;
            type H = $harness;
            #[tokio::test]
            async fn plain_chat() {
                s::plain_chat::<H>().await
            }
            #[tokio::test]
            async fn system_and_multi_turn() {
                s::system_and_multi_turn::<H>().await
            }
            #[tokio::test]
            async fn parallel_tool_calls() {
                s::parallel_tool_calls::<H>().await
            }
            #[tokio::test]
            async fn tool_results_go_back() {
                s::tool_results_go_back::<H>().await
            }
            #[tokio::test]
            async fn json_schema_output() {
                s::json_schema_output::<H>().await
            }
            #[tokio::test]
            async fn json_object_output() {
                s::json_object_output::<H>().await
            }
            #[tokio::test]
            async fn stream_text() {
                s::stream_text::<H>().await
            }
            #[tokio::test]
            async fn stream_tool_calls() {
                s::stream_tool_calls::<H>().await
            }
            #[tokio::test]
            async fn embeddings() {
                s::embeddings::<H>().await
            }
            #[tokio::test]
            async fn list_models() {
                s::list_models::<H>().await
            }
            #[tokio::test]
            async fn rate_limited_then_ok() {
                s::rate_limited_then_ok::<H>().await
            }
            #[tokio::test]
            async fn rate_limit_longer_than_we_wait() {
                s::rate_limit_longer_than_we_wait::<H>().await
            }
            #[tokio::test]
            async fn server_errors_then_ok() {
                s::server_errors_then_ok::<H>().await
            }
            #[tokio::test]
            async fn persistent_server_errors() {
                s::persistent_server_errors::<H>().await
            }
            #[tokio::test]
            async fn stream_retried_before_first_chunk() {
                s::stream_retried_before_first_chunk::<H>().await
            }
            #[tokio::test]
            async fn bad_credentials() {
                s::bad_credentials::<H>().await
            }
            #[tokio::test]
            async fn timeout() {
                s::timeout::<H>().await
            }
            #[tokio::test]
            async fn malformed_response() {
                s::malformed_response::<H>().await
            }
            #[tokio::test]
            async fn truncated_response() {
                s::truncated_response::<H>().await
            }
            #[tokio::test]
            async fn truncated_stream() {
                s::truncated_stream::<H>().await
            }
            #[tokio::test]
            async fn reset_stream() {
                s::reset_stream::<H>().await
            }
            #[tokio::test]
            async fn context_too_long() {
                s::context_too_long::<H>().await
            }
            #[tokio::test]
            async fn tools_not_supported() {
                s::tools_not_supported::<H>().await
            }
            #[tokio::test]
            async fn refused_connection() {
                s::refused_connection::<H>().await
            }
        }
    };
}

// Each dialect's module calls `contract_suite!` for its harnesses; the modules come after the
// macro so that it is in scope for them.
mod anthropic;
mod bedrock;
mod openai;
mod vertex;
