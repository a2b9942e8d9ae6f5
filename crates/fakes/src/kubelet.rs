//! Lays out a directory the way kubelet publishes ConfigMap, Secret and projected volumes:
//! the files live in a timestamped directory `..<stamp>/`, the symlink `..data` points at the
//! current one, and each file name is a symlink through `..data`. An update writes a new
//! timestamped directory and renames a fresh `..data_tmp` symlink over `..data`, so every file
//! of the volume changes in one atomic step.

use std::io;
use std::path::Path;

/// Publishes `files` (name, content) into `volume` as generation `generation` of the volume.
/// Calling it again with a higher generation performs kubelet's atomic swap. Files absent
/// from a later generation disappear with it, as in a real volume.
#[cfg(unix)]
pub fn publish(volume: &Path, generation: u32, files: &[(&str, &[u8])]) -> io::Result<()> {
    use std::os::unix::fs::symlink;
    std::fs::create_dir_all(volume)?;
    let stamp = format!("..2026_11_22_00_00_{generation:02}.{generation:09}");
    let target = volume.join(&stamp);
    std::fs::create_dir_all(&target)?;
    for (name, content) in files {
        std::fs::write(target.join(name), content)?;
    }
    let tmp_link = volume.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    symlink(&stamp, &tmp_link)?;
    std::fs::rename(&tmp_link, volume.join("..data"))?;
    for (name, _) in files {
        let link = volume.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{name}"), &link)?;
        }
    }
    Ok(())
}
