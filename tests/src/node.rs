//! Node scripts of `tests/js` (stock npm clients, browser drivers), installed by the test
//! command from their lockfile: [`NodeScript`] runs one and reads its JSON lines.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// A running `node tests/js/<script> <args>`, killed when dropped.
pub struct NodeScript {
    /// The process (wait on it for its exit status).
    pub child: Child,
    /// Its standard output, by line (its standard error goes to the test's).
    pub lines: Lines<BufReader<ChildStdout>>,
}

impl NodeScript {
    /// Starts `script` (a path under `tests/js`) with `args`; fails with a hint when the npm
    /// packages are not installed.
    pub fn start(script: &str, args: &[&str]) -> anyhow::Result<Self> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/js");
        anyhow::ensure!(
            std::path::Path::new(dir).join("node_modules").exists(),
            "{dir}/node_modules is missing: run `npm ci` there (scripts/test.sh does)"
        );
        let mut child = tokio::process::Command::new("node")
            .current_dir(dir)
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        Ok(Self {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }
}
