//! Reading a process's log in tests: lines reach the sink a few milliseconds after the event
//! (the tenant plane writes them from a background thread), so a test that looks for a line
//! waits for it.

use std::time::{Duration, Instant};

/// The text `read` returns once it contains `needle`, or after ten seconds whatever it holds
/// then (for the assertion that follows to fail with the log in view).
pub async fn when_logged(read: impl Fn() -> String, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = read();
        if text.contains(needle) || Instant::now() >= deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
