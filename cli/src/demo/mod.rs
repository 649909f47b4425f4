//! `oracle demo`: the whole system on built-in defaults, with no network. The simulator, the
//! executor and the predictor run as separate processes (this binary re-executed) over real TLS
//! and the real loopback WebSocket, on the bundled models and bars; a live view while it runs; a
//! drift and P&L summary and an HTML report at the end. Every child is stopped on every exit path
//! (normal end, error, Ctrl-C; and by the kernel if the demo itself is killed).

pub mod report;
pub mod view;

use oracle_procs::files::{Follow, fresh_dir, tail};
use oracle_procs::market::{self, MarketSpec};
use oracle_procs::supervisor::{self as procs, Group, INTERRUPTED, Output, Proc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use view::State;

/// `oracle demo` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Live market time in hours, i.e. live bars of an H1 model; every model sees
    /// `bars × 1 h / its period` live bars (M5: 12 × bars, D1: bars / 24).
    #[arg(long, default_value_t = 24)]
    pub bars: u64,
    /// Simulator speed: `<N>x` (market time N × wall time), `<N>` (bars per second of the
    /// coarsest source period) or `fast`; default: the live part lasts about 25 s.
    #[arg(long)]
    pub speed: Option<String>,
    /// History bars behind every model when the live replay starts (at least the window, 350).
    #[arg(long, default_value_t = 400)]
    pub history: u64,
    /// Output folder: report.html, summary.json, logs/, trace/, state/, executor/.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Models folder (default: ./models, or the one beside the binary's checkout).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Bars folder (default: ./data, or the one beside the binary's checkout).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Plain log lines even on a terminal.
    #[arg(long)]
    pub plain: bool,
}

/// One model's line of the summary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ModelSummary {
    /// Symbol.
    pub symbol: String,
    /// Timeframe.
    pub tf: String,
    /// Live bars the market was to publish for it inside the run's span (`--bars` hours).
    pub expected_bars: u64,
    /// Live bars the predictor ran (the span's and the tail's).
    pub live_bars: u64,
    /// Of those, bars inside the span: `span_bars/expected_bars` is the run's progress.
    pub span_bars: u64,
    /// Signals it sent.
    pub signals: u64,
    /// Orders the executor placed.
    pub orders: u64,
    /// Refusals (FAIL, WAIT_SYNC).
    pub refusals: u64,
    /// Live bars where the real position differed from the virtual one.
    pub drift_bars: usize,
    /// The same by cause (`MISSED_ENTRY_AT_GO_LIVE`, `BROKER_MARKET_CLOSED`, `UNANSWERED`…).
    pub drift_causes: BTreeMap<String, usize>,
    /// Virtual P&L at the end (the twin's: realised since its history began + unrealised).
    pub virtual_pnl: f64,
    /// Virtual P&L over the live bars (its change since the first live bar).
    pub virtual_pnl_live: f64,
    /// Trace rows (history and live).
    pub trace_rows: usize,
    /// Whether the trace equals `oracle replay` over the same bars (None: not compared).
    pub replay_match: Option<bool>,
    /// Why it was not compared, or where it differs.
    pub replay_note: String,
}

/// The end-of-run summary (also written as summary.json).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Per model.
    pub models: BTreeMap<String, ModelSummary>,
    /// Refused zips: (file, reason).
    pub refused: Vec<(String, String)>,
    /// Hours of live market asked of the simulator.
    pub target_bars: u64,
    /// Wall time.
    pub seconds: f64,
    /// Every model sent exactly one signal per live bar it received.
    pub one_signal_per_bar: bool,
    /// Totals.
    pub signals: u64,
    /// Orders.
    pub orders: u64,
    /// Refusals.
    pub refusals: u64,
    /// Drift bars over all models.
    pub drift_bars: usize,
    /// The same by cause, over all models.
    pub drift_causes: BTreeMap<String, usize>,
    /// Virtual P&L over all models.
    pub virtual_pnl: f64,
    /// Virtual P&L over the live bars, all models.
    pub virtual_pnl_live: f64,
    /// Last account equity from the executor's ledger.
    pub equity: Option<f64>,
    /// Its change since the ledger's first row (the first live bar).
    pub equity_change: Option<f64>,
    /// How each child ended, e.g. `sim stopped · executor stopped · predictor exit 0`.
    pub children_exit: String,
    /// Every child ended well.
    pub children_ok: bool,
    /// Everything checked out.
    pub ok: bool,
    /// The report's path.
    pub report: String,
}

