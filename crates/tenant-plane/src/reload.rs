//! Live reload: when the values file or a secret file changes (including the atomic `..data`
//! symlink swap kubelet does for ConfigMap and Secret volumes), or on SIGHUP, the
//! configuration is re-read and validated; a valid one replaces the old atomically, an invalid
//! one is rejected, logged and shown in status while the last good one stays in force.
//!
//! Environment variables cannot change in a running process, so the environment snapshot
//! taken at start-up is reused; everything that comes from files reloads.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config;
use crate::state::{AppState, ReloadStatus, unix_now};

/// How long to wait after a file event for the rest of a burst (kubelet writes several files
/// and swaps a symlink) before reloading.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// A safety net for file systems or environments where change events do not arrive (inotify
/// watch limits exhausted, some network file systems).
const POLL_EVERY: Duration = Duration::from_secs(10);

/// A fingerprint of the watched files' contents, to skip reloads when nothing changed
/// (kubelet refreshes volumes periodically even when their content is the same).
pub fn fingerprint(files: &[PathBuf]) -> u64 {
    let mut h = DefaultHasher::new();
    for f in files {
        f.hash(&mut h);
        match std::fs::read(f) {
            Ok(bytes) => bytes.hash(&mut h),
            Err(e) => e.kind().to_string().hash(&mut h),
        }
    }
    h.finish()
}

/// Re-reads the configuration. Returns whether a new configuration was published.
pub async fn reload(state: &AppState, trigger: &str) -> bool {
    // Loading may resolve host names (the air-gapped check), so it runs off the async workers.
    let inputs = state.inputs.clone();
    let loaded = match tokio::task::spawn_blocking(move || config::load(&inputs)).await {
        Ok(loaded) => loaded,
        Err(e) => Err(config::ConfigErrors(vec![format!(
            "configuration loader failed: {e}"
        )])),
    };
    match loaded {
        Ok(new) => {
            let summary = match &new.provider {
                Some(p) => format!("provider {} model {}", p.kind, p.model),
                None => "no AI provider".to_owned(),
            };
            for w in &new.warnings {
                tracing::warn!("configuration: {w}");
            }
            let generation = state.publish(new);
            state.routes.clear().await;
            state.record_reload(ReloadStatus {
                ok: true,
                at_unix: unix_now(),
                trigger: trigger.to_owned(),
                errors: Vec::new(),
            });
            tracing::info!(generation, trigger, "configuration reloaded: {summary}");
            crate::jobs::retry_now(state, "the configuration was reloaded").await;
            true
        }
        Err(errors) => {
            tracing::error!(
                trigger,
                "configuration change rejected, keeping the previous configuration: {errors}"
            );
            state.record_reload(ReloadStatus {
                ok: false,
                at_unix: unix_now(),
                trigger: trigger.to_owned(),
                errors: errors.0,
            });
            false
        }
    }
}

/// Starts the watcher, the poller and the SIGHUP handler. They run until the process ends.
pub fn spawn(state: Arc<AppState>) {
    let (tx, rx) = mpsc::channel::<&'static str>(16);
    let files = state.current().config.watched_files.clone();
    let watcher = watch_dirs(&files, tx.clone());
    tokio::spawn(run(state, rx, watcher));
    tokio::spawn(poll(tx.clone()));
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload on file changes only");
            return;
        };
        while hup.recv().await.is_some() {
            let _ = tx.send("SIGHUP").await;
        }
    });
}

/// Watches the directories holding the files: kubelet replaces the `..data` symlink in the
/// directory, which changes no watched file's inode but shows up as events in the directory.
fn watch_dirs(
    files: &[PathBuf],
    tx: mpsc::Sender<&'static str>,
) -> Option<notify::RecommendedWatcher> {
    if files.is_empty() {
        return None;
    }
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                // A full channel already holds a pending reload; dropping this event is fine.
                let _ = tx.try_send("file change");
            }
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(
                    "cannot watch configuration files ({e}); polling every {}s instead",
                    POLL_EVERY.as_secs()
                );
                return None;
            }
        };
    let dirs: BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .map(|d| {
            if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d
            }
        })
        .collect();
    for dir in dirs {
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!("cannot watch {} ({e}); polling instead", dir.display());
        }
    }
    Some(watcher)
}

async fn poll(tx: mpsc::Sender<&'static str>) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        if tx.send("poll").await.is_err() {
            return;
        }
    }
}

async fn run(
    state: Arc<AppState>,
    mut rx: mpsc::Receiver<&'static str>,
    _watcher: Option<notify::RecommendedWatcher>,
) {
    let mut last = fingerprint(&state.current().config.watched_files);
    while let Some(mut trigger) = rx.recv().await {
        // Let a burst of events settle, keeping the most telling trigger.
        tokio::time::sleep(DEBOUNCE).await;
        while let Ok(t) = rx.try_recv() {
            if trigger == "poll" {
                trigger = t;
            }
        }
        let files = state.current().config.watched_files.clone();
        let now = fingerprint(&files);
        if now == last && trigger != "SIGHUP" {
            continue;
        }
        let trigger = if trigger == "poll" {
            "file change"
        } else {
            trigger
        };
        reload(&state, trigger).await;
        // Remember what we saw even when it was rejected: a rejected file is not retried
        // until it changes again.
        last = now;
    }
}
