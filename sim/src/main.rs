//! `oracle-sim`: see `oracle-sim --help`.

fn main() {
    std::process::exit(oracle_sim::run_cli(std::env::args_os()));
}
