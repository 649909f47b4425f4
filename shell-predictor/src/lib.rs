//! `oracle-predictor`: the brain. A thin Tokio shell around the digital-twin core: it loads every
//! atomic model zip in a folder (and picks up new ones without a restart), connects to the
//! executor's IPC WebSocket, warms the twins up from history, turns each closed bar into one
//! `SIGNAL` per model, logs `ACK`s and counts drift without ever touching a virtual position, and
//! persists every twin's state atomically after every bar so a restart continues exactly.
//!
//! Entry points: [`run_cli`] (what `oracle predictor` and the `oracle-predictor` binary call) and
//! [`engine::Predictor`] (the logic without sockets, for tests and embedding).

pub mod engine;
pub mod isotime;
pub mod shell;
pub mod store;
pub mod twins;
pub mod wire;

use clap::Parser;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Command line of the predictor.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "oracle-predictor",
    version,
    about = "The predictor: digital twins of the models, one SIGNAL per model per closed bar"
)]
pub struct Args {
    /// Folder of atomic model zips (polled; new zips are picked up without a restart).
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Folder of the twin state file (predictor-state.json).
    #[arg(long, default_value = "state")]
    pub state: PathBuf,
    /// Folder for the per-model traces (NAME.csv, the `oracle replay` format).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// The executor's IPC WebSocket.
    #[arg(long, default_value = "ws://127.0.0.1:8765")]
    pub ipc: String,
    /// A 0600 file holding the IPC token (otherwise ORACLE_IPC_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// JSON log lines (one per decision) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Models-folder poll period, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// Bars asked for beyond the window when catching up from a saved state or a reconnect.
    #[arg(long, default_value_t = 2000)]
    pub history_extra: usize,
    /// Exit when the executor closes the connection instead of reconnecting.
    #[arg(long)]
    pub once: bool,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `debug`. Default: RUST_LOG, else
    /// `info`.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// A configuration file whose `alerts` section names the alert channels (the executor's
    /// executor_config.json, docs/alerts.md): a model refused at load, the start and the stop
    /// are told there. The Telegram bot token and chat id come from the environment (the
    /// secrets file the unit loads: ORACLE_TELEGRAM_BOT_TOKEN, ORACLE_TELEGRAM_CHAT_ID).
    #[arg(long, value_name = "FILE")]
    pub alerts_config: Option<PathBuf>,
    /// Keep the process's memory warm between bars: every this many milliseconds a thread reads
    /// one byte of each resident page (0: off). A bar after minutes of idle otherwise finds its
    /// pages cold (caches, and on a VM the host's mappings): measured on the development VM, a
    /// page read after seconds of idle costs ~40 µs. README, "Performance", says what it costs.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub keep_warm_ms: u64,
}

/// The alert sender of `--alerts-config` (off without it, or without an `alerts` section). The
/// error names the file, the field or the missing secret; `ORACLE_ALERTS_CA` (a PEM file) makes
/// it trust exactly that CA (a relay, a test server).
pub fn alerts_from(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<oracle_alerts::Alerts> {
    let Some(path) = path else {
        return Ok(oracle_alerts::Alerts::off());
    };
    let shown = path.display();
    let doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(path).map_err(|e| anyhow::anyhow!("--alerts-config {shown}: {e}"))?,
    )
    .map_err(|e| anyhow::anyhow!("--alerts-config {shown}: not valid JSON: {e}"))?;
    let Some(section) = doc.get("alerts") else {
        anyhow::bail!("--alerts-config {shown}: no `alerts` section (docs/alerts.md)");
    };
    let cfg: oracle_alerts::AlertsConfig = serde_json::from_value(section.clone())
        .map_err(|e| anyhow::anyhow!("--alerts-config {shown}: alerts: {e}"))?;
    let mut b = oracle_alerts::AlertsBuilder::new(cfg.clone());
    if cfg.telegram {
        b = b.telegram(
            oracle_alerts::TelegramSecrets::from_lookup(env).map_err(anyhow::Error::msg)?,
        );
    }
    if let Some(ca) = env("ORACLE_ALERTS_CA") {
        let pem = std::fs::read(&ca).map_err(|e| anyhow::anyhow!("ORACLE_ALERTS_CA={ca}: {e}"))?;
        b = b.ca_pem(&pem);
    }
    if let Some(t) = env("ORACLE_IPC_TOKEN") {
        b = b.redact(&t);
    }
    b.start()
        .map_err(|e| anyhow::anyhow!("--alerts-config {shown}: {e}"))
}

