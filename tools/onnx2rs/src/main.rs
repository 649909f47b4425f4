//! `onnx2rs <policy.onnx | SYM_TF.zip> [--emit-rust out.rs]`
//!
//! Prints a summary of the actor MLP (layers, dims, activations). With `--emit-rust`, also
//! writes Rust source with the weights as consts (see `onnx2rs::emit_rust`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: onnx2rs <policy.onnx | SYM_TF.zip> [--emit-rust OUT.rs]

Converts the SB3 actor MLP in an ONNX file (or the *_policy.onnx member of a model zip) and
prints its layers. --emit-rust writes Rust source with the weights as consts.";

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
