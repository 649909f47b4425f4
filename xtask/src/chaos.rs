//! `oracle-dev chaos`: the kill -9 crash-recovery proof.
//!
//! 1. **baseline**: executor (paper book with its bar feed) + predictor, uninterrupted, over
//!    `350 + bars` bars of every model (re-stamped onto one grid, see [`crate::run::prepare`]);
//!    each model's trace must equal `oracle replay` over the bars it saw.
//! 2. **predictor chaos**: the same run; the predictor is killed with SIGKILL at `predictor_kills`
//!    seeded random points of progress (bars traced over all models) and restarted at once. Every
//!    model's final per-bar trace must equal the baseline's, row for row.
//! 3. **executor chaos**: the same with the executor killed and restarted (its journal and drift
//!    ledger persist in its state folder). Counted: orders per client order id in the journal (a
//!    second intent for one id is a duplicate order), traces equal to the baseline, live bars
//!    without a drift-ledger row, models whose real position differs from the virtual one at the
//!    end (against the baseline's count).
//! 4. **broker disconnects**: simulator (TLS, a market shifted to start now, see
//!    [`oracle_procs::market`]) + executor (live broker over the simulator, paper book beside it; the fast
//!    simulator runs as fast as the executor reads) + predictor; the simulator resets the executor's
//!    connection after every `--disconnect-every` frames (at most `--disconnects` times).
//!    Counted: disconnects (the simulator's timing file), live bars the simulator closed that the
//!    predictor never saw, traces against `oracle replay`, `NewOrderReq`s per client order id as
//!    the broker received them (a second one is a duplicate order) and intents in the journal.
//!
//! It prints the counts, writes `OUT/chaos.json`, and exits non-zero when a proof fails.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use oracle_core::Timeframe;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::run::{self, Bins, Prepared, spawn_live_system};
use oracle_procs::files;
use oracle_procs::market::{self, MarketSpec};
use oracle_procs::supervisor;

/// `oracle-dev chaos` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ChaosArgs {
    /// Models folder.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Bar files folder (`NAME.csv` per model).
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Output folder (chaos.json, run folders, logs).
    #[arg(long, default_value = "out/chaos")]
    pub out: PathBuf,
    /// Live bars per stream (after 350 history bars; at most 1,650 so the executor's HISTORY
    /// ring covers a predictor's downtime).
    #[arg(long, default_value_t = 400)]
    pub bars: usize,
    /// Models (streams) used, at most.
    #[arg(long, default_value_t = 20)]
    pub max_models: usize,
    /// kill -9 points of the predictor.
    #[arg(long, default_value_t = 50)]
    pub predictor_kills: usize,
    /// kill -9 points of the executor.
    #[arg(long, default_value_t = 10)]
    pub executor_kills: usize,
    /// Seed of the kill points.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Pause of the executor's paper feed after each bar event, ms.
    #[arg(long, default_value_t = 5)]
    pub feed_interval_ms: u64,
    /// Broker disconnects: the simulator resets the executor's connection after every N frames
    /// it sent on it (fault `drop:after=N`).
    #[arg(long, default_value_t = 250)]
    pub disconnect_every: usize,
    /// Broker disconnects: at most this many (0: skip the scenario).
    #[arg(long, default_value_t = 10)]
    pub disconnects: usize,
    /// Broker disconnects: hours of simulated live market (an H1 model sees this many bars,
    /// an M5 model 12 × as many).
    #[arg(long, default_value_t = 3)]
    pub sim_hours: u64,
    /// Broker disconnects: the simulator's speed (`<N>x`: market time N × wall time), or `auto`:
    /// the fastest speed at which the models' bar closes use at most 40% of the broker's 5
    /// historical requests a second (the session confirms every closed bar from history; a
    /// replay beyond that budget falls behind, and the bars stall behind the budget rather
    /// than behind a fault).
    #[arg(long, default_value = "auto")]
    pub sim_speed: String,
    /// Broker disconnects: the executor's `--bar-close` (`live`, its default, or `history`).
    #[arg(long, default_value = "live")]
    pub bar_close: String,
    /// Broker disconnects: the simulator's history carries the known server bug (fault
    /// `delta-high-bug`: a bar closing at its low comes back with its high at max(open, close)),
    /// so history differs from the live snapshot sent at such bars: every one must be revised
    /// (`REV:1`), and the traces must equal `oracle replay` over history's bars.
    #[arg(long)]
    pub delta_high_bug: bool,
    /// Folder of the system's binaries (default: $ORACLE_BIN_DIR, else beside this one).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Give up on one run after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
}

/// Which process a run kills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Nobody (the baseline).
    None,
    /// The predictor.
    Predictor,
    /// The executor.
    Executor,
}

/// What one run produced.
#[derive(Debug)]
pub struct RunResult {
    /// The run folder.
    pub dir: PathBuf,
    /// Kills done.
    pub kills: usize,
    /// Wall time.
    pub seconds: f64,
}

/// Seeded kill points: `n` progress values in `1..total`, sorted.
pub fn kill_points(seed: u64, n: usize, total: usize) -> Vec<usize> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<usize> = (0..n).map(|_| rng.random_range(1..total.max(2))).collect();
    v.sort_unstable();
    v
}

