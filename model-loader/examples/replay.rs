//! `cargo run -p oracle-model --example replay -- MODEL.zip BARS.csv`: the contract §8 replay
//! trace on stdout, rejected lines on stderr (what `oracle replay` prints).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, bars] = &args[..] else {
        eprintln!("usage: replay MODEL.zip BARS.csv");
        return ExitCode::from(2);
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut err = std::io::stderr();
    match oracle_model::replay(
        &PathBuf::from(model),
        &PathBuf::from(bars),
        &mut out,
        &mut err,
    ) {
        Ok(_) => {
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = out.flush();
            eprintln!("replay: {e}");
            ExitCode::FAILURE
        }
    }
}
