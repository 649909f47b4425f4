//! `oracle-executor` binary: see [`oracle_executor::run_cli`].

fn main() -> std::process::ExitCode {
    oracle_executor::run_cli(std::env::args_os())
}
