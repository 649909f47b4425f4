//! The `oracle-predictor` binary (the same as `oracle predictor`).

fn main() {
    std::process::exit(oracle_predictor::run_cli(std::env::args_os()));
}
