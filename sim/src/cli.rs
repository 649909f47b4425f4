//! The `oracle-sim` command line (also `oracle sim`, through [`run_cli`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

use crate::bars::{self, Period, PeriodExt};
use crate::calendar::CalendarMode;
use crate::config::{AccountConfig, AppConfig, BrokerConfig, Fault, Speed, TokenConfig};
use crate::market::Start;
use crate::msg::Scope;
use crate::server::{self, SimConfig};
use crate::symbols;
use crate::tls::TlsSource;

/// A protocol-faithful cTrader Open API server (TLS + length-prefixed protobuf) replaying bar
/// files, with fault injection. Binds loopback only unless told otherwise.
///
/// Credentials come from the environment (ORACLE_SIM_CLIENT_ID, _CLIENT_SECRET, _ACCESS_TOKEN,
/// _REFRESH_TOKEN, else the same names with ORACLE_CTRADER_, as the executor reads them) or
/// default to fixed test values; they are never logged. ORACLE_CTRADER_ACCOUNT_ID sets the
/// default account's id. `--credentials-out` writes them to a 0600 env file for the executor.
#[derive(Debug, Parser)]
#[command(name = "oracle-sim", version, about, long_about = None)]
pub struct Args {
    /// Address to listen on (loopback only unless --allow-non-loopback).
    #[arg(long, default_value = "127.0.0.1:5035")]
    pub listen: SocketAddr,
    /// Listen on 127.0.0.1:PORT instead (0: pick a free port; the address is printed).
    #[arg(long, conflicts_with = "listen")]
    pub port: Option<u16>,
    /// Folder of bar files `SYM_TF.csv` (header time,open,high,low,close,volume).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Folder of model zips; each zip comment's `training_config` sets its symbol's spec.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Without bar files: synthesize N bars of EURUSD, US500 and AAPL (seeded random walk).
    #[arg(long, value_name = "N")]
    pub synthetic: Option<usize>,
    /// Period of synthetic bars.
    #[arg(long, default_value = "M15", value_parser = parse_period)]
    pub synthetic_period: Period,
    /// Replay speed: fast (as fast as the clients read), realtime, `<N>x` (N × real time), or a
    /// bare number N (N bars per second per stream).
    #[arg(long, default_value = "fast", value_parser = Speed::parse)]
    pub speed: Speed,
    /// Seed of every random choice (slippage jitter, random drops, tokens, garbage).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replay start (ISO-8601 UTC); the bars before it are history.
    #[arg(long, value_parser = parse_time)]
    pub start: Option<i64>,
    /// Without --start: the first N bars of each file are history (the replay starts after
    /// them; with files of different lengths, at the latest such time).
    #[arg(long, visible_alias = "history", default_value_t = 500)]
    pub history_bars: usize,
    /// Publish only N live bars per stream (counted in the coarsest period), then stop; the
    /// opening tick of the next bar is still sent so the last one is seen to close.
    #[arg(long, value_name = "N")]
    pub bars: Option<usize>,
    /// Shift all bars by whole days so the replay starts at (or just after) the current time:
    /// server timestamps then look live.
    #[arg(long)]
    pub rebase_now: bool,
    /// Hold the replay until this file exists.
    #[arg(long, value_name = "FILE")]
    pub start_file: Option<PathBuf>,
    /// JSON log lines; on stdout, `{"event":"listening","addr":…}` and `{"event":"replay_done"}`.
    #[arg(long)]
    pub json: bool,
    /// Write the CA certificate (PEM) clients must trust here (`--ca` on the client), before
    /// accepting connections.
    #[arg(long, visible_alias = "ca-out", value_name = "PATH")]
    pub cert_out: Option<PathBuf>,
    /// Use this certificate chain (PEM) instead of generating one (with --key).
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) for --cert.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Accounts: ID:BALANCE[:LEVERAGE[:live|demo]], comma separated (default 1001:100000:100).
    /// The access token grants all of them.
    #[arg(long, value_delimiter = ',')]
    pub accounts: Vec<String>,
    /// Access token scope: trade or view.
    #[arg(long, default_value = "trade")]
    pub scope: String,
    /// The access token expires this many seconds after start (negative: already expired).
    #[arg(long, default_value_t = 2_628_000, allow_negative_numbers = true)]
    pub token_expires_in: i64,
    /// Lifetime, in seconds, of every access token a refresh issues (cTrader: 2,628,000): with
    /// `--token-expires-in` the same, the token expires again and again at that period.
    #[arg(long, default_value_t = 2_628_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub token_ttl: i64,
    /// Write the credentials (and account id) as a 0600 env file for the executor.
    #[arg(long, value_name = "PATH")]
    pub credentials_out: Option<PathBuf>,
    /// Fault to inject (repeatable): `drop:after=N` | `drop:random=P` |
    /// `reject:code=CODE,every=N,symbol=S,via=error` (every/symbol/via optional) | `delay:ms=D` |
    /// `no-heartbeat` | `silence:after=N` | `garbage:after=N` | `oversized:after=N,len=B` |
    /// `lose-exec:every=N,only=filled` (both optional) | `spread:symbol=S,points=P,after=N`
    /// (after optional: market ticks before it applies) |
    /// `trading-mode:symbol=S,mode=close-only|disabled|disabled-with-pendings|enabled,after=N`
    /// (after optional; announced by SymbolChangedEvent) | `delta-high-bug` |
    /// `blocked:retry-after=S,kind=REQ,every=N` (kind/every optional: BLOCKED_PAYLOAD_TYPE) |
    /// `maintenance:after=S,for=D` (wall seconds from start: SERVER_IS_UNDER_MAINTENANCE) |
    /// `client-disconnect:after=N` | `connections-limit:max=N` |
    /// `no-answer:kind=REQ,every=N` (executed, never answered); most take `times=K`
    /// to fire at most K times. See sim/README.md.
    #[arg(long = "fault", value_parser = Fault::parse)]
    pub faults: Vec<Fault>,
    /// Trading hours: `always-open` (default: around the clock, UTC, no holidays) or
    /// `realistic` (FX Sunday 22:00 – Friday 22:00 UTC, indices New York hours with a daily
    /// break, stocks 09:30–16:00 New York, Christmas closed), served in SymbolByIdRes and
    /// enforced on market time (MARKET_CLOSED, no spots, no bars). See sim/README.md.
    #[arg(long, default_value = "always-open", value_parser = CalendarMode::parse)]
    pub calendar: CalendarMode,
    /// List a symbol under the broker's name (repeatable): `US500=US500.cash` (FTMO-style; the
    /// bar files keep the model's name). Faults name symbols by the broker's name.
    #[arg(long = "broker-symbol", value_name = "MODEL=BROKER", value_parser = parse_broker_symbol)]
    pub broker_symbols: Vec<(String, String)>,
    /// The accounts' deposit currency (three capital letters): `USD` (default) or another one
    /// paired with USD by a traded symbol (`EUR` with EURUSD), whose price at the replay's start
    /// converts the symbols' USD money. See sim/README.md.
    #[arg(long = "deposit-currency", default_value = "USD", value_name = "CCY",
          value_parser = crate::config::parse_deposit_currency)]
    pub deposit_currency: String,
    /// Keep the simulator's memory warm between bars, as a broker's busy server is: every this
    /// many milliseconds a thread reads one byte of each resident page (0: off, the default).
    /// The bench turns it on so that the simulator's own cold pages stay out of its bar → order
    /// figures.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub keep_warm_ms: u64,
    /// Server heartbeat interval, seconds.
    #[arg(long, default_value_t = 10)]
    pub heartbeat_s: u64,
    /// Disconnect a client silent for this long, seconds.
    #[arg(long, default_value_t = 30)]
    pub idle_timeout_s: u64,
    /// Fast speed: after a tick that closes a subscribed live bar, hold the replay this many ms
    /// so clients act on the closed bar at the next bar's opening price.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub bar_pause_ms: u64,
    /// Fixed adverse slippage in points for every symbol (overrides the models' slippage_points).
    #[arg(long, value_name = "POINTS")]
    pub slippage: Option<i64>,
    /// Extra random adverse slippage per fill, 0..=N points (seeded).
    #[arg(long, default_value_t = 0)]
    pub slippage_random: i64,
    /// Most trendbars per GetTrendbarsRes (then hasMore).
    #[arg(long, default_value_t = 5000)]
    pub max_bars: usize,
    /// Largest frame accepted from a client, bytes.
    #[arg(long, default_value_t = oracle_ctrader::frame::DEFAULT_MAX_FRAME_LEN)]
    pub max_frame: usize,
    /// Timing hook for the end-to-end benchmark and the chaos proof: create (truncate) FILE and
    /// append JSONL lines, flushed one by one, with the wall clock in µs (`t_us`): `bar_close`
    /// (a live bar's close written to a client), `new_order` (a NewOrderReq decoded),
    /// `disconnect` (a connection ended, or went silent by fault). Off by default.
    #[arg(long, value_name = "FILE")]
    pub timing_out: Option<PathBuf>,
    /// Allow a non-loopback --listen address.
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// Log filter (tracing EnvFilter syntax: `info`, `debug`, `oracle_sim=debug`). Default:
    /// RUST_LOG, else `info`.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
}

