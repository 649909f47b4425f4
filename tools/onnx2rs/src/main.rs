//! `onnx2rs <policy.onnx | SYM_TF.zip> [--emit-rust out.rs]`, `onnx2rs weights SYM_TF.zip…`
//!
//! Prints a summary of the actor MLP (layers, dims, activations). With `--emit-rust`, also
//! writes Rust source with the weights as consts (see `onnx2rs::emit_rust`). `weights` checks
//! that each model zip's plain weights member is this tool's import of its ONNX policy, bit for
//! bit (see `onnx2rs::check_zip_weights`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: onnx2rs <policy.onnx | SYM_TF.zip> [--emit-rust OUT.rs]
       onnx2rs weights SYM_TF.zip...

Converts the SB3 actor MLP in an ONNX file (or the *_policy.onnx member of a model zip) and
prints its layers. --emit-rust writes Rust source with the weights as consts.
`weights` checks that each zip's *_policy.weights member (what the loader reads; written by
`python -m oracle_training pack-weights`) is this tool's import of its ONNX policy, bit for bit.";

/// `onnx2rs weights ZIP…`: one line per zip; fails on the first zip that is not right.
fn check_weights(zips: &[std::ffi::OsString]) -> Result<(), String> {
    if zips.is_empty() {
        return Err("weights: give at least one model zip".into());
    }
    for z in zips {
        let path = Path::new(z);
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (member, floats) =
            onnx2rs::check_zip_weights(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "{}: {member} is the ONNX policy's import, bit for bit ({floats} floats)",
            path.display()
        );
    }
    Ok(())
}

struct Args {
    input: PathBuf,
    emit: Option<PathBuf>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut input = None;
    let mut emit = None;
    let mut it = std::env::args_os().skip(1);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-h" | "--help") => return Ok(None),
            Some("--emit-rust") => {
                let out = it
                    .next()
                    .ok_or_else(|| "--emit-rust needs an output path".to_owned())?;
                emit = Some(PathBuf::from(out));
            }
            Some(s) if s.starts_with("--emit-rust=") => {
                emit = Some(PathBuf::from(&s["--emit-rust=".len()..]));
            }
            Some(s) if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown option '{s}'"));
            }
            _ => {
                if input.is_some() {
                    return Err("expected exactly one input file".into());
                }
                input = Some(PathBuf::from(a));
            }
        }
    }
    let input = input.ok_or_else(|| "missing input file".to_owned())?;
    Ok(Some(Args { input, emit }))
}

fn is_zip(path: &Path, bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
        || bytes.starts_with(b"PK\x05\x06")
        || path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

fn run(args: &Args) -> Result<(), String> {
    let path = &args.input;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (source_name, onnx) = if is_zip(path, &bytes) {
        let (member, onnx) =
            onnx2rs::policy_from_zip(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        (format!("{}:{member}", path.display()), onnx)
    } else {
        (path.display().to_string(), bytes.clone())
    };
    let mlp = onnx2rs::convert(&onnx).map_err(|e| format!("{source_name}: {e}"))?;
    println!("source: {source_name}");
    println!("sha256: {}", onnx2rs::sha256_hex(&bytes));
    print!("{}", mlp.summary());
    if let Some(out) = &args.emit {
        let src = onnx2rs::emit_rust(&mlp, &source_name, &bytes);
        std::fs::write(out, src).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.first().and_then(|a| a.to_str()) == Some("weights") {
        return match check_weights(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("onnx2rs: error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match parse_args() {
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Some(args)) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("onnx2rs: error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("onnx2rs: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
