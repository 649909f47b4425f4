//! `oracle-sim`: see `oracle-sim --help`.

fn main() {
    if let Err(e) = oracle_sim::run_cli(std::env::args_os()) {
        eprintln!("oracle-sim: {e:#}");
        std::process::exit(1);
    }
}