/// Live bars traced so far over all streams (rows beyond the history).
fn progress(p: &Prepared, trace: &Path) -> usize {
    p.streams
        .iter()
        .map(|s| {
            run::trace_rows(&trace.join(format!("{}.csv", s.name)))
                .saturating_sub(run::FEED_HISTORY)
        })
        .sum()
}

/// The last line of a file (empty when absent).
pub fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.lines().last().map(str::to_string))
        .unwrap_or_default()
}

/// Every stream's trace has reached its last bar.
fn complete(p: &Prepared, trace: &Path) -> bool {
    p.streams.iter().all(|s| {
        let last =
            oracle_model::format_time(run::GRID_START + run::GRID_STEP * (s.bars as i64 - 1));
        last_line(&trace.join(format!("{}.csv", s.name))).starts_with(&last)
    })
}

/// One pipeline run, killing `target` at `points` of progress.
#[allow(clippy::too_many_arguments)]
pub fn run_once(
    bins: &Bins,
    p: &Prepared,
    dir: &Path,
    target: Target,
    points: &[usize],
    seed: u64,
    feed_interval_ms: u64,
    timeout: Duration,
) -> anyhow::Result<RunResult> {
    files::fresh_dir(dir)?;
    let trace = dir.join("trace");
    std::fs::create_dir_all(&trace)?;
    let port = supervisor::free_port()?;
    let ex_state = dir.join("executor");
    let pr_state = dir.join("state");
    let ex_log = dir.join("executor.log");
    let pr_log = dir.join("predictor.log");
    let spawn_ex = || run::spawn_executor(bins, p, &ex_state, port, feed_interval_ms, &ex_log);
    let spawn_pr = || run::spawn_predictor(bins, &p.models, &pr_state, &trace, port, &pr_log, &[]);
    let mut ex = spawn_ex()?;
    supervisor::wait_port(&mut ex, port, Duration::from_secs(30))?;
    let mut pr = spawn_pr()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    let mut next = 0usize;
    let mut kills = 0usize;
    // A restarted process lives at least this long before the next kill (seeded, 0–150 ms), so
    // kills land during start-up, catch-up and steady running alike.
    let mut not_before = Instant::now();
    let mut last_restart = Instant::now() - Duration::from_secs(10);
    loop {
        let finished = complete(p, &trace);
        // After a restart, give the new process time to reconnect and catch up before the end.
        if finished && next >= points.len() && last_restart.elapsed() > Duration::from_millis(1500)
        {
            break;
        }
        let done = progress(p, &trace);
        // Points past the traced progress (the stream ended first) fire after the last bar.
        if target != Target::None
            && next < points.len()
            && (done >= points[next] || finished)
            && Instant::now() >= not_before
        {
            match target {
                Target::Predictor => {
                    pr.kill9();
                    pr = spawn_pr()?;
                }
                Target::Executor => {
                    ex.kill9();
                    ex = spawn_ex()?;
                    supervisor::wait_port(&mut ex, port, Duration::from_secs(30))?;
                }
                Target::None => {}
            }
            kills += 1;
            next += 1;
            last_restart = Instant::now();
            not_before = Instant::now() + Duration::from_millis(rng.random_range(0..150));
            continue;
        }
        supervisor::all_alive(&mut [&mut ex, &mut pr])?;
        if Instant::now() > deadline {
            bail!(
                "run {} timed out after {timeout:?} at {done} of {} live bars ({} kills)",
                dir.display(),
                p.streams.len() * p.live,
                kills
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the last ACKs and ledger rows land, then stop both.
    std::thread::sleep(Duration::from_millis(300));
    pr.stop(Duration::from_secs(3));
    ex.stop(Duration::from_secs(3));
    Ok(RunResult {
        dir: dir.to_path_buf(),
        kills,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Per-bar comparison of two runs' traces.
#[derive(Debug, Default, Clone, Copy)]
pub struct TraceCmp {
    /// Rows of the reference.
    pub bars: usize,
    /// Rows equal, byte for byte, at the same position.
    pub equal: usize,
    /// Models compared.
    pub models: usize,
    /// Models with every row equal and the same row count.
    pub models_equal: usize,
}

/// Compares every model's trace of `run` with `reference`'s.
pub fn compare_traces(p: &Prepared, reference: &Path, run: &Path) -> TraceCmp {
    let mut c = TraceCmp::default();
    for s in &p.streams {
        let f = format!("trace/{}.csv", s.name);
        let a = std::fs::read_to_string(reference.join(&f)).unwrap_or_default();
        let b = std::fs::read_to_string(run.join(&f)).unwrap_or_default();
        let (a, b) = (files::final_rows(&a), files::final_rows(&b));
        let eq = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        c.bars += a.len();
        c.equal += eq;
        c.models += 1;
        if eq == a.len() && a.len() == b.len() && !a.is_empty() {
            c.models_equal += 1;
        }
    }
    c
}

/// A run's traces against `oracle replay` (an uninterrupted twin by construction) over the bars
/// the predictor saw (`NAME.bars.csv`), and those bars against the stream: per model, rows equal,
/// and live bars of the stream missing from what the predictor saw.
#[derive(Debug, Default, Clone)]
pub struct ReplayCmp {
    /// Trace rows.
    pub bars: usize,
    /// Rows equal to the replay's, byte for byte.
    pub equal: usize,
    /// Bars of the stream after the first one the predictor saw that it never saw.
    pub missed: usize,
    /// Models whose trace equals the replay entirely.
    pub models_equal: usize,
    /// Models whose trace differs (name: first differing row).
    pub differ: Vec<String>,
}

/// Compares every model's trace in `run` with `oracle replay` (see [`ReplayCmp`]).
pub fn replay_compare(p: &Prepared, run: &Path) -> ReplayCmp {
    let mut c = ReplayCmp::default();
    for s in &p.streams {
        let (rows, equal, differ) = trace_vs_replay(&p.models, &s.name, run);
        c.bars += rows;
        c.equal += equal;
        match differ {
            None => c.models_equal += 1,
            Some(at) => c.differ.push(format!("{}: {at}", s.name)),
        }
        // Missed bars: the stream's bars from the first one seen must all have been seen.
        let seen = seen_times(&run.join(format!("trace/{}.bars.csv", s.name)));
        let trace =
            std::fs::read_to_string(run.join(format!("trace/{}.csv", s.name))).unwrap_or_default();
        let first = trace
            .lines()
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or("");
        let stream = std::fs::read_to_string(&s.csv).unwrap_or_default();
        c.missed += stream
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').next())
            .filter(|time| *time >= first && !seen.contains(*time))
            .count();
    }
    c
}

/// Journal facts: (orders = intents, distinct client order ids, duplicate intents).
pub fn journal_orders(path: &Path) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut per: HashMap<String, usize> = HashMap::new();
    for l in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        if v.get("t").and_then(Value::as_str) == Some("intent")
            && let Some(c) = v.get("coid").and_then(Value::as_str)
        {
            *per.entry(c.to_string()).or_default() += 1;
        }
    }
    let orders: usize = per.values().sum();
    let dups: usize = per.values().map(|n| n - 1).sum();
    (orders, per.len(), dups)
}

/// Drift-ledger facts over the live bars of the final traces: (live bars, bars without a
/// ledger row, models whose last row has real ≠ virtual).
pub fn ledger_facts(p: &Prepared, run: &Path) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(run.join("executor/drift.jsonl")).unwrap_or_default();
    let mut rows: HashMap<(String, String), ()> = HashMap::new();
    let mut last: BTreeMap<String, (String, String)> = BTreeMap::new();
    for l in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        rows.insert((s("model"), s("bar_time")), ());
        // Paper-only runs have no real side ("-"): the paper book is the executor's reality.
        let real = match s("real_pos").as_str() {
            "-" | "" => s("paper_pos"),
            r => r.to_string(),
        };
        let norm = |x: String| if x == "WAIT" { "FLAT".to_string() } else { x };
        last.insert(s("model"), (norm(s("virtual_pos")), norm(real)));
    }
    let first_live =
        oracle_model::format_time(run::GRID_START + run::GRID_STEP * run::FEED_HISTORY as i64);
    let (mut live, mut missing) = (0, 0);
    for s in &p.streams {
        let t =
            std::fs::read_to_string(run.join(format!("trace/{}.csv", s.name))).unwrap_or_default();
        for row in t.lines().skip(1) {
            let time = row.split(',').next().unwrap_or("");
            if time >= first_live.as_str() {
                live += 1;
                if !rows.contains_key(&(s.name.clone(), time.to_string())) {
                    missing += 1;
                }
            }
        }
    }
    let drift_end = last.values().filter(|(v, r)| v != r).count();
    (live, missing, drift_end)
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        (a as f64 * 10000.0 / b as f64).round() / 100.0
    }
}

/// `oracle-dev chaos`.
pub fn run_chaos(args: &ChaosArgs) -> ExitCode {
    match chaos(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("oracle-dev chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn chaos(args: &ChaosArgs) -> anyhow::Result<bool> {
    if args.bars + run::FEED_HISTORY > 2000 {
        bail!(
            "--bars {} is above 1650: the executor's HISTORY ring (2,000 bars) would not cover a predictor's downtime",
            args.bars
        );
    }
    let bins = Bins::locate(args.bin_dir.as_deref())?;
    std::fs::create_dir_all(&args.out)?;
    let p = run::prepare(
        &args.models,
        &args.data,
        &args.out.join("input"),
        args.bars,
        args.max_models,
    )?;
    let total = p.streams.len() * p.live;
    let timeout = Duration::from_secs(args.timeout_s);
    println!(
        "chaos: {} models × {} live bars ({} bar closes), seed {}",
        p.streams.len(),
        p.live,
        total,
        args.seed
    );
    let base = run_once(
        &bins,
        &p,
        &args.out.join("baseline"),
        Target::None,
        &[],
        args.seed,
        args.feed_interval_ms,
        timeout,
    )
    .context("baseline run")?;
    let brc = replay_compare(&p, &base.dir);
    let (replay_ok, replay_bad) = (brc.models_equal, brc.differ.clone());
    let (b_orders, _, b_dups) = journal_orders(&base.dir.join("executor/paper-journal.jsonl"));
    let (b_live, b_missing, b_drift) = ledger_facts(&p, &base.dir);
    println!(
        "baseline: {:.1} s; traces = oracle replay: {replay_ok}/{} models{}; orders {b_orders}, duplicates {b_dups}; live bars {b_live}, without a ledger row {b_missing}; models real≠virtual at end {b_drift}",
        base.seconds,
        p.streams.len(),
        if replay_bad.is_empty() {
            String::new()
        } else {
            format!(" (differ: {})", replay_bad.join(", "))
        }
    );
    let mut ok = replay_bad.is_empty() && b_dups == 0 && brc.missed == 0;

    // Predictor chaos.
    let pts = kill_points(args.seed, args.predictor_kills, total);
    let pr = run_once(
        &bins,
        &p,
        &args.out.join("predictor-kills"),
        Target::Predictor,
        &pts,
        args.seed,
        args.feed_interval_ms,
        timeout,
    )
    .context("predictor kill run")?;
    let prc = replay_compare(&p, &pr.dir);
    let pc = compare_traces(&p, &base.dir, &pr.dir);
    let (p_orders, _, p_dups) = journal_orders(&pr.dir.join("executor/paper-journal.jsonl"));
    let (p_live, p_missing, p_drift) = ledger_facts(&p, &pr.dir);
    println!(
        "predictor kill -9: {} kills in {:.1} s; virtual trace = uninterrupted twin (oracle replay): {}/{} bars ({}%), {}/{} models; missed bars {}; = baseline run row for row: {}/{} bars; orders {p_orders}, duplicate orders {p_dups}; live bars {p_live}, without a ledger row {p_missing}; models real≠virtual at end {p_drift}",
        pr.kills,
        pr.seconds,
        prc.equal,
        prc.bars,
        pct(prc.equal, prc.bars),
        prc.models_equal,
        p.streams.len(),
        prc.missed,
        pc.equal,
        pc.bars
    );
    if !prc.differ.is_empty() {
        println!("  differ: {}", prc.differ.join(", "));
    }
    ok &= prc.equal == prc.bars
        && prc.models_equal == p.streams.len()
        && prc.missed == 0
        && p_dups == 0
        && pr.kills == pts.len();

    // Executor chaos.
    let pts_e = kill_points(args.seed.wrapping_add(1), args.executor_kills, total);
    let ex = run_once(
        &bins,
        &p,
        &args.out.join("executor-kills"),
        Target::Executor,
        &pts_e,
        args.seed.wrapping_add(1),
        args.feed_interval_ms,
        timeout,
    )
    .context("executor kill run")?;
    let erc = replay_compare(&p, &ex.dir);
    let ec = compare_traces(&p, &base.dir, &ex.dir);
    let (e_orders, e_ids, e_dups) = journal_orders(&ex.dir.join("executor/paper-journal.jsonl"));
    let (e_live, e_missing, e_drift) = ledger_facts(&p, &ex.dir);
    println!(
        "executor kill -9: {} kills in {:.1} s; orders {e_orders} for {e_ids} client order ids, duplicate orders {e_dups}; virtual trace = oracle replay: {}/{} bars ({}%), missed bars {}; = baseline row for row: {}/{}; live bars {e_live}, without a ledger row {e_missing}; models real≠virtual at end {e_drift} (baseline {b_drift})",
        ex.kills,
        ex.seconds,
        erc.equal,
        erc.bars,
        pct(erc.equal, erc.bars),
        erc.missed,
        ec.equal,
        ec.bars
    );
    if !erc.differ.is_empty() {
        println!("  differ: {}", erc.differ.join(", "));
    }
    ok &= e_dups == 0 && erc.equal == erc.bars && erc.missed == 0 && ex.kills == pts_e.len();

    let disconnect = if args.disconnects == 0 {
        json!({"skipped": "--disconnects 0"})
    } else {
        let d = disconnect_run(args, &bins).context("broker disconnect run")?;
        ok &= d.ok();
        println!("{}", d.line());
        d.json()
    };

    let result = json!({
        "models": p.streams.len(),
        "live_bars_per_stream": p.live,
        "seed": args.seed,
        "baseline": {"seconds": base.seconds, "replay_equal_models": replay_ok, "replay_differs": replay_bad, "missed_bars": brc.missed,
                     "orders": b_orders, "duplicate_orders": b_dups, "live_bars": b_live,
                     "bars_without_ledger_row": b_missing, "models_drift_at_end": b_drift},
        "predictor_kills": {"kills": pr.kills, "planned": pts.len(), "seconds": pr.seconds,
                            "bars": prc.bars, "bars_equal_replay": prc.equal, "models_equal_replay": prc.models_equal,
                            "missed_bars": prc.missed, "differ": prc.differ,
                            "bars_equal_baseline": pc.equal, "bars_baseline": pc.bars, "orders": p_orders,
                            "duplicate_orders": p_dups, "live_bars": p_live,
                            "bars_without_ledger_row": p_missing, "models_drift_at_end": p_drift},
        "executor_kills": {"kills": ex.kills, "planned": pts_e.len(), "seconds": ex.seconds,
                           "orders": e_orders, "client_order_ids": e_ids, "duplicate_orders": e_dups,
                           "bars": erc.bars, "bars_equal_replay": erc.equal, "missed_bars": erc.missed,
                           "differ": erc.differ, "bars_equal_baseline": ec.equal, "bars_baseline": ec.bars, "live_bars": e_live,
                           "bars_without_ledger_row": e_missing, "models_drift_at_end": e_drift},
        "broker_disconnects": disconnect,
        "ok": ok,
    });
    std::fs::write(
        args.out.join("chaos.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    println!(
        "result: {} (details {})",
        if ok { "OK" } else { "FAILED" },
        args.out.join("chaos.json").display()
    );
    Ok(ok)
}

// ---------------------------------------------------------------------------------------------
// Broker disconnects (simulator + live executor + predictor)

/// What the broker disconnect run produced.
#[derive(Debug, Default)]
pub struct DisconnectResult {
    /// Frames between resets.
    pub every: usize,
    /// Resets planned at most.
    pub planned: usize,
    /// Resets the simulator made (its timing file).
    pub disconnects: usize,
    /// Wall time.
    pub seconds: f64,
    /// Models.
    pub models: usize,
    /// Live bars the simulator closed for the models.
    pub live_bars: usize,
    /// Of those, never seen by the predictor.
    pub missed: usize,
    /// Trace rows, and rows equal to `oracle replay`'s.
    pub rows: usize,
    /// Rows equal to `oracle replay`'s.
    pub rows_equal: usize,
    /// Models whose trace differs (name: where).
    pub differ: Vec<String>,
    /// `NewOrderReq`s the broker received, distinct client order ids, duplicates.
    pub broker_orders: (usize, usize, usize),
    /// Intents in the executor's journal, distinct ids, duplicates.
    pub journal_orders: (usize, usize, usize),
    /// Whether the simulator's timing file was there (its `--timing-out`).
    pub timing: bool,
    /// The simulator's speed (`<N>x`).
    pub speed: String,
    /// Historical requests a second the bar closes needed at that speed.
    pub history_load: f64,
    /// The simulator's history had the `delta-high-bug` fault.
    pub delta_high_bug: bool,
    /// `REV:1` bars the executor sent (history differed from the live snapshot sent).
    pub revisions_sent: usize,
    /// Rewinds the predictor made for them.
    pub rewinds: usize,
    /// With `delta_high_bug`: bars the predictor finally holds that are not history's (a live
    /// snapshot that history contradicted and that was not revised); 0 without it.
    pub bars_not_history: usize,
}

impl DisconnectResult {
    /// The proof holds.
    pub fn ok(&self) -> bool {
        self.timing
            && self.disconnects > 0
            && self.missed == 0
            && self.rows > 0
            && self.rows_equal == self.rows
            && self.differ.is_empty()
            && self.broker_orders.2 == 0
            && self.journal_orders.2 == 0
            && self.bars_not_history == 0
    }

    /// The printed line.
    pub fn line(&self) -> String {
        let mut s = format!(
            "broker disconnects (sim drop:after={}, {}): {} disconnects in {:.1} s; {} models, live bars {} closed by the broker, missed {}; virtual trace = oracle replay: {}/{} bars ({}%); orders at the broker {} for {} client order ids, duplicate orders {}; journal intents {}, duplicates {}",
            self.every,
            self.speed,
            self.disconnects,
            self.seconds,
            self.models,
            self.live_bars,
            self.missed,
            self.rows_equal,
            self.rows,
            pct(self.rows_equal, self.rows),
            self.broker_orders.0,
            self.broker_orders.1,
            self.broker_orders.2,
            self.journal_orders.0,
            self.journal_orders.2,
        );
        if self.delta_high_bug {
            s.push_str(&format!(
                "\n  history ≠ live snapshot (sim delta-high-bug): {} bars revised (REV:1), {} twin rewinds; bars held that are not history's: {}",
                self.revisions_sent, self.rewinds, self.bars_not_history
            ));
        }
        if !self.differ.is_empty() {
            s.push_str(&format!("\n  differ: {}", self.differ.join(", ")));
        }
        if !self.timing {
            s.push_str("\n  the simulator wrote no timing file (--timing-out): nothing counted");
        }
        s
    }

    /// chaos.json's section.
    pub fn json(&self) -> Value {
        json!({"every_frames": self.every, "planned_at_most": self.planned,
               "speed": self.speed, "history_requests_per_s": self.history_load,
               "disconnects": self.disconnects, "seconds": self.seconds, "models": self.models,
               "live_bars": self.live_bars, "missed_bars": self.missed, "bars": self.rows,
               "bars_equal_replay": self.rows_equal, "differ": self.differ,
               "broker_orders": self.broker_orders.0, "broker_client_order_ids": self.broker_orders.1,
               "duplicate_orders": self.broker_orders.2, "journal_intents": self.journal_orders.0,
               "journal_duplicate_intents": self.journal_orders.2,
               "delta_high_bug": self.delta_high_bug, "revisions_sent": self.revisions_sent,
               "rewinds": self.rewinds, "bars_not_history": self.bars_not_history,
               "ok": self.ok()})
    }
}

/// `(orders, distinct client order ids, duplicates)` of the simulator's `new_order` lines, and
/// its disconnects caused by a fault.
pub fn sim_timing(path: &Path) -> Option<((usize, usize, usize), usize)> {
    let t = crate::bench::parse_sim_timing(&std::fs::read_to_string(path).ok()?);
    let mut per: HashMap<&str, usize> = HashMap::new();
    for (c, _) in &t.new_orders {
        *per.entry(c.as_str()).or_default() += 1;
    }
    let orders: usize = per.values().sum();
    let dups: usize = per.values().map(|n| n - 1).sum();
    Some(((orders, per.len(), dups), t.fault_disconnects))
}

/// The broker disconnect scenario (see the module header).
/// The broker's historical requests a second (cTrader Open API: 5).
pub const HISTORY_PER_S: f64 = 5.0;

/// Share of [`HISTORY_PER_S`] the `auto` speed lets bar confirmations use.
pub const HISTORY_SHARE: f64 = 0.4;

/// Historical requests a second the models' bar closes need at `speed` (one per stream close:
/// the session confirms each closed bar from history).
pub fn history_load(timeframes: impl IntoIterator<Item = Timeframe>, speed: f64) -> f64 {
    let closes: f64 = timeframes
        .into_iter()
        .map(|t| 1.0 / t.seconds() as f64)
        .sum();
    closes * speed
}

/// The `auto` speed: the largest whole speed (1–3,600×) whose [`history_load`] stays within
/// [`HISTORY_SHARE`] of [`HISTORY_PER_S`].
pub fn auto_speed(timeframes: impl IntoIterator<Item = Timeframe>) -> u64 {
    let per_x = history_load(timeframes, 1.0);
    if per_x <= 0.0 {
        return 1;
    }
    ((HISTORY_SHARE * HISTORY_PER_S / per_x).floor() as u64).clamp(1, 3600)
}

/// The market of a run over the simulator (the broker disconnects, the soak's real span):
/// 400 bars of history, `hours` of market, at most `max_models` models copied into
/// `input/models`, a risk configuration that halts nothing (stale signals, daily loss and
/// drawdown wide open: the runs count bars and orders, not the guard); `week_start`: the span
/// starts at that position of the week on the realistic calendar ([`MarketSpec::week_start`]).
pub fn live_market(
    models: &Path,
    data: &Path,
    input: &Path,
    hours: u64,
    max_models: usize,
    week_start: Option<i64>,
) -> anyhow::Result<market::Market> {
    files::fresh_dir(input)?;
    let spec = MarketSpec {
        history: 400,
        hours,
        max_models,
        copy_models: true,
        risk: Some(
            json!({"stale_after_secs": 315_360_000, "daily_loss_pct": 100.0, "max_drawdown_pct": 100.0}),
        ),
        week_start,
    };
    market::prepare(models, data, input, &spec)
}

/// The simulator's speed for `arg`: `auto` is [`auto_speed`] of the market's models, else `arg`.
pub fn live_speed(m: &market::Market, arg: &str) -> String {
    if arg == "auto" {
        format!("{}x", auto_speed(m.models.values().map(|k| k.timeframe)))
    } else {
        arg.to_string()
    }
}

/// The live bars a run counts, per model: those closing within the span ([`market::Market`]'s
/// `expected` first of its `live_bars`; the market runs on for a tail, so the last orders find
/// it open; bars of the tail are not waited for).
pub fn counted_bars(m: &market::Market) -> BTreeMap<String, Vec<i64>> {
    m.live_bars
        .iter()
        .map(|(n, bars)| {
            let k = m.expected.get(n).map_or(0, |&k| k as usize).min(bars.len());
            (n.clone(), bars[..k].to_vec())
        })
        .collect()
}

/// Every model's trace in `dir/trace` has reached its last counted bar (it may go further: the
/// tail); ISO times order as strings. Bars skipped on the way are counted by [`live_figures`].
pub fn traces_reached(counted: &BTreeMap<String, Vec<i64>>, dir: &Path) -> bool {
    counted.iter().all(|(n, bars)| {
        let Some(t) = bars.last().map(|t| oracle_model::format_time(*t)) else {
            return true;
        };
        let row = last_line(&dir.join(format!("trace/{n}.csv")));
        // The header (or nothing yet) is not a bar.
        row.starts_with(|c: char| c.is_ascii_digit()) && row.split(',').next() >= Some(t.as_str())
    })
}

/// A live run's bars and traces: counted live bars, those the predictor never saw, trace rows,
/// rows equal to `oracle replay`'s, and the models whose trace differs (name: where).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LiveFigures {
    /// Live bars counted.
    pub live_bars: usize,
    /// Of those, never seen by the predictor.
    pub missed: usize,
    /// Trace rows.
    pub rows: usize,
    /// Rows equal to `oracle replay`'s.
    pub rows_equal: usize,
    /// Models whose trace differs (name: where).
    pub differ: Vec<String>,
}

/// [`LiveFigures`] of the run in `dir` over the `counted` bars of the models in `models`.
pub fn live_figures(
    models: &Path,
    counted: &BTreeMap<String, Vec<i64>>,
    dir: &Path,
) -> LiveFigures {
    let mut f = LiveFigures::default();
    for (name, bars) in counted {
        let (rows, eq, differ) = trace_vs_replay(models, name, dir);
        f.rows += rows;
        f.rows_equal += eq;
        if let Some(d) = differ {
            f.differ.push(format!("{name}: {d}"));
        }
        let seen = seen_times(&dir.join(format!("trace/{name}.bars.csv")));
        f.live_bars += bars.len();
        f.missed += bars
            .iter()
            .filter(|t| !seen.contains(&oracle_model::format_time(**t)))
            .count();
    }
    f
}

pub fn disconnect_run(args: &ChaosArgs, bins: &Bins) -> anyhow::Result<DisconnectResult> {
    let m = live_market(
        &args.models,
        &args.data,
        &args.out.join("sim-input"),
        args.sim_hours,
        args.max_models,
        None,
    )?;
    let dir = args.out.join("broker-disconnects");
    files::fresh_dir(&dir)?;
    let fault = format!(
        "drop:after={},times={}",
        args.disconnect_every, args.disconnects
    );
    let tfs = || m.models.values().map(|k| k.timeframe);
    let speed = live_speed(&m, &args.sim_speed);
    let x = crate::bench::speed_factor(&speed)
        .with_context(|| format!("--sim-speed {speed}: expected auto or <N>x, e.g. 120x"))?;
    let load = history_load(tfs(), x);
    println!(
        "broker disconnects: {} models at {speed}: bar confirmations need {load:.2} of the broker's {HISTORY_PER_S} historical requests/s{}",
        m.models.len(),
        if load > HISTORY_PER_S * 0.8 {
            " (near or over the budget: bars will fall behind the replay)"
        } else {
            ""
        }
    );
    let counted = counted_bars(&m);
    let t0 = Instant::now();
    let mut faults = vec![fault];
    if args.delta_high_bug {
        faults.push("delta-high-bug".to_string());
    }
    let (mut sim, mut ex, mut pr) = spawn_live_system(
        bins,
        &m,
        &dir,
        &speed,
        &faults,
        &["--bar-close".to_string(), args.bar_close.clone()],
        &[],
    )?;
    let deadline = t0 + Duration::from_secs(args.timeout_s);
    while !traces_reached(&counted, &dir) {
        supervisor::all_alive(&mut [&mut sim, &mut ex, &mut pr])?;
        if Instant::now() > deadline {
            let seen: usize = m
                .live_bars
                .keys()
                .map(|n| run::trace_rows(&dir.join(format!("trace/{n}.csv"))))
                .sum();
            bail!(
                "broker disconnect run timed out after {} s ({seen} trace rows); logs in {}",
                args.timeout_s,
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The executor confirms each live-emitted bar from history 2 s after it went out, 5 requests
    // a second: wait for the last bars' confirmations (and the revisions they bring) before
    // counting what the twins hold.
    std::thread::sleep(confirmations(m.models.len()));
    pr.stop(Duration::from_secs(3));
    ex.stop(Duration::from_secs(3));
    sim.stop(Duration::from_secs(3));
    let seconds = t0.elapsed().as_secs_f64();
    let mut r = DisconnectResult {
        every: args.disconnect_every,
        planned: args.disconnects,
        seconds,
        models: m.models.len(),
        ..Default::default()
    };
    if let Some((orders, drops)) = sim_timing(&dir.join("sim-timing.jsonl")) {
        r.timing = true;
        r.broker_orders = orders;
        r.disconnects = drops;
    }
    r.journal_orders = journal_orders(&dir.join("executor/journal.jsonl"));
    r.delta_high_bug = args.delta_high_bug;
    r.revisions_sent = log_count(&dir.join("executor.log"), "REV:1");
    r.rewinds = log_count(&dir.join("predictor.log"), "\"event\":\"revised\"");
    r.speed = speed;
    r.history_load = load;
    let f = live_figures(&m.models_dir, &counted, &dir);
    (r.live_bars, r.missed, r.rows, r.rows_equal) = (f.live_bars, f.missed, f.rows, f.rows_equal);
    r.differ = f.differ;
    if args.delta_high_bug {
        for name in counted.keys() {
            let held = std::fs::read_to_string(dir.join(format!("trace/{name}.bars.csv")))
                .unwrap_or_default();
            r.bars_not_history += files::final_rows(&held)
                .into_iter()
                .filter(|row| !history_shaped(row))
                .count();
        }
    }
    Ok(r)
}

/// How long a live run waits after its last counted bar before counting: the executor confirms
/// each live-emitted bar from history 2 s after it went out, 5 requests a second (and the
/// revisions they bring reach the twins).
pub fn confirmations(models: usize) -> Duration {
    Duration::from_millis(3000 + 200 * models as u64)
}

/// Lines of a log file that contain `needle` (0 when absent).
fn log_count(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// Whether a bar row (`time,open,high,low,close,volume`) looks as the simulator's history with
/// the `delta-high-bug` fault sends it: a bar closing at its low has its high at max(open, close).
fn history_shaped(row: &str) -> bool {
    let f: Vec<f64> = row
        .split(',')
        .skip(1)
        .take(4)
        .filter_map(|v| v.parse().ok())
        .collect();
    match f[..] {
        [open, high, low, close] => close != low || high == open.max(close),
        _ => false,
    }
}

/// Bar times the predictor saw (`NAME.bars.csv`).
pub fn seen_times(path: &Path) -> std::collections::HashSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().map(str::to_string))
        .collect()
}

/// A model's trace in `run` against `oracle replay` over the bars it saw: (rows, rows equal,
/// where it differs).
pub fn trace_vs_replay(models: &Path, name: &str, run: &Path) -> (usize, usize, Option<String>) {
    let trace = std::fs::read_to_string(run.join(format!("trace/{name}.csv"))).unwrap_or_default();
    // The bars as they finally stand (a revision replaces a bar), replayed from scratch.
    let bars =
        std::fs::read_to_string(run.join(format!("trace/{name}.bars.csv"))).unwrap_or_default();
    let final_bars = run.join(format!("trace/{name}.bars.final.csv"));
    let mut out = Vec::new();
    let mut err = Vec::new();
    let r = files::write_file(&final_bars, &files::final_csv(&bars)).and_then(|()| {
        oracle_model::replay(
            &models.join(format!("{name}.zip")),
            &final_bars,
            &mut out,
            &mut err,
        )
        .map_err(anyhow::Error::from)
    });
    let got = String::from_utf8_lossy(&out);
    let t = files::final_rows(&trace);
    let g: Vec<&str> = got.lines().skip(1).collect();
    let eq = t.iter().zip(&g).filter(|(a, b)| a == b).count();
    if r.is_ok() && eq == t.len() && t.len() == g.len() && !t.is_empty() {
        (t.len(), eq, None)
    } else {
        let at = t.iter().zip(&g).position(|(a, b)| a != b).map_or_else(
            || format!("rows {} vs {}", t.len(), g.len()),
            |i| format!("row {}", i + 1),
        );
        (t.len(), eq, Some(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_points_are_seeded_and_sorted() {
        let a = kill_points(7, 50, 1000);
        assert_eq!(a, kill_points(7, 50, 1000));
        assert_ne!(a, kill_points(8, 50, 1000));
        assert_eq!(a.len(), 50);
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert!(a.iter().all(|&x| (1..1000).contains(&x)));
    }

    #[test]
    fn auto_speed_keeps_bar_confirmations_within_the_history_budget() {
        // One M5 stream closes 1/300 bars a second: 2 requests/s (40% of 5) at 600x.
        use Timeframe::{D1, H1, M5, M15};
        assert_eq!(auto_speed([M5]), 600);
        assert!((history_load([M5], 600.0) - 2.0).abs() < 1e-9);
        // More streams, slower replay; the load at the auto speed never exceeds the share.
        let tfs = [M5, M5, M15, H1, H1, D1];
        let x = auto_speed(tfs);
        assert!(history_load(tfs, x as f64) <= HISTORY_SHARE * HISTORY_PER_S);
        assert!(history_load(tfs, (x + 1) as f64) > HISTORY_SHARE * HISTORY_PER_S);
        // Bounds: nothing known → 1x; a lone D1 model is capped at 3,600x.
        assert_eq!(auto_speed([]), 1);
        assert_eq!(auto_speed([D1]), 3600);
        assert_eq!(crate::bench::speed_factor("120x"), Some(120.0));
        assert_eq!(crate::bench::speed_factor("fast"), None);
        assert_eq!(crate::bench::speed_factor("0x"), None);
    }

    #[test]
    fn a_live_run_counts_the_span_and_waits_for_every_models_last_counted_bar() {
        let d = std::env::temp_dir().join(format!("chaos-reached-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("trace")).expect("dir");
        let h = 3600;
        let m = market::Market {
            data: d.clone(),
            models_dir: d.clone(),
            start: oracle_model::format_time(0),
            t0: 0,
            executor_config: d.join("executor_config.json"),
            models: BTreeMap::from([
                (
                    "A_H1".to_string(),
                    oracle_core::StreamKey::parse("A", "H1").expect("key"),
                ),
                (
                    "B_H1".to_string(),
                    oracle_core::StreamKey::parse("B", "H1").expect("key"),
                ),
            ]),
            // A: 2 of its 3 live bars close within the span; B: none.
            expected: BTreeMap::from([("A_H1".to_string(), 2), ("B_H1".to_string(), 0)]),
            live_bars: BTreeMap::from([
                ("A_H1".to_string(), vec![0, h, 2 * h]),
                ("B_H1".to_string(), vec![5 * h]),
            ]),
            realistic: true,
        };
        let counted = counted_bars(&m);
        assert_eq!(counted["A_H1"], vec![0, h]);
        assert!(counted["B_H1"].is_empty());
        let write = |rows: &str| {
            std::fs::write(d.join("trace/A_H1.csv"), format!("time,action\n{rows}")).expect("trace")
        };
        assert!(!traces_reached(&counted, &d), "no trace yet");
        write("1970-01-01T00:00:00Z,FLAT\n");
        assert!(
            !traces_reached(&counted, &d),
            "the 01:00 bar is not traced yet"
        );
        write("1970-01-01T00:00:00Z,FLAT\n1970-01-01T01:00:00Z,FLAT\n");
        assert!(traces_reached(&counted, &d));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn journal_duplicates_are_counted() {
        let d = std::env::temp_dir().join(format!("ops-journal-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        let j = d.join("j.jsonl");
        std::fs::write(
            &j,
            "{\"t\":\"intent\",\"coid\":\"a\"}\n{\"t\":\"outcome\",\"coid\":\"a\"}\n{\"t\":\"intent\",\"coid\":\"b\"}\n{\"t\":\"intent\",\"coid\":\"a\"}\ntorn{",
        )
        .expect("write");
        assert_eq!(journal_orders(&j), (3, 2, 1));
        let _ = std::fs::remove_dir_all(&d);
    }
}
