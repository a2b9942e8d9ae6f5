//! What the tenant plane keeps of the control plane in its data directory, owner-only
//! (0600): the cluster credential (so restarts do not enroll again) and the last settings the
//! control plane sent (so a tenant plane that cannot reach it keeps working with them).

use std::io::Write;
use std::path::{Path, PathBuf};

use atlasai_core::portal::WireSecret;
use atlasai_core::protocol::{AdminTokenKey, SettingsResponse};
use serde::{Deserialize, Serialize};

/// The credential file's name.
pub const CREDENTIAL_FILE: &str = "cp-credential.json";
/// The settings cache's name.
pub const SETTINGS_FILE: &str = "cp-settings.json";

/// The stored enrollment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credential {
    /// The control plane it belongs to (a different `TP_CP_URL` means enroll again).
    pub cp_url: String,
    /// The tenant.
    pub tenant_id: String,
    /// The cluster.
    pub cluster_id: String,
    /// The credential.
    pub credential: WireSecret,
    /// The admin-token key received at enrollment.
    pub admin_tokens: AdminTokenKey,
}

/// Why a file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}")]
pub struct PersistError {
    what: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let err = |source| PersistError {
        what: "cannot write",
        path: path.to_owned(),
        source,
    };
    // Write a temp file and rename it over the old one, so a crash never leaves half a file.
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp).map_err(err)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable control-plane file");
            None
        }
    }
}

/// The stored credential, if any.
pub fn load_credential(dir: &Path) -> Option<Credential> {
    read(&dir.join(CREDENTIAL_FILE))
}

/// Stores the credential.
pub fn save_credential(dir: &Path, c: &Credential) -> Result<(), PersistError> {
    let bytes = serde_json::to_vec_pretty(c).unwrap_or_default();
    write_private(&dir.join(CREDENTIAL_FILE), &bytes)
}

/// The last settings received, if any.
pub fn load_settings(dir: &Path) -> Option<SettingsResponse> {
    read(&dir.join(SETTINGS_FILE))
}

/// Stores the last settings received.
pub fn save_settings(dir: &Path, s: &SettingsResponse) -> Result<(), PersistError> {
    let bytes = serde_json::to_vec(s).unwrap_or_default();
    write_private(&dir.join(SETTINGS_FILE), &bytes)
}
