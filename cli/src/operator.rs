//! `oracle status|halt|flatten|resume|enable|disable`: commands to the running executor over its
//! operator channel (`operator.sock` in its state folder; docs/operator.md). The executor
//! answers one JSON line; these print it readably (`status --json`: the snapshot as JSON).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use oracle_executor::operator::request;
use oracle_executor_core::operator::{Request, Status};
use serde_json::Value;

/// The executor's state folder (where its `operator.sock` is).
#[derive(Args, Debug, Clone)]
pub struct StateArg {
    /// The executor's state folder (its `--state`; the channel is DIR/operator.sock).
    #[arg(long, value_name = "DIR", default_value = "state")]
    pub state: PathBuf,
}

/// `oracle status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArg,
    /// Print the snapshot as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `oracle halt`.
#[derive(Args, Debug)]
pub struct HaltArgs {
    #[command(flatten)]
    pub state: StateArg,
    /// Close every position too.
    #[arg(long)]
    pub flatten: bool,
}

/// `oracle flatten`.
#[derive(Args, Debug)]
pub struct FlattenArgs {
    /// A symbol (as in executor_config.json), or `all`.
    #[arg(value_name = "SYMBOL|all")]
    pub symbol: String,
    #[command(flatten)]
    pub state: StateArg,
}

/// `oracle resume`.
#[derive(Args, Debug)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub state: StateArg,
}

/// `oracle enable` / `oracle disable`.
#[derive(Args, Debug)]
pub struct SymbolArgs {
    /// A symbol of executor_config.json.
    #[arg(value_name = "SYMBOL")]
    pub symbol: String,
    #[command(flatten)]
    pub state: StateArg,
}

/// Sends `req`; prints the executor's message (stdout) or its error (stderr, exit 1).
fn send(name: &str, state: &StateArg, req: &Request) -> Result<Value, ExitCode> {
    match request(&state.state, req) {
        Err(e) => {
            eprintln!("oracle {name}: {e}");
            Err(ExitCode::FAILURE)
        }
        Ok(v) if v.get("ok").and_then(Value::as_bool) == Some(true) => Ok(v),
        Ok(v) => {
            let e = v
                .get("error")
                .and_then(Value::as_str)
                .map_or_else(|| v.to_string(), str::to_string);
            eprintln!("oracle {name}: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn run_simple(name: &str, state: &StateArg, req: &Request) -> ExitCode {
    match send(name, state, req) {
        Ok(v) => {
            println!(
                "{}",
                v.get("message").and_then(Value::as_str).unwrap_or("done")
            );
            ExitCode::SUCCESS
        }
        Err(c) => c,
    }
}

/// `oracle status`.
pub fn run_status(a: &StatusArgs) -> ExitCode {
    let v = match send("status", &a.state, &Request::Status) {
        Ok(v) => v,
        Err(c) => return c,
    };
    let snapshot = v.get("status").cloned().unwrap_or(Value::Null);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&snapshot).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    match serde_json::from_value::<Status>(snapshot) {
        Ok(s) => {
            print!("{}", s.table());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "oracle status: the executor's snapshot is not readable here ({e}); try --json"
            );
            ExitCode::FAILURE
        }
    }
}

/// `oracle halt [--flatten]`.
pub fn run_halt(a: &HaltArgs) -> ExitCode {
    run_simple("halt", &a.state, &Request::Halt { flatten: a.flatten })
}

/// `oracle flatten SYMBOL|all`.
pub fn run_flatten(a: &FlattenArgs) -> ExitCode {
    run_simple(
        "flatten",
        &a.state,
        &Request::Flatten {
            symbol: a.symbol.clone(),
        },
    )
}

/// `oracle resume`.
pub fn run_resume(a: &ResumeArgs) -> ExitCode {
    run_simple("resume", &a.state, &Request::Resume)
}

/// `oracle enable SYMBOL` (`enable` true) / `oracle disable SYMBOL`.
pub fn run_enable(a: &SymbolArgs, enable: bool) -> ExitCode {
    let symbol = a.symbol.clone();
    if enable {
        run_simple("enable", &a.state, &Request::Enable { symbol })
    } else {
        run_simple("disable", &a.state, &Request::Disable { symbol })
    }
}
