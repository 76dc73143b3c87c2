//! The entry point the benchmark binaries share: a multi-threaded runtime, the run, and an exit
//! code that says whether it worked.

use std::future::Future;
use std::process::ExitCode;

/// Runs `run` on a new multi-threaded runtime; a failure is printed as "`name` bench failed: …".
pub fn main<F: Future<Output = anyhow::Result<()>>>(name: &str, run: impl FnOnce() -> F) -> ExitCode {
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{name} bench failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}
