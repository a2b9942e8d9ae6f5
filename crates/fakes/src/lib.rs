//! In-process fake LLM providers for tests and benchmarks.
//!
//! Each fake speaks one provider's real wire format (requests, responses, errors, rate-limit
//! headers and streaming framing, taken from the official specification or SDK source) and
//! answers from a script of [`Step`]s, so a test can say "rate limit once, then answer" and
//! then inspect every request the client made. The fakes also check authentication the way the
//! real provider does.

pub mod anthropic;
pub mod bedrock;
pub mod kubelet;
pub mod logs;
pub mod openai;
mod script;
mod server;
pub mod vertex;

pub use script::{FakeReply, FakeToolCall, RetryAfter, Step, embedding_for};
pub use server::{Fake, FakeState, Recorded, Responder};
