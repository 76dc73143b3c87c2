//! Starting the project's binaries the way every test does: without the developer's PODCONNECT_*
//! settings, and ready once the binary prints its one JSON ready line on standard output.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// `binary` with no PODCONNECT_* variable inherited from the test run, no standard input, and
/// killed when dropped.
pub fn command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PODCONNECT_") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}

/// The ready line both binaries print: `{"ready":{...}}`.
#[derive(serde::Deserialize)]
struct Line<T> {
    ready: T,
}

/// Reads the child's standard output (piped) until its ready line and returns what it says;
/// `None` if the child closed its output (it exited) first. Standard output carries nothing else,
/// so any other line is an error. The rest of the output is drained so the child never blocks.
pub(crate) async fn ready_line<T: DeserializeOwned>(child: &mut Child, timeout: Duration) -> anyhow::Result<Option<T>> {
    let stdout = child.stdout.take().context("standard output is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(timeout, lines.next_line())
        .await
        .with_context(|| format!("no ready line within {timeout:?}"))??;
    let Some(line) = line else { return Ok(None) };
    let ready = serde_json::from_str::<Line<T>>(&line)
        .with_context(|| format!("the first line on standard output is not the ready line: {line:?}"))?
        .ready;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Some(ready))
}
