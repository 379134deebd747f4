//! [`TempDir`]: a fresh directory for one test, removed with its contents on drop.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// A fresh directory under the system temp dir, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<temp>/tessera-<label>-<uuid>`.
    pub fn create(label: &str) -> anyhow::Result<TempDir> {
        let dir =
            std::env::temp_dir().join(format!("tessera-{label}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempDir(dir))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
