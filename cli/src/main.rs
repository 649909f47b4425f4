//! `oracle`: one binary for the whole system. `demo` runs simulator + executor + predictor as
//! separate processes with a live view and a report; `sim`, `executor` and `predictor` run one
//! process each; `replay` prints a model's per-bar trace over a bar file and `backtest` its
//! statistics and trade list; `history` downloads a broker's closed bars into a bar file;
//! `report --state` renders an executor's state folder as HTML;
//! `doctor` (package `oracle-ops`) checks a deployment; `alert-test` sends one test alert to each
//! channel (package `oracle-alerts`); `status`, `halt`, `flatten`, `resume`, `enable` and
//! `disable` command the running executor over its operator channel (docs/operator.md). The
//! development harness (bench, chaos) is not here: it is `oracle-dev` (package `oracle-xtask`).

mod alert_test;
mod auth;
mod demo;
mod deps;
mod history;
mod operator;
mod state_report;

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "oracle",
    version,
    propagate_version = true,
    about = "Oracle Trader v2: live trading runtime for RL models"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The whole system on the bundled models and bars, with a live view and an HTML report.
    Demo(demo::DemoArgs),
    /// The cTrader Open API simulator (`oracle sim --help`).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Sim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// The executor: broker session, risk guard, journal, paper book (`oracle executor --help`).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Executor {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// The predictor: digital twins, one signal per model per bar (`oracle predictor --help`).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Predictor {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// One trace line per bar of a bar file through one model (docs/contract.md §8).
    Replay {
        /// The model zip.
        #[arg(long)]
        model: PathBuf,
        /// The bar CSV.
        #[arg(long)]
        bars: PathBuf,
    },
    /// Backtest statistics and the trade list of one model over a bar file (docs/backtest.md).
    Backtest {
        /// The model zip.
        #[arg(long)]
        model: PathBuf,
        /// The bar CSV.
        #[arg(long)]
        bars: PathBuf,
        /// The initial capital the returns and drawdown are relative to (account currency).
        #[arg(long, default_value_t = oracle_model::DEFAULT_CAPITAL)]
        capital: f64,
        /// Where to write the trade list (CSV) [default: out/backtest/SYM_TF.trades.csv].
        #[arg(long)]
        trades: Option<PathBuf>,
        /// Print the figures as JSON (full precision) instead of the text summary.
        #[arg(long)]
        json: bool,
        /// Also write the tearsheet: one self-contained HTML page (equity, drawdown, statistics,
        /// monthly returns and costs, trade list; docs/report.md).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// The account currency's name on the tearsheet (money is in the currency of the
        /// model's pip_value).
        #[arg(long, default_value = "account currency", value_name = "CODE")]
        currency: String,
    },
    /// The HTML report of an executor's state folder (live and/or paper): equity, drawdown,
    /// per-model statistics, fills, monthly returns, the prop-firm guard's day-by-day headroom.
    Report(state_report::ReportArgs),
    /// Deployment checks, one line each: OK/WARN/FAIL with the fix.
    Doctor(oracle_ops::DoctorArgs),
    /// OAuth for a cTrader application: the token pair in the token file (`--refresh`: a new one).
    Auth(auth::AuthArgs),
    /// The accounts the access token can trade: ctidTraderAccountId, live/demo, broker, balance.
    Accounts(auth::AccountsArgs),
    /// The broker's own closed bars of a symbol and timeframe over a span, as a bar file.
    History(history::HistoryArgs),
    /// One test message to each configured alert channel (Telegram, the webhook).
    AlertTest(alert_test::AlertTestArgs),
    /// The running executor's status: per model the virtual, real and paper positions, the
    /// accounts, the guard's headroom, the broker connection and the token's expiry.
    Status(operator::StatusArgs),
    /// Halt the running executor: entries refused until `oracle resume`, exits go on
    /// (`--flatten`: close every position too).
    Halt(operator::HaltArgs),
    /// Close the positions of one symbol, or of every symbol (`all`), in the running executor.
    Flatten(operator::FlattenArgs),
    /// Lift a halt of the running executor.
    Resume(operator::ResumeArgs),
    /// Trade a symbol again: applied now and written to executor_config.json.
    Enable(operator::SymbolArgs),
    /// Take no new entry for a symbol (exits go on): applied now and written to
    /// executor_config.json.
    Disable(operator::SymbolArgs),
}