impl Summary {
    /// Models whose trace equals the replay.
    pub fn replay_matched(&self) -> usize {
        self.models
            .values()
            .filter(|m| m.replay_match == Some(true))
            .count()
    }
    /// Every model compared and equal.
    pub fn replay_ok(&self) -> bool {
        !self.models.is_empty() && self.models.values().all(|m| m.replay_match == Some(true))
    }
}

/// Finds `name` (models/, data/) in the working directory or above the binary.
fn find_dir(given: Option<&PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let cwd = PathBuf::from(name);
    if cwd.is_dir() {
        return Ok(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            let c = dir.join(name);
            if c.is_dir() && dir.join("Cargo.toml").is_file() {
                return Ok(c);
            }
        }
    }
    anyhow::bail!("no {name}/ folder here or above the oracle binary; pass --{name} DIR")
}

/// Child `idx` of the demo: this binary re-executed with `args` and `envs`, its output in
/// `logs/NAME.log` and on `tx` (the live view), under the one supervisor.
fn spawn(
    idx: usize,
    name: &str,
    exe: &Path,
    args: &[String],
    envs: &[(String, String)],
    logs: &Path,
    tx: &mpsc::Sender<procs::Line>,
) -> anyhow::Result<Proc> {
    let mut cmd = std::process::Command::new(exe);
    cmd.args(args).envs(envs.iter().map(|(k, v)| (k, v)));
    Proc::spawn(
        name,
        cmd,
        &logs.join(format!("{name}.log")),
        Output::Lines { idx, tx },
    )
}

struct Screen {
    tty: bool,
    drawn: usize,
    last_plain: Instant,
}

impl Screen {
    fn draw(&mut self, s: &State) {
        if !self.tty {
            if self.last_plain.elapsed() >= Duration::from_secs(2) {
                println!("{}", s.progress_line());
                self.last_plain = Instant::now();
            }
            return;
        }
        let text = s.render();
        let mut out = std::io::stdout().lock();
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A\x1b[J", self.drawn);
        }
        let _ = write!(out, "{text}");
        let _ = out.flush();
        self.drawn = text.lines().count();
    }
    fn plain(&self, line: &str) {
        if !self.tty {
            println!("{line}");
        }
    }
}

/// Runs the demo; returns the process exit code.
pub fn run(args: &DemoArgs) -> i32 {
    procs::trap_signals();
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("oracle demo: {e:#}");
            1
        }
    }
}

