//! (being written)
/// Run configuration.
pub struct RunConfig;
/// Runs.
pub async fn run(_c: RunConfig) -> anyhow::Result<()> { Ok(()) }
/// CLI.
pub fn run_cli<I: IntoIterator<Item = std::ffi::OsString>>(_a: I) -> std::process::ExitCode { std::process::ExitCode::SUCCESS }
