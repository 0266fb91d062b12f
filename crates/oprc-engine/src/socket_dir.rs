//! The private directory that holds the workers' Unix sockets.
//!
//! Only this user can create, replace or connect to a socket in it (mode
//! 0700, owned by the engine's user), so a task sent to a socket there
//! reaches the worker that created it.

use std::fs::{DirBuilder, Permissions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// Longest socket path, in bytes: `sun_path` holds 108 bytes on Linux and
/// 104 on macOS and the BSDs, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 103;
/// Longest socket file name: `<pid>-<u64>.sock`.
const MAX_NAME: usize = 36;

pub(crate) struct SocketDir {
    path: PathBuf,
    /// Set when the engine created the directory: removed on drop.
    _owned: Option<TempDir>,
}

impl SocketDir {
    /// The configured directory (created when missing, and checked), or a
    /// fresh one under the temporary directory (`/tmp` when that path is too
    /// long for socket paths).
    pub fn prepare(configured: Option<&Path>) -> Result<Self, String> {
        let dir = match configured {
            Some(path) => {
                fits(path)?;
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                Self {
                    path: path.to_owned(),
                    _owned: None,
                }
            }
            None => {
                let mut base = std::env::temp_dir();
                // The name tempfile makes: prefix + 6 random characters.
                if base.as_os_str().len() + "/oprc-workers-XXXXXX/".len() + MAX_NAME
                    > MAX_SOCKET_PATH
                {
                    base = PathBuf::from("/tmp");
                }
                let temp = tempfile::Builder::new()
                    .prefix("oprc-workers-")
                    .permissions(Permissions::from_mode(0o700))
                    .tempdir_in(&base)
                    .map_err(|e| format!("cannot create a directory in {}: {e}", base.display()))?;
                Self {
                    path: temp.path().to_owned(),
                    _owned: Some(temp),
                }
            }
        };
        dir.check()?;
        Ok(dir)
    }

    /// A directory (not a link) of this user that nobody else may enter,
    /// short enough for socket paths under it.
    fn check(&self) -> Result<(), String> {
        let path = &self.path;
        let shown = path.display();
        fits(path)?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{shown}: {e}"))?;
        if !meta.is_dir() {
            return Err(format!("{shown} is not a directory"));
        }
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me {
            return Err(format!(
                "{shown} belongs to uid {}, not to this user ({me})",
                meta.uid()
            ));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{shown} has mode {mode:o}: others may enter it (use 700)"
            ));
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The socket path of worker start number `seq`: unique among the
    /// engines of this process (`seq` is) and the processes sharing a
    /// configured directory (the pid).
    pub fn socket(&self, seq: u64) -> PathBuf {
        self.path.join(format!("{}-{seq}.sock", std::process::id()))
    }
}

/// Whether socket paths under `dir` fit in `sun_path`.
fn fits(dir: &Path) -> Result<(), String> {
    if dir.as_os_str().len() + 1 + MAX_NAME > MAX_SOCKET_PATH {
        return Err(format!(
            "{} is too long for socket paths (at most {} bytes)",
            dir.display(),
            MAX_SOCKET_PATH - 1 - MAX_NAME
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_directory_is_private_and_removed_on_drop() {
        let dir = SocketDir::prepare(None).expect("a private directory");
        let path = dir.path().to_owned();
        let meta = std::fs::metadata(&path).expect("exists");
        assert_eq!(meta.mode() & 0o777, 0o700);
        let longest = format!("{}-{}.sock", u32::MAX, u64::MAX);
        assert!(longest.len() <= MAX_NAME);
        assert!(dir.socket(u64::MAX).as_os_str().len() <= MAX_SOCKET_PATH);
        drop(dir);
        assert!(!path.exists(), "removed at drop");
    }

    #[test]
    fn configured_directory_is_created_checked_and_kept() {
        let parent = tempfile::tempdir().expect("temp dir");
        let path = parent.path().join("sockets");
        let dir = SocketDir::prepare(Some(&path)).expect("created");
        drop(dir);
        assert!(path.is_dir(), "a configured directory is kept");

        std::fs::set_permissions(&path, Permissions::from_mode(0o755)).expect("chmod");
        let err = SocketDir::prepare(Some(&path)).err().expect("refused");
        assert!(err.contains("mode 755"), "{err}");

        let long = parent.path().join("x".repeat(100));
        let err = SocketDir::prepare(Some(&long)).err().expect("refused");
        assert!(err.contains("too long"), "{err}");
    }
}