/// `MODEL=BROKER` of `--broker-symbol`.
fn parse_broker_symbol(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((m, b)) if !m.trim().is_empty() && !b.trim().is_empty() => {
            Ok((m.trim().to_string(), b.trim().to_string()))
        }
        _ => Err(format!(
            "--broker-symbol {s}: expected MODEL=BROKER, e.g. US500=US500.cash"
        )),
    }
}

fn parse_period(s: &str) -> Result<Period, String> {
    Period::parse_name(s).ok_or_else(|| format!("unknown period `{s}` (M1 … MN1)"))
}

fn parse_time(s: &str) -> Result<i64, String> {
    bars::parse_iso_utc(s).ok_or_else(|| format!("`{s}` is not an ISO-8601 UTC time"))
}

/// `ORACLE_SIM_<NAME>`, else `ORACLE_CTRADER_<NAME>` (so a demo can give the sim and the executor
/// the same environment), else the default.
fn env_or(name: &str, default: &str) -> String {
    [
        format!("ORACLE_SIM_{name}"),
        format!("ORACLE_CTRADER_{name}"),
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    .unwrap_or_else(|| default.to_string())
}

/// Builds the simulator configuration from parsed arguments (no I/O except reading data files).
pub fn sim_config(args: &Args) -> anyhow::Result<SimConfig> {
    let listen = match args.port {
        Some(p) => SocketAddr::from(([127, 0, 0, 1], p)),
        None => args.listen,
    };
    if !listen.ip().is_loopback() && !args.allow_non_loopback {
        anyhow::bail!(
            "--listen {listen} is not a loopback address (add --allow-non-loopback to insist)"
        );
    }
    let mut warnings = Vec::new();
    let mut syms =
        symbols::load_symbols(args.data.as_deref(), args.models.as_deref(), &mut warnings);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if let Some(n) = args.synthetic {
        let start = bars::parse_iso_utc("2024-01-01T00:00:00Z").unwrap_or(0);
        for name in ["EURUSD", "US500", "AAPL"] {
            if !syms.iter().any(|s| s.spec.name == name) {
                syms.push(symbols::synthetic(
                    name,
                    args.synthetic_period,
                    n,
                    start,
                    args.seed,
                ));
            }
        }
    }
    if let Some(points) = args.slippage {
        for s in &mut syms {
            s.spec.slippage_points = points.max(0);
        }
    }
    if syms.is_empty() {
        anyhow::bail!("no symbols: give --data with bar files (SYM_TF.csv) or --synthetic N");
    }
    let accounts = if args.accounts.is_empty() {
        let mut a = BrokerConfig::default().accounts;
        if let Some(id) = std::env::var("ORACLE_CTRADER_ACCOUNT_ID")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            if id > 0 {
                a[0].id = id;
                a[0].login = 7_000_000 + id;
            }
        }
        a
    } else {
        args.accounts
            .iter()
            .map(|a| AccountConfig::parse(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?
    };
    let scope = match args.scope.as_str() {
        "trade" => Scope::Trade,
        "view" => Scope::View,
        s => anyhow::bail!("--scope {s}: expected trade or view"),
    };
    let broker = BrokerConfig {
        seed: args.seed,
        apps: vec![AppConfig {
            client_id: env_or("CLIENT_ID", crate::config::DEFAULT_CLIENT_ID),
            client_secret: env_or("CLIENT_SECRET", crate::config::DEFAULT_CLIENT_SECRET),
        }],
        tokens: vec![TokenConfig {
            access_token: env_or("ACCESS_TOKEN", crate::config::DEFAULT_ACCESS_TOKEN),
            refresh_token: env_or("REFRESH_TOKEN", crate::config::DEFAULT_REFRESH_TOKEN),
            scope,
            accounts: accounts.iter().map(|a| a.id).collect(),
            expires_in_s: args.token_expires_in,
        }],
        accounts,
        heartbeat_interval_ms: (args.heartbeat_s.max(1) * 1000) as i64,
        idle_timeout_ms: (args.idle_timeout_s.max(1) * 1000) as i64,
        speed: args.speed,
        slippage_random_points: args.slippage_random.max(0),
        bar_pause_ms: args.bar_pause_ms,
        max_bars_per_response: args.max_bars.max(1),
        faults: args.faults.clone(),
        calendar: args.calendar,
        token_ttl_s: args.token_ttl,
        broker_names: args.broker_symbols.iter().cloned().collect(),
        deposit_currency: args.deposit_currency.clone(),
        ..BrokerConfig::default()
    };
    let tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => TlsSource::Generate,
    };
    Ok(SimConfig {
        listen,
        live_bars: args.bars,
        start_file: args.start_file.clone(),
        ca_out: args.cert_out.clone(),
        rebase_to_now: args.rebase_now,
        broker,
        symbols: syms,
        start: args
            .start
            .map_or(Start::AfterBars(args.history_bars), Start::At),
        tls,
        max_frame_len: args.max_frame,
        timing_out: args.timing_out.clone(),
        ..SimConfig::default()
    })
}

/// Writes the sim's credentials as an env file (mode 0600), under both the deploy names
/// (`ORACLE_CTRADER_*`) and the `oracle-ctrader` client's (`CTRADER_*`).
pub fn write_credentials(path: &std::path::Path, cfg: &SimConfig) -> anyhow::Result<()> {
    let app = cfg
        .broker
        .apps
        .first()
        .context("no application configured")?;
    let tok = cfg.broker.tokens.first().context("no token configured")?;
    let account = tok.accounts.first().copied().unwrap_or_default();
    let mut text =
        String::from("# oracle-sim credentials (test values, not secrets of any real broker)\n");
    for prefix in ["ORACLE_CTRADER_", "CTRADER_"] {
        text.push_str(&format!(
            "{prefix}CLIENT_ID={}\n{prefix}CLIENT_SECRET={}\n{prefix}ACCESS_TOKEN={}\n{prefix}REFRESH_TOKEN={}\n{prefix}ACCOUNT_ID={account}\n",
            app.client_id, app.client_secret, tok.access_token, tok.refresh_token
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write as _;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Runs the simulator from command-line arguments (`args[0]` is the program name) until Ctrl-C
/// or SIGTERM, and returns the process exit code (0 on a signal, 1 on an error, 2 on bad
/// arguments). Sets up `tracing` output if nobody has yet. This is what `oracle sim` calls.
pub fn run_cli<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match try_run(args) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("oracle-sim: {e:#}");
            1
        }
    }
}

/// The log filter: `--log`, else `RUST_LOG`, else `info` (the executor's and the predictor's
/// rule); one that does not parse is an error naming where it came from.
fn log_filter(flag: Option<&str>) -> anyhow::Result<tracing_subscriber::EnvFilter> {
    let (text, from) = match flag {
        Some(f) => (f.to_string(), "--log"),
        None => match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => (v, "RUST_LOG"),
            _ => ("info".to_string(), "default"),
        },
    };
    tracing_subscriber::EnvFilter::try_new(&text).map_err(|e| {
        anyhow::anyhow!(
            "{from} {text:?}: not a log filter (e.g. info, debug, oracle_sim=debug): {e}"
        )
    })
}

/// Logs on stderr: text (colours only when stderr is a terminal) or flat JSON lines (the
/// executor's and the predictor's shape).
fn init_tracing(args: &Args) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter(args.log.as_deref())?)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if args.json {
        builder
            .json()
            .flatten_event(true)
            .with_target(false)
            .try_init()
    } else {
        builder.try_init()
    };
    Ok(())
}

async fn terminated() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
    }
}

fn try_run(args: Args) -> anyhow::Result<()> {
    init_tracing(&args)?;
    oracle_resident::warm::start_logged(args.keep_warm_ms);
    let cfg = sim_config(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    rt.block_on(async move {
        if let Some(path) = &args.credentials_out {
            write_credentials(path, &cfg)?;
            tracing::info!(path = %path.display(), "credentials written (0600)");
        }
        let handle = server::spawn(cfg.clone()).await?;
        // A line on stdout that scripts can wait for.
        if args.json {
            println!(
                "{}",
                serde_json::json!({"event": "listening", "addr": handle.addr.to_string()})
            );
        } else {
            println!("oracle-sim listening on {}", handle.addr);
        }
        let json = args.json;
        let done = async {
            handle.replay_done().await;
            if json {
                println!("{}", serde_json::json!({"event": "replay_done"}));
            } else {
                println!("oracle-sim replay done");
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            r = terminated() => r?,
            _ = done => {}
        }
        tracing::info!("signal: stopping");
        handle.shutdown().await;
        Ok(())
    })
}
