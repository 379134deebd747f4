//! The workspace's own binaries and free ports, for tests that run real processes.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// `target/<profile>/<name>`: the tests run as `target/<profile>/deps/integration-…`, and the
/// test command builds every binary first (`cargo build --workspace --bins`).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .with_context(|| format!("{} has no grandparent directory", exe.display()))?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        path.is_file(),
        "{} is missing; build them first: cargo build --workspace --bins",
        path.display()
    );
    Ok(path)
}

/// A port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
