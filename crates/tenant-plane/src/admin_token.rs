//! The admin token when `TP_ADMIN_TOKEN` is not set: generated once, kept in the data
//! directory with owner-only permissions, so a newcomer can use the admin API at once and the
//! token survives restarts.

use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// The file name inside the data directory.
pub const FILE_NAME: &str = "admin-token";

/// Reads the stored token, or generates and stores a new one.
pub fn load_or_create(data_dir: &Path) -> Result<(SecretString, PathBuf, bool), String> {
    let path = data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 16 => {
            return Ok((SecretString::from(text.trim().to_owned()), path, false));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no system randomness: {e}"))?;
    let token = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(token.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((SecretString::from(token), path, true))
}