fn with_name(name: &str, args: Vec<OsString>) -> Vec<OsString> {
    let mut v = vec![OsString::from(format!("oracle {name}"))];
    v.extend(args);
    v
}

fn code(c: i32) -> ExitCode {
    ExitCode::from(u8::try_from(c).unwrap_or(1))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Demo(a) => code(demo::run(&a)),
        Cmd::Sim { args } => deps::sim(with_name("sim", args)),
        Cmd::Executor { args } => deps::executor(with_name("executor", args)),
        Cmd::Predictor { args } => deps::predictor(with_name("predictor", args)),
        Cmd::Replay { model, bars } => {
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut err = stderr.lock();
            let r = deps::replay(&model, &bars, &mut out, &mut err);
            let flushed = std::io::Write::flush(&mut out);
            match (r, flushed) {
                (Ok(()), Ok(())) => ExitCode::SUCCESS,
                (Err(e), _) => {
                    eprintln!("oracle replay: {e:#}");
                    ExitCode::FAILURE
                }
                (_, Err(e)) => {
                    eprintln!("oracle replay: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Backtest {
            model,
            bars,
            capital,
            trades,
            json,
            html,
            currency,
        } => match run_backtest(
            &model,
            &bars,
            capital,
            trades,
            json,
            html.as_deref(),
            &currency,
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("oracle backtest: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::Report(a) => state_report::run_report(&a),
        Cmd::Doctor(a) => oracle_ops::run_doctor(&a),
        Cmd::Auth(a) => auth::run_auth(&a),
        Cmd::Accounts(a) => auth::run_accounts(&a),
        Cmd::History(a) => history::run_history(&a),
        Cmd::AlertTest(a) => alert_test::run_alert_test(&a),
        Cmd::Status(a) => operator::run_status(&a),
        Cmd::Halt(a) => operator::run_halt(&a),
        Cmd::Flatten(a) => operator::run_flatten(&a),
        Cmd::Resume(a) => operator::run_resume(&a),
        Cmd::Enable(a) => operator::run_enable(&a, true),
        Cmd::Disable(a) => operator::run_enable(&a, false),
    }
}

/// `oracle backtest`: the summary on stdout, the trade list to `trades` (or
/// `out/backtest/SYM_TF.trades.csv`), rejected bar lines and where the list went on stderr.
fn run_backtest(
    model: &std::path::Path,
    bars: &std::path::Path,
    capital: f64,
    trades: Option<PathBuf>,
    json: bool,
    html: Option<&std::path::Path>,
    currency: &str,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let stderr = std::io::stderr();
    let b = oracle_model::backtest(model, bars, capital, &mut stderr.lock())?;
    let path = trades
        .unwrap_or_else(|| PathBuf::from("out/backtest").join(format!("{}.trades.csv", b.name)));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the folder", dir.display()))?;
    }
    std::fs::write(&path, b.trades_csv())
        .with_context(|| format!("{}: cannot write the trade list", path.display()))?;
    if let Some(page) = html {
        if let Some(dir) = page.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create the folder", dir.display()))?;
        }
        let text = oracle_report::page(
            &b,
            &model.display().to_string(),
            &bars.display().to_string(),
            currency,
        );
        std::fs::write(page, text)
            .with_context(|| format!("{}: cannot write the tearsheet", page.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if json {
        let mut text = serde_json::to_string_pretty(&b.to_json())?;
        text.push('\n');
        out.write_all(text.as_bytes())?;
    } else {
        out.write_all(b.summary().as_bytes())?;
    }
    out.flush()?;
    eprintln!(
        "trade list: {} ({} closed trades)",
        path.display(),
        b.stats.trades
    );
    if let Some(page) = html {
        eprintln!("tearsheet: {}", page.display());
    }
    Ok(())
}