/// Reads the IPC token: the file (which must not be readable by group or others) or
/// `ORACLE_IPC_TOKEN`.
pub fn read_token(file: Option<&Path>) -> anyhow::Result<String> {
    if let Some(f) = file {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(f)?.permissions().mode();
            if mode & 0o077 != 0 {
                anyhow::bail!(
                    "{}: token file mode is {:o}; make it 0600 (chmod 600 {})",
                    f.display(),
                    mode & 0o777,
                    f.display()
                );
            }
        }
        let t = std::fs::read_to_string(f)?;
        let t = t.trim();
        if t.is_empty() {
            anyhow::bail!("{}: empty token file", f.display());
        }
        return Ok(t.to_string());
    }
    match std::env::var("ORACLE_IPC_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        _ => anyhow::bail!("no IPC token: set ORACLE_IPC_TOKEN or pass --token-file"),
    }
}

/// The log filter: `--log`, else `RUST_LOG`, else `info` (the executor's and the simulator's
/// rule); one that does not parse is an error naming where it came from.
pub fn log_filter(flag: Option<&str>) -> Result<tracing_subscriber::EnvFilter, String> {
    let (text, from) = match flag {
        Some(f) => (f.to_string(), "--log"),
        None => match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => (v, "RUST_LOG"),
            _ => ("info".to_string(), "default"),
        },
    };
    tracing_subscriber::EnvFilter::try_new(&text).map_err(|e| {
        format!("{from} {text:?}: not a log filter (e.g. info, debug, oracle_predictor=debug): {e}")
    })
}

/// Installs the tracing subscriber (text or flat JSON lines, to stdout; colours only when stdout
/// is a terminal). Safe to call once per process.
pub fn init_logs(json: bool, filter: tracing_subscriber::EnvFilter) {
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .with_target(false);
    let _ = if json {
        b.json().flatten_event(true).try_init()
    } else {
        b.try_init()
    };
}

/// Runs the predictor with a given loader (tests plug their own here).
pub fn run_with(args: Args, loader: Arc<dyn twins::Loader>) -> anyhow::Result<()> {
    let token = read_token(args.token_file.as_deref())?;
    let alerts = alerts_from(args.alerts_config.as_deref(), &|k| std::env::var(k).ok())?;
    let settings = engine::Settings {
        models_dir: args.models.clone(),
        state_dir: args.state.clone(),
        trace_dir: args.trace.clone(),
        history_extra: args.history_extra,
    };
    let mut p = engine::Predictor::new(settings, loader)?;
    p.set_alerts(alerts.clone());
    let cfg = shell::ShellConfig {
        url: args.ipc.clone(),
        token,
        poll: Duration::from_millis(args.poll_ms.max(10)),
        once: args.once,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    alerts.push(oracle_alerts::Event::Started {
        process: "oracle-predictor".into(),
        detail: format!("models {}", args.models.display()),
    });
    let r = rt.block_on(shell::run(cfg, p));
    alerts.push(oracle_alerts::Event::Stopping {
        process: "oracle-predictor".into(),
        reason: match &r {
            Ok(()) => "shutdown".to_string(),
            Err(e) => format!("error: {e:#}"),
        },
    });
    alerts.close(Duration::from_secs(10));
    r
}

/// `oracle predictor …`: parses `args` (the first is the program name), runs, returns the exit
/// code (0 on a clean shutdown, 2 on bad arguments, 1 on a failure).
pub fn run_cli<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    oracle_resident::limit_arenas();
    oracle_resident::trim();
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let filter = match log_filter(args.log.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("oracle predictor: {e}");
            return 2;
        }
    };
    init_logs(args.json, filter);
    oracle_resident::warm::start_logged(args.keep_warm_ms);
    match run_with(args, Arc::new(twins::ZipLoader)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(event = "fatal", error = %e, "predictor failed: {e:#}");
            eprintln!("oracle predictor: {e:#}");
            1
        }
    }
}
