//! The admin token of a node without `--token`: generated into its data
//! directory on first start (mode 0600), reused on later starts. Routes
//! that change packages need it; the CLI reads it from the same place.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Name of the token file in the data directory.
pub const FILE: &str = "admin-token";

/// Where the admin token of a node with this data directory lives.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Reads the admin token, creating it first when there is none.
pub(crate) fn load_or_create(data_dir: &Path) -> anyhow::Result<String> {
    secret(&admin_token_path(data_dir), "admin token")
}

/// Reads a secret of the node (`what`, for messages) from `path` in the
/// data directory, creating it first when there is none.
pub(crate) fn secret(path: &Path, what: &str) -> anyhow::Result<String> {
    let data_dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("failed to create the data directory {}", data_dir.display()))?;
    match create(path) {
        Ok(token) => {
            tracing::info!(file = %path.display(), "{what} created");
            return Ok(token);
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("failed to write the {what} file {}", path.display()));
        }
    }
    restrict(path, what)?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the {what} file {}", path.display()))?;
    let token = text.trim();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        anyhow::bail!(
            "the {what} file {} is empty or malformed; delete it and a new one is \
             generated at the next start",
            path.display()
        );
    }
    Ok(token.to_owned())
}

/// Writes a new random token; fails with `AlreadyExists` when there is one.
fn create(path: &Path) -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

/// An existing token file readable by others is made private again (and
/// said so: whoever could read it may have the token).
#[cfg(unix)]
fn restrict(path: &Path, what: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("failed to read the {what} file {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            file = %path.display(),
            "the {what} file was readable by others; made private (delete it for a new one)"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("failed to restrict {}", path.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: &str) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_created_private_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = load_or_create(&data).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_create(&data).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = admin_token_path(&data);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(load_or_create(&data).unwrap(), first);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_malformed_token_file_is_refused_with_a_way_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(admin_token_path(dir.path()), "\n").unwrap();
        let err = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("delete it"), "{err}");
    }
}