fn run_inner(args: &DemoArgs) -> anyhow::Result<i32> {
    let models = find_dir(args.models.as_ref(), "models")?;
    let data = find_dir(args.data.as_ref(), "data")?;
    let out = args.out.clone();
    std::fs::create_dir_all(&out)?;
    for sub in ["state", "trace", "logs", "run", "executor"] {
        fresh_dir(&out.join(sub))?;
    }
    let exe = std::env::current_exe()?;
    let token = procs::random_token()?;
    let sim_port = procs::free_port()?;
    let ipc_port = procs::free_port()?;
    let run = out.join("run");
    let ca = run.join("sim-ca.pem");
    let creds = run.join("sim-credentials.env");
    let start_file = run.join("start");
    let logs = out.join("logs");
    let p = |x: &Path| x.display().to_string();
    let history = usize::try_from(args.history)?;
    let prepared = market::prepare(&models, &data, &run, &MarketSpec::new(history, args.bars))?;
    let speed = args
        .speed
        .clone()
        .unwrap_or_else(|| format!("{}x", (args.bars * 3600 / 25).max(1)));

    let tty = std::io::stdout().is_terminal() && !args.plain;
    let mut screen = Screen {
        tty,
        drawn: 0,
        last_plain: Instant::now(),
    };
    let mut state = State::new(prepared.expected.clone());
    state.span = span_bar_times(&prepared.live_bars, &prepared.expected);
    let (tx, rx) = mpsc::channel();
    let mut group = Group::default();
    screen.plain(&format!(
        "oracle demo: {} models · bars from {} · {} h of live market (an H1 model: {} bars) · speed {} · out {}",
        prepared.models.len(),
        data.display(),
        args.bars,
        args.bars,
        speed,
        out.display()
    ));

    // 1. The simulator (TLS), ready when its port accepts.
    let sim_args = vec![
        "sim".to_string(),
        "--listen".into(),
        format!("127.0.0.1:{sim_port}"),
        "--data".into(),
        p(&prepared.data),
        "--models".into(),
        p(&models),
        "--start".into(),
        prepared.start.clone(),
        "--speed".into(),
        speed.clone(),
        "--cert-out".into(),
        p(&ca),
        "--credentials-out".into(),
        p(&creds),
        "--start-file".into(),
        p(&start_file),
        "--json".into(),
    ];
    group
        .procs
        .push(spawn(0, "sim", &exe, &sim_args, &[], &logs, &tx)?);
    wait_ready(&mut group, 0, sim_port, &[&ca, &creds], &logs)?;
    let mut envs = vec![("ORACLE_IPC_TOKEN".to_string(), token.clone())];
    envs.extend(oracle_procs::files::read_env_file(&creds));
    let account = envs
        .iter()
        .find(|(k, _)| k == "ORACLE_CTRADER_ACCOUNT_ID")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| anyhow::anyhow!("{}: no ORACLE_CTRADER_ACCOUNT_ID", creds.display()))?;
    // 2. The executor (trusts the simulator's CA), ready when the IPC port accepts.
    let ex_args = vec![
        "executor".to_string(),
        "--config".into(),
        p(&prepared.executor_config),
        "--models".into(),
        p(&models),
        "--state".into(),
        p(&out.join("executor")),
        "--listen".into(),
        format!("127.0.0.1:{ipc_port}"),
        "--broker".into(),
        format!("127.0.0.1:{sim_port}"),
        "--account-id".into(),
        account,
        "--ca".into(),
        p(&ca),
        "--with-paper".into(),
        "--json".into(),
    ];
    group
        .procs
        .push(spawn(1, "executor", &exe, &ex_args, &envs, &logs, &tx)?);
    wait_ready(&mut group, 1, ipc_port, &[], &logs)?;
    // 3. The predictor.
    let pr_args = vec![
        "predictor".to_string(),
        "--models".into(),
        p(&models),
        "--state".into(),
        p(&out.join("state")),
        "--trace".into(),
        p(&out.join("trace")),
        "--ipc".into(),
        format!("ws://127.0.0.1:{ipc_port}"),
        "--json".into(),
    ];
    group
        .procs
        .push(spawn(2, "predictor", &exe, &pr_args, &envs, &logs, &tx)?);

    let mut ledger = Follow::new(&out.join("executor/drift.jsonl"));
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut finished_at: Option<Instant> = None;
    let mut started = false;
    let predictor_started = Instant::now();
    let mut last_event = Instant::now();
    let mut failure: Option<String> = None;
    let mut interrupted = false;
    loop {
        while let Ok((idx, is_err, line)) = rx.try_recv() {
            let note = match (idx, is_err) {
                (2, false) => {
                    last_event = Instant::now();
                    state.predictor_line(&line)
                }
                (0, false) => {
                    if line.contains("\"replay_done\"") {
                        state.replay_done = true;
                    }
                    None
                }
                _ => None,
            };
            if let Some(n) = note {
                screen.plain(&n);
            }
        }
        for row in ledger.lines() {
            if let Some(n) = state.ledger_row(&row) {
                screen.plain(&n);
            }
        }
        state.children = group
            .procs
            .iter_mut()
            .map(|c| {
                c.poll();
                (c.name.clone(), c.status_word())
            })
            .collect();
        screen.draw(&state);

        if INTERRUPTED.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        if let Some(c) = group.procs.iter().find(|c| c.status().is_some()) {
            failure = Some(format!(
                "{} ended early ({}); last lines of {}:\n{}",
                c.name,
                c.status_word(),
                logs.join(format!("{}.log", c.name)).display(),
                tail(&logs.join(format!("{}.log", c.name)), 15)
            ));
            break;
        }
        // The market opens once every model has caught up with its history.
        if !started {
            let ready = !state.models.is_empty() && state.models.values().all(|m| m.ready);
            if ready || predictor_started.elapsed() > Duration::from_secs(60) {
                std::fs::write(&start_file, b"go\n")?;
                started = true;
                screen.plain("all models caught up: the market opens");
            }
        }
        // The end: every live bar of the span has its signal and its answer (the tail after
        // it, there so that the last orders meet an open market, is not waited for); or the
        // market has published its last bar and the predictor has gone quiet.
        let quiet_after_sim =
            state.replay_done && last_event.elapsed() > Duration::from_millis(1500);
        if (state.span_done() || quiet_after_sim) && finished_at.is_none() {
            finished_at = Some(Instant::now());
        }
        // Leave a moment for the last ACKs and ledger rows.
        if finished_at.is_some_and(|t| t.elapsed() > Duration::from_millis(600)) {
            break;
        }
        if Instant::now() > deadline {
            failure = Some(format!(
                "timed out after {} s at {}/{} live bars",
                args.timeout,
                state.progress().0,
                state.progress().1
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(if tty { 120 } else { 50 }));
    }

    group.stop_all();
    // Drain what the children wrote while stopping.
    std::thread::sleep(Duration::from_millis(100));
    while let Ok((idx, is_err, line)) = rx.try_recv() {
        if (idx, is_err) == (2, false) {
            state.predictor_line(&line);
        }
    }
    for row in ledger.lines() {
        state.ledger_row(&row);
    }
    state.children = group
        .procs
        .iter()
        .map(|c| (c.name.clone(), c.status_word()))
        .collect();
    let children_ok = group.procs.iter().all(Proc::ended_well);
    let mut summary = summarize(&state, args, &prepared.expected, &models, &out);
    summary.children_exit = state
        .children
        .iter()
        .map(|(n, s)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(" · ");
    summary.children_ok = children_ok && failure.is_none();
    summary.ok = summary.children_ok
        && summary.one_signal_per_bar
        && summary
            .models
            .values()
            .all(|m| m.replay_match != Some(false));
    let report = out.join("report.html");
    summary.report = report.display().to_string();
    let backtests = report::backtests(&state, &models, &out);
    std::fs::write(&report, report::html(&state, &summary, &backtests))?;
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    print_summary(&summary);
    if let Some(f) = &failure {
        eprintln!("oracle demo: {f}");
    }
    if interrupted {
        eprintln!("oracle demo: interrupted; every child stopped");
        return Ok(130);
    }
    Ok(if summary.ok { 0 } else { 1 })
}

/// `KEY=value` lines of an env file (comments and blanks skipped).
fn wait_ready(
    group: &mut Group,
    idx: usize,
    port: u16,
    files: &[&Path],
    logs: &Path,
) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let c = &mut group.procs[idx];
        if let Some(_s) = c.poll() {
            anyhow::bail!(
                "{} exited before it was ready ({}):\n{}",
                c.name,
                c.status_word(),
                tail(&logs.join(format!("{}.log", c.name)), 15)
            );
        }
        if procs::port_open(port) && files.iter().all(|f| f.is_file()) {
            return Ok(());
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            anyhow::bail!("interrupted");
        }
        if Instant::now() > until {
            anyhow::bail!("{} did not open port {port} within 30 s", c.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Per model, the open times of the live bars inside the span: the first `expected` of the
/// bars the market closes (ascending), as the predictor prints them.
pub fn span_bar_times(
    live_bars: &BTreeMap<String, Vec<i64>>,
    expected: &BTreeMap<String, u64>,
) -> BTreeMap<String, std::collections::BTreeSet<String>> {
    live_bars
        .iter()
        .map(|(name, opens)| {
            let n = usize::try_from(expected.get(name).copied().unwrap_or(0)).unwrap_or(0);
            (
                name.clone(),
                opens
                    .iter()
                    .take(n)
                    .map(|&t| oracle_model::format_time(t))
                    .collect(),
            )
        })
        .collect()
}

fn summarize(
    state: &State,
    args: &DemoArgs,
    expected: &BTreeMap<String, u64>,
    models: &Path,
    out: &Path,
) -> Summary {
    let mut s = Summary {
        target_bars: args.bars,
        seconds: state.started.elapsed().as_secs_f64(),
        refused: state.refused.clone(),
        equity: state.equity,
        equity_change: state.equity.zip(state.equity_first).map(|(a, b)| a - b),
        ..Summary::default()
    };
    for (name, m) in &state.models {
        let (rows, replay_match, note) = compare_replay(name, models, out);
        let ms = ModelSummary {
            expected_bars: expected.get(name).copied().unwrap_or(0),
            symbol: m.stream.map(|k| k.symbol.to_string()).unwrap_or_default(),
            tf: m
                .stream
                .map(|k| k.timeframe.to_string())
                .unwrap_or_default(),
            live_bars: m.live_bars,
            span_bars: state.span_bars(name),
            drift_causes: m.drift_causes(),
            signals: m.signals,
            orders: m.orders,
            refusals: m.refusals,
            drift_bars: m.drift_bars(),
            virtual_pnl: m.pnl(),
            virtual_pnl_live: m.pnl_live(),
            trace_rows: rows,
            replay_match,
            replay_note: note,
        };
        s.signals += ms.signals;
        s.orders += ms.orders;
        s.refusals += ms.refusals;
        s.drift_bars += ms.drift_bars;
        for (c, n) in &ms.drift_causes {
            *s.drift_causes.entry(c.clone()).or_insert(0) += n;
        }
        s.virtual_pnl += ms.virtual_pnl;
        s.virtual_pnl_live += ms.virtual_pnl_live;
        s.models.insert(name.clone(), ms);
    }
    s.one_signal_per_bar = !s.models.is_empty()
        && s.models.values().all(|m| m.signals == m.live_bars)
        && s.signals > 0;
    s
}

/// Runs `oracle replay` (in process) over exactly the bars the predictor ran (its
/// `trace/NAME.bars.csv`, as they finally stand: a revised bar replaces the one taken first) and
/// compares the result with its trace (likewise), byte for byte.
fn compare_replay(name: &str, models: &Path, out: &Path) -> (usize, Option<bool>, String) {
    let trace = std::fs::read_to_string(out.join(format!("trace/{name}.csv"))).unwrap_or_default();
    let trace = oracle_procs::files::final_csv(&trace);
    let rows = trace.lines().count().saturating_sub(1);
    if rows == 0 {
        return (0, None, "no trace".into());
    }
    let taken =
        std::fs::read_to_string(out.join(format!("trace/{name}.bars.csv"))).unwrap_or_default();
    let bars = out.join(format!("trace/{name}.bars.final.csv"));
    if let Err(e) = std::fs::write(&bars, oracle_procs::files::final_csv(&taken)) {
        return (rows, None, format!("cannot write {}: {e}", bars.display()));
    }
    let mut got = Vec::new();
    let mut err = Vec::new();
    match crate::deps::replay(
        &models.join(format!("{name}.zip")),
        &bars,
        &mut got,
        &mut err,
    ) {
        Ok(()) => {
            let got = String::from_utf8_lossy(&got);
            if got == trace {
                (rows, Some(true), String::new())
            } else {
                let at = got
                    .lines()
                    .zip(trace.lines())
                    .position(|(a, b)| a != b)
                    .map_or_else(|| "length".to_string(), |i| format!("line {}", i + 1));
                (rows, Some(false), format!("differs at {at}"))
            }
        }
        Err(e) => (rows, None, format!("replay unavailable: {e}")),
    }
}

/// The drift line of the summary: the total and, per cause, how many bars and why.
pub fn drift_lines(s: &Summary) -> Vec<String> {
    let mut out = vec![format!(
        "drift bars (real position != virtual) {}{}",
        s.drift_bars,
        if s.drift_bars == 0 { "" } else { ", by cause:" }
    )];
    let mut causes: Vec<(&String, &usize)> = s.drift_causes.iter().collect();
    causes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (c, n) in causes {
        out.push(format!("  {n:>5}  {c}: {}", view::drift_cause_text(c)));
    }
    out
}

fn print_summary(s: &Summary) {
    let yn = |b: bool| if b { "yes" } else { "NO" };
    println!();
    println!("== oracle demo summary ==");
    println!(
        "models {} ({} refused) · {} h of live market · {:.1} s",
        s.models.len(),
        s.refused.len(),
        s.target_bars,
        s.seconds
    );
    for (f, r) in &s.refused {
        println!("refused model {f}: {r}");
    }
    println!(
        "signals {} · orders {} · refusals {} (FAIL|REASON or WAIT_SYNC|MISSED_ENTRY at a transition)",
        s.signals, s.orders, s.refusals
    );
    for l in drift_lines(s) {
        println!("{l}");
    }
    println!(
        "every model one signal per bar: {}",
        yn(s.one_signal_per_bar)
    );
    let short: Vec<String> = s
        .models
        .iter()
        .filter(|(_, m)| m.span_bars < m.expected_bars)
        .map(|(n, m)| format!("{n} {}/{}", m.span_bars, m.expected_bars))
        .collect();
    if !short.is_empty() {
        println!(
            "note: fewer live bars reached the predictor than the market closed for: {}",
            short.join(", ")
        );
    }
    println!(
        "virtual position = oracle replay: {}/{} models",
        s.replay_matched(),
        s.models.len()
    );
    println!(
        "P&L over the live bars (USD): virtual {:+.2} (all models){}",
        s.virtual_pnl_live,
        s.equity_change
            .zip(s.equity)
            .map(|(c, e)| format!(" · account {c:+.2} (equity {e:.2})"))
            .unwrap_or_default()
    );
    println!(
        "virtual P&L of the twins (realised since their history began + open): {:.2}",
        s.virtual_pnl
    );
    println!(
        "span: live bars inside the {} h asked for / bars the market closed in them; tail: live bars after it (the market stays open for the last orders)",
        s.target_bars
    );
    println!(
        "{:<16} {:>9} {:>4} {:>7} {:>6} {:>8} {:>6} {:>10}  replay",
        "model", "span", "tail", "signals", "orders", "refusals", "drift", "P&L live"
    );
    for (n, m) in &s.models {
        println!(
            "{:<16} {:>9} {:>4} {:>7} {:>6} {:>8} {:>6} {:>10.2}  {}",
            n,
            format!("{}/{}", m.span_bars, m.expected_bars),
            m.live_bars.saturating_sub(m.span_bars),
            m.signals,
            m.orders,
            m.refusals,
            m.drift_bars,
            m.virtual_pnl_live,
            match m.replay_match {
                Some(true) => "equal".to_string(),
                Some(false) => format!("DIFFERENT ({})", m.replay_note),
                None => m.replay_note.clone(),
            }
        );
    }
    println!("children: {}", s.children_exit);
    println!("result: {}", if s.ok { "OK" } else { "FAILED" });
    println!("report: {}", s.report);
}
