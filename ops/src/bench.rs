//! `oracle bench`: the end-to-end benchmark harness (not a test: it measures and reports, it
//! asserts nothing about time). One invocation measures, on this machine:
//!
//! - **scale**: one bar close through 1/20/200/1,000 twins of the 20 models, in a fresh child
//!   process each (so its peak RSS is the fleet's), p50/p99/max per bar close;
//! - **end to end**: executor (paper book, bar feed) + predictor as separate processes over the
//!   real loopback WebSocket, 20 models on one bar grid: bar out (executor) → order written
//!   (executor, after the predictor's SIGNAL), p50/p99/max; RSS of both processes sampled from
//!   `/proc` (peak, steady, slope); cold start of the predictor to its first signal;
//! - **Python reference**: `python -m oracle_training reference --bench` over the same bar files
//!   and models: RSS and per-bar latency, printed as ratios against ours;
//! - **criterion**: the core step's estimates (`target/criterion/bar/*/new/estimates.json`),
//!   optionally running `cargo bench -p oracle-core` first.
//!
//! Everything that cannot be measured prints `not available: <what>` instead of a number.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::procs::{self, Bins, Follow};

/// `oracle bench` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Models folder.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Bar files folder (`NAME.csv` per model).
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Output folder: bench.json, bench.md, run/ (logs, traces).
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Live bars per stream in the end-to-end run (after 350 history bars).
    #[arg(long, default_value_t = 250)]
    pub bars: usize,
    /// Pause the executor's paper feed makes after each bar event, ms (large enough that the
    /// pipeline is idle when a bar arrives: latency without queueing).
    #[arg(long, default_value_t = 20)]
    pub feed_interval_ms: u64,
    /// Fleet sizes of the scale bench.
    #[arg(long, value_delimiter = ',', default_value = "1,20,200,1000")]
    pub twins: Vec<usize>,
    /// Timed bar closes per fleet size.
    #[arg(long, default_value_t = 300)]
    pub scale_bars: usize,
    /// Python interpreter of the training venv (the reference predictor).
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    /// Bars the Python reference times (after its warm-up).
    #[arg(long, default_value_t = 30)]
    pub python_bars: usize,
    /// Skip the Python reference.
    #[arg(long)]
    pub no_python: bool,
    /// Run `cargo bench -p oracle-core --bench twin` (short measurement) before reading its
    /// estimates; without it, existing estimates are read if present.
    #[arg(long)]
    pub criterion: bool,
    /// Criterion output folder (default: $CARGO_TARGET_DIR/criterion, else target/criterion).
    #[arg(long)]
    pub criterion_dir: Option<PathBuf>,
    /// Folder of the system's binaries (default: $ORACLE_BIN_DIR, else beside this one).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Give up on the end-to-end run after this many seconds.
    #[arg(long, default_value_t = 180)]
    pub timeout_s: u64,
    /// Internal: run the scale bench with N twins in this process and print JSON.
    #[arg(long, hide = true)]
    pub scale_worker: Option<usize>,
}

/// Percentiles of a sample (nearest rank), in the sample's unit.
pub fn percentiles(v: &mut [f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    };
    Some((at(0.50), at(0.99), v[v.len() - 1]))
}

fn pct_json(v: &mut [f64]) -> Value {
    match percentiles(v) {
        Some((p50, p99, max)) => {
            json!({"n": v.len(), "p50": round3(p50), "p99": round3(p99), "max": round3(max)})
        }
        None => Value::Null,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Least-squares slope of y over x.
pub fn slope(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len().min(ys.len());
    if n < 3 {
        return None;
    }
    let mx = xs[..n].iter().sum::<f64>() / n as f64;
    let my = ys[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for i in 0..n {
        sxy += (xs[i] - mx) * (ys[i] - my);
        sxx += (xs[i] - mx) * (xs[i] - mx);
    }
    (sxx > 0.0).then(|| sxy / sxx)
}

// ---------------------------------------------------------------------------------------------
// scale (in a child process)

fn read_bars(path: &Path) -> anyhow::Result<Vec<oracle_core::Bar>> {
    let f = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let r = oracle_model::BarReader::new(std::io::BufReader::new(f))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(r.filter_map(Result::ok).map(|l| l.bar).collect())
}

/// The scale worker: loads the models, builds `n` twins (model `k % models`), warms each up
/// over its window, then times `bars` bar closes over the whole fleet. Prints JSON.
pub fn scale_worker(models: &Path, data: &Path, n: usize, bars: usize) -> anyhow::Result<Value> {
    let rss_start = procs::mem_kb(std::process::id()).map_or(0, |m| m.0);
    let loaded = oracle_model::load_dir(models).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut pairs = Vec::new();
    for m in &loaded.models {
        let b = read_bars(&data.join(format!("{}.csv", m.name)))?;
        if b.len() >= m.model.window() + bars {
            pairs.push((m, b));
        }
    }
    if pairs.is_empty() {
        bail!("no model with enough bars in {}", data.display());
    }
    let rss_models = procs::mem_kb(std::process::id()).map_or(0, |m| m.0);
    // Twins of one model sit next to each other (sorted by model), so `Twin::handle_bars` can
    // run the window passes of neighbouring twins in lockstep, as the core's fleet API expects.
    let mut order: Vec<usize> = (0..n).map(|k| k % pairs.len()).collect();
    order.sort_unstable();
    let mut twins: Vec<oracle_core::Twin<'_>> = Vec::with_capacity(n);
    for &i in &order {
        let (m, b) = &pairs[i];
        let mut twin: oracle_core::Twin<'_> =
            oracle_core::Twin::new(&m.model).map_err(|e| anyhow::anyhow!("{}: {e:?}", m.name))?;
        for bar in &b[..m.model.window()] {
            let _ = twin.handle_bar(*bar);
        }
        twins.push(twin);
    }
    let rss_fleet = procs::mem_kb(std::process::id()).map_or(0, |m| m.0);
    let mut lat_us = Vec::with_capacity(bars);
    let mut decisions = 0u64;
    let mut closes: Vec<oracle_core::Bar> = Vec::with_capacity(n);
    let mut outcomes: Vec<Result<oracle_core::Step, oracle_core::BarError>> = (0..n)
        .map(|_| Err(oracle_core::BarError::Duplicate { time: 0 }))
        .collect();
    for j in 0..bars {
        closes.clear();
        closes.extend(order.iter().map(|&i| {
            let (m, b) = &pairs[i];
            b[m.model.window() + j]
        }));
        let t0 = Instant::now();
        oracle_core::Twin::handle_bars(&mut twins, &closes, &mut outcomes);
        lat_us.push(t0.elapsed().as_secs_f64() * 1e6);
        decisions += outcomes
            .iter()
            .filter(|o| matches!(o, Ok(oracle_core::Step::Decision(_))))
            .count() as u64;
    }
    std::hint::black_box(decisions);
    let (rss, hwm) = procs::mem_kb(std::process::id()).unwrap_or((0, 0));
    let mean = lat_us.iter().sum::<f64>() / lat_us.len().max(1) as f64;
    Ok(json!({
        "twins": n,
        "models": pairs.len(),
        "bar_closes": bars,
        "bar_close_us": pct_json(&mut lat_us),
        "mean_us_per_twin": round3(mean / n.max(1) as f64),
        "twin_bytes": std::mem::size_of::<oracle_core::Twin<'static>>(),
        "rss_start_kb": rss_start,
        "rss_models_kb": rss_models,
        "rss_fleet_kb": rss_fleet,
        "rss_end_kb": rss,
        "hwm_kb": hwm,
    }))
}

fn run_scale(args: &BenchArgs) -> Value {
    let Ok(exe) = std::env::current_exe() else {
        return json!({"error": "not available: current executable"});
    };
    // `oracle bench …` or `oracle-ops bench …`: the subcommand word is argv[1].
    let sub = std::env::args().nth(1).unwrap_or_else(|| "bench".into());
    let mut out = Vec::new();
    for &n in &args.twins {
        let r = Command::new(&exe)
            .arg(&sub)
            .arg("--scale-worker")
            .arg(n.to_string())
            .arg("--scale-bars")
            .arg(args.scale_bars.to_string())
            .arg("--models")
            .arg(&args.models)
            .arg("--data")
            .arg(&args.data)
            .stderr(Stdio::inherit())
            .output();
        match r {
            Ok(o) if o.status.success() => match serde_json::from_slice::<Value>(&o.stdout) {
                Ok(v) => out.push(v),
                Err(e) => out.push(
                    json!({"twins": n, "error": format!("not available: worker output: {e}")}),
                ),
            },
            Ok(o) => out.push(
                json!({"twins": n, "error": format!("not available: worker exit {}", o.status)}),
            ),
            Err(e) => out.push(json!({"twins": n, "error": format!("not available: {e}")})),
        }
    }
    Value::Array(out)
}

// ---------------------------------------------------------------------------------------------
// end to end

/// What the executor's JSON log says about one run.
#[derive(Debug, Default)]
pub struct LogFacts {
    /// First "bar out" instant per (model, bar time).
    pub bar_out: HashMap<(String, i64), f64>,
    /// Order-sent instants per (model, bar time), in order.
    pub orders: Vec<((String, i64), f64, String)>,
    /// Signal instants.
    pub signals: Vec<f64>,
    /// First signal instant per (model, bar time).
    pub signal_at: HashMap<(String, i64), f64>,
    /// Lines that were JSON events.
    pub events: usize,
}

fn field<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.get("fields").and_then(|f| f.get(k)).or_else(|| v.get(k))
}

/// Bar time and model of a client order id `ot-SYM-TF-<bar time>-O|C`.
pub fn coid_bar(coid: &str) -> Option<(String, i64)> {
    let mut it = coid.rsplitn(3, '-');
    let _op = it.next()?;
    let bt: i64 = it.next()?.parse().ok()?;
    let rest = it.next()?.strip_prefix("ot-")?;
    let (sym, tf) = rest.rsplit_once('-')?;
    Some((format!("{sym}_{tf}"), bt))
}

/// Feeds one executor log line into `facts`.
pub fn log_line(facts: &mut LogFacts, line: &str) {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return;
    };
    let Some(ts) = v
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(procs::parse_ts)
    else {
        return;
    };
    facts.events += 1;
    match field(&v, "event").and_then(Value::as_str) {
        Some("bar") => {
            let Some(l) = field(&v, "line").and_then(Value::as_str) else {
                return;
            };
            let f: Vec<&str> = l.split('|').collect();
            if f.len() > 4
                && let Some(t) = oracle_model::parse_time(f[3])
            {
                facts
                    .bar_out
                    .entry((format!("{}_{}", f[1], f[2]), t))
                    .or_insert(ts);
            }
        }
        Some("order_sent") => {
            let side = field(&v, "side").and_then(Value::as_str).unwrap_or("");
            if let Some(c) = field(&v, "coid").and_then(Value::as_str)
                && let Some(k) = coid_bar(c)
            {
                facts.orders.push((k, ts, side.to_string()));
            }
        }
        Some("signal") => {
            facts.signals.push(ts);
            if let (Some(m), Some(bt)) = (
                field(&v, "model").and_then(Value::as_str),
                field(&v, "bt")
                    .and_then(Value::as_str)
                    .and_then(oracle_model::parse_time),
            ) {
                facts.signal_at.entry((m.to_string(), bt)).or_insert(ts);
            }
        }
        _ => {}
    }
}

/// The predictor's JSON log: first "bar" and "signal" instants per (model, bar time).
#[derive(Debug, Default)]
pub struct PredictorFacts {
    /// Bar received.
    pub bar_in: HashMap<(String, i64), f64>,
    /// Signal sent.
    pub signal_out: HashMap<(String, i64), f64>,
}

/// Feeds one predictor log line into `facts` (flattened JSON: `event`, `model`, `bar_time`).
pub fn predictor_line(facts: &mut PredictorFacts, line: &str) {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return;
    };
    let (Some(ts), Some(ev), Some(m), Some(bt)) = (
        v.get("timestamp")
            .and_then(Value::as_str)
            .and_then(procs::parse_ts),
        field(&v, "event").and_then(Value::as_str),
        field(&v, "model").and_then(Value::as_str),
        field(&v, "bar_time")
            .and_then(Value::as_str)
            .and_then(oracle_model::parse_time),
    ) else {
        return;
    };
    let map = match ev {
        "bar" => &mut facts.bar_in,
        "signal" => &mut facts.signal_out,
        _ => return,
    };
    map.entry((m.to_string(), bt)).or_insert(ts);
}

/// Differences `b[k] - a[k]` in ms over the keys of both, for keys whose `a` is at or after `from`.
fn hop(a: &HashMap<(String, i64), f64>, b: &HashMap<(String, i64), f64>, from: f64) -> Value {
    let mut d: Vec<f64> = a
        .iter()
        .filter(|(_, t)| **t >= from)
        .filter_map(|(k, t)| b.get(k).map(|u| (u - t) * 1000.0))
        .collect();
    pct_json(&mut d)
}

struct E2e {
    json: Value,
}

fn run_e2e(args: &BenchArgs, bins: &Bins) -> anyhow::Result<E2e> {
    let run = args.out.join("run");
    procs::fresh_dir(&run)?;
    let p = procs::prepare(&args.models, &args.data, &run, args.bars, 20)?;
    let port = procs::free_port()?;
    let ex_log = run.join("executor.log");
    let pr_log = run.join("predictor.log");
    let mut ex = procs::spawn_executor(
        bins,
        &p,
        &run.join("executor"),
        port,
        args.feed_interval_ms,
        &ex_log,
    )?;
    procs::wait_port(&mut ex, port, Duration::from_secs(30))?;
    let pr_spawn_wall = wall_now();
    let mut pr = procs::spawn_predictor(
        bins,
        &p.models,
        &run.join("state"),
        &run.join("trace"),
        port,
        &pr_log,
    )?;
    let mut follow = Follow::new(&ex_log);
    let mut facts = LogFacts::default();
    let mut samples: Vec<(f64, u64, u64)> = Vec::new(); // (s since start, rss ex+pr, hwm ex+pr)
    let mut pr_samples: Vec<u64> = Vec::new();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.timeout_s);
    let expected = p.streams.len() * p.live;
    let mut last_growth = Instant::now();
    let mut last_bars = 0usize;
    let mut hwm = (0u64, 0u64);
    loop {
        for l in follow.lines() {
            log_line(&mut facts, &l);
        }
        if let (Some(a), Some(b)) = (
            ex.pid().and_then(procs::mem_kb),
            pr.pid().and_then(procs::mem_kb),
        ) {
            samples.push((t0.elapsed().as_secs_f64(), a.0 + b.0, a.1 + b.1));
            pr_samples.push(b.0);
            hwm = (hwm.0.max(a.1), hwm.1.max(b.1));
        }
        let live_bars = facts.bar_out.len();
        if live_bars != last_bars {
            last_bars = live_bars;
            last_growth = Instant::now();
        }
        if live_bars >= expected && last_growth.elapsed() > Duration::from_millis(800) {
            break;
        }
        if let Some(s) = ex.exited() {
            bail!("executor exited early ({s}); log {}", ex_log.display());
        }
        if let Some(s) = pr.exited() {
            bail!("predictor exited early ({s}); log {}", pr_log.display());
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let timed_out = facts.bar_out.len() < expected;
    let mut pf = PredictorFacts::default();
    for l in std::fs::read_to_string(&pr_log).unwrap_or_default().lines() {
        predictor_line(&mut pf, l);
    }
    pr.stop(Duration::from_secs(3));
    ex.stop(Duration::from_secs(3));
    for l in follow.lines() {
        log_line(&mut facts, &l);
    }
    // Cold start: predictor spawn → first SIGNAL handled by the executor.
    let first_signal = facts.signals.iter().copied().fold(f64::INFINITY, f64::min);
    let cold_ms = first_signal
        .is_finite()
        .then_some((first_signal - pr_spawn_wall) * 1000.0);
    // Latency per order: its bar's "bar out" → "order sent", live side only; bars whose order
    // went out after the predictor was up (after the first signal) only.
    let mut per_order = Vec::new();
    let mut per_bar_last: BTreeMap<i64, (f64, f64)> = BTreeMap::new(); // bt -> (first bar out, last order)
    let mut first_out: BTreeMap<i64, f64> = BTreeMap::new();
    for ((_, bt), ts) in &facts.bar_out {
        let e = first_out.entry(*bt).or_insert(*ts);
        *e = e.min(*ts);
    }
    for (k, ts, _side) in &facts.orders {
        let Some(out) = facts.bar_out.get(k) else {
            continue;
        };
        if *out < first_signal {
            continue;
        }
        per_order.push((ts - out) * 1000.0);
        let fo = first_out.get(&k.1).copied().unwrap_or(*out);
        let e = per_bar_last.entry(k.1).or_insert((fo, *ts));
        e.1 = e.1.max(*ts);
    }
    let mut order_first: HashMap<(String, i64), f64> = HashMap::new();
    for (k, ts, _) in &facts.orders {
        let e = order_first.entry(k.clone()).or_insert(*ts);
        *e = e.min(*ts);
    }
    // Bar out → SIGNAL in (every bar, orders or not): the predictor's round trip.
    let mut to_signal: Vec<f64> = facts
        .signal_at
        .iter()
        .filter_map(|(k, ts)| {
            let out = facts.bar_out.get(k)?;
            (*out >= first_signal).then_some((ts - out) * 1000.0)
        })
        .collect();
    let mut per_bar: Vec<f64> = per_bar_last
        .values()
        .map(|(a, b)| (b - a) * 1000.0)
        .collect();
    // RSS: steady = median of the second half; slope over the second half.
    let half = samples.len() / 2;
    let tail = &samples[half..];
    let mut rss_tail: Vec<f64> = tail.iter().map(|s| s.1 as f64).collect();
    let steady = percentiles(&mut rss_tail).map(|p| p.0);
    let xs: Vec<f64> = tail.iter().map(|s| s.0 / 60.0).collect();
    let ys: Vec<f64> = tail.iter().map(|s| s.1 as f64).collect();
    let kb_per_min = slope(&xs, &ys);
    let seconds = t0.elapsed().as_secs_f64();
    let mut pr_tail: Vec<f64> = pr_samples[pr_samples.len() / 2..]
        .iter()
        .map(|&k| k as f64)
        .collect();
    let pr_steady = percentiles(&mut pr_tail).map(|p| p.0);
    let json = json!({
        "mode": "executor --paper (bar feed inside the executor) + predictor, separate processes, loopback WebSocket",
        "streams": p.streams.len(),
        "live_bars_per_stream": p.live,
        "feed_interval_ms": args.feed_interval_ms,
        "bars_out": facts.bar_out.len(),
        "signals": facts.signals.len(),
        "orders": facts.orders.len(),
        "timed_out": timed_out,
        "seconds": round3(seconds),
        "bar_to_order_ms": pct_json(&mut per_order),
        "bar_to_signal_ms": pct_json(&mut to_signal),
        "hops_ms": {
            "executor_bar_out_to_predictor_bar_in": hop(&facts.bar_out, &pf.bar_in, first_signal),
            "predictor_bar_in_to_signal_out": hop(&pf.bar_in, &pf.signal_out, first_signal),
            "predictor_signal_out_to_executor_signal_in": hop(&pf.signal_out, &facts.signal_at, first_signal),
            "executor_signal_in_to_order_sent": hop(&facts.signal_at, &order_first, first_signal),
        },
        "bar_close_to_last_order_ms": pct_json(&mut per_bar),
        "cold_start_to_first_signal_ms": cold_ms.map(round3),
        "rss": {
            "samples": samples.len(),
            "peak_kb_executor": hwm.0,
            "peak_kb_predictor": hwm.1,
            "peak_kb_total": hwm.0 + hwm.1,
            "steady_kb_total": steady,
            "steady_kb_predictor": pr_steady,
            "slope_kb_per_min_second_half": kb_per_min.map(round3),
        },
        "logs": run.display().to_string(),
    });
    Ok(E2e { json })
}

fn wall_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// python reference

fn run_python(args: &BenchArgs, models: &Path, data: &Path) -> Value {
    if args.no_python {
        return json!({"error": "not available: --no-python"});
    }
    if !args.python.is_file() {
        return json!({"error": format!("not available: {} (run scripts/setup)", args.python.display())});
    }
    let t0 = Instant::now();
    let r = Command::new(&args.python)
        .args(["-m", "oracle_training", "--models-dir"])
        .arg(models)
        .arg("--data-dir")
        .arg(data)
        .args(["reference", "--bench", "--bench-bars"])
        .arg(args.python_bars.to_string())
        .stderr(Stdio::piped())
        .output();
    match r {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            match text
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str::<Value>(l).ok())
            {
                Some(mut v) => {
                    v["wall_seconds"] = json!(round3(t0.elapsed().as_secs_f64()));
                    v
                }
                None => json!({"error": "not available: no JSON from the reference bench"}),
            }
        }
        Ok(o) => json!({"error": format!("not available: reference bench exit {}: {}", o.status,
            procs_tail(&String::from_utf8_lossy(&o.stderr)))}),
        Err(e) => json!({"error": format!("not available: {e}")}),
    }
}

fn procs_tail(s: &str) -> String {
    let l: Vec<&str> = s.lines().collect();
    l[l.len().saturating_sub(3)..].join(" / ")
}

// ---------------------------------------------------------------------------------------------
// criterion

fn criterion_dir(args: &BenchArgs) -> PathBuf {
    if let Some(d) = &args.criterion_dir {
        return d.clone();
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t).join("criterion"),
        None => PathBuf::from("target/criterion"),
    }
}

fn run_criterion(args: &BenchArgs) -> Value {
    let dir = criterion_dir(args);
    let mut note = String::new();
    if args.criterion {
        let st = Command::new("cargo")
            .args([
                "bench",
                "-p",
                "oracle-core",
                "--bench",
                "twin",
                "--",
                "--warm-up-time",
                "1",
                "--measurement-time",
                "2",
                "bar/",
            ])
            .stdout(Stdio::null())
            .status();
        match st {
            Ok(s) if s.success() => {}
            Ok(s) => note = format!("cargo bench exit {s}"),
            Err(e) => note = format!("cargo bench: {e}"),
        }
    }
    let mut out = serde_json::Map::new();
    for name in ["bar/one_twin", "bar/twenty_twins"] {
        let f = dir.join(name).join("new/estimates.json");
        let v = std::fs::read(&f)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let age = std::fs::metadata(&f)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .map(|d| d.as_secs());
        match v {
            Some(v) => {
                let ns = |k: &str| {
                    v.get(k)
                        .and_then(|e| e.get("point_estimate"))
                        .and_then(Value::as_f64)
                };
                out.insert(
                    name.into(),
                    json!({"median_us": ns("median").map(|x| round3(x / 1000.0)),
                           "mean_us": ns("mean").map(|x| round3(x / 1000.0)),
                           "age_s": age, "file": f.display().to_string()}),
                );
            }
            None => {
                out.insert(
                    name.into(),
                    json!({"error": format!("not available: {} (run with --criterion, or cargo bench -p oracle-core)", f.display())}),
                );
            }
        }
    }
    if !note.is_empty() {
        out.insert("note".into(), json!(note));
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------------
// the report

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(0, |k| k / 1024);
    format!("{cpu}, {cores} CPUs available, {mem} MB RAM")
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut c = v;
    for p in path {
        c = c.get(*p)?;
    }
    c.as_f64()
}

fn fmt_opt(x: Option<f64>, unit: &str) -> String {
    x.map_or_else(|| "not available".into(), |x| format!("{x:.3} {unit}"))
}

/// The markdown table of a result (what the README's performance section shows).
pub fn markdown(r: &Value) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Command: `{}`  ", r["command"].as_str().unwrap_or("?"));
    let _ = writeln!(s, "Machine: {}  ", r["machine"].as_str().unwrap_or("?"));
    let _ = writeln!(s, "Date (UTC): {}\n", r["date"].as_str().unwrap_or("?"));
    let _ = writeln!(s, "| what | measured | budget (DESIGN.md) |");
    let _ = writeln!(s, "|---|---|---|");
    let e = &r["e2e"];
    let row = |s: &mut String, what: &str, got: String, budget: &str| {
        let _ = writeln!(s, "| {what} | {got} | {budget} |");
    };
    let p3 = |v: &Value, unit: &str| match (num(v, &["p50"]), num(v, &["p99"]), num(v, &["max"])) {
        (Some(a), Some(b), Some(c)) => {
            format!("p50 {a:.3} / p99 {b:.3} / max {c:.3} {unit} (n={})", v["n"])
        }
        _ => "not available".into(),
    };
    if let Some(err) = e.get("error").and_then(Value::as_str) {
        row(&mut s, "end to end", err.to_string(), "");
    } else {
        row(
            &mut s,
            "bar out → order written, per order (20 streams, paper book)",
            p3(&e["bar_to_order_ms"], "ms"),
            "< 100 ms (seed); < 2 ms p99 (goal)",
        );
        row(
            &mut s,
            "bar out → SIGNAL in (every bar, predictor round trip)",
            p3(&e["bar_to_signal_ms"], "ms"),
            "",
        );
        for (k, label) in [
            (
                "executor_bar_out_to_predictor_bar_in",
                "  hop: executor bar out → predictor bar in",
            ),
            (
                "predictor_bar_in_to_signal_out",
                "  hop: predictor bar in → SIGNAL out (20 twins' work)",
            ),
            (
                "predictor_signal_out_to_executor_signal_in",
                "  hop: predictor SIGNAL out → executor SIGNAL in",
            ),
            (
                "executor_signal_in_to_order_sent",
                "  hop: executor SIGNAL in → order written (journal fsync)",
            ),
        ] {
            row(&mut s, label, p3(&e["hops_ms"][k], "ms"), "");
        }
        row(
            &mut s,
            "bar close → last order of that bar (20 streams; includes the feed's 19 × interval spacing)",
            p3(&e["bar_close_to_last_order_ms"], "ms"),
            "< 100 ms (seed)",
        );
        row(
            &mut s,
            "RSS predictor + executor, peak (VmHWM)",
            fmt_opt(num(e, &["rss", "peak_kb_total"]).map(|k| k / 1024.0), "MB"),
            "< 600 MB (seed); < 16 MB (goal)",
        );
        row(
            &mut s,
            "RSS predictor + executor, steady (median, 2nd half)",
            fmt_opt(
                num(e, &["rss", "steady_kb_total"]).map(|k| k / 1024.0),
                "MB",
            ),
            "stable",
        );
        row(
            &mut s,
            "RSS slope, 2nd half of the run",
            fmt_opt(num(e, &["rss", "slope_kb_per_min_second_half"]), "kB/min"),
            "≈ 0",
        );
        row(
            &mut s,
            "cold start → first signal, 20 models",
            fmt_opt(num(e, &["cold_start_to_first_signal_ms"]), "ms"),
            "< 1 s (goal)",
        );
    }
    for f in r["scale"].as_array().into_iter().flatten() {
        let n = f["twins"].as_u64().unwrap_or(0);
        let got = if let Some(err) = f.get("error").and_then(Value::as_str) {
            err.to_string()
        } else {
            format!(
                "{}; {:.3} µs/twin; peak RSS {:.1} MB",
                p3(&f["bar_close_us"], "µs"),
                num(f, &["mean_us_per_twin"]).unwrap_or(f64::NAN),
                num(f, &["hwm_kb"]).unwrap_or(f64::NAN) / 1024.0
            )
        };
        let budget = match n {
            1000 => "< 10 ms, < 64 MB RSS",
            20 => "< 100 µs per bar",
            _ => "",
        };
        row(
            &mut s,
            &format!("one bar close, {n} twins (in process)"),
            got,
            budget,
        );
    }
    let c = &r["criterion"];
    for name in ["bar/one_twin", "bar/twenty_twins"] {
        let got = match num(c, &[name, "median_us"]) {
            Some(x) => format!("median {x:.3} µs"),
            None => c[name]["error"]
                .as_str()
                .unwrap_or("not available")
                .to_string(),
        };
        row(
            &mut s,
            &format!("criterion {name}"),
            got,
            if name.ends_with("twins") {
                "< 100 µs"
            } else {
                ""
            },
        );
    }
    let py = &r["python"];
    match py.get("error").and_then(Value::as_str) {
        Some(err) => row(&mut s, "Python reference", err.to_string(), ""),
        None => {
            let r_ = &r["ratios"];
            row(
                &mut s,
                "Python reference, one bar all models (p50)",
                format!(
                    "{} ms → ours ×{} faster (vs 20 twins in process, p50)",
                    num(py, &["latency_ms_per_bar_all_models", "p50"])
                        .map_or("?".into(), |x| format!("{x:.3}")),
                    num(r_, &["latency_python_over_ours"])
                        .map_or("not available".into(), |x| format!("{x:.0}"))
                ),
                "",
            );
            row(
                &mut s,
                "Python reference, peak RSS",
                format!(
                    "{} MB → ×{} ours (predictor) / ×{} ours (predictor + executor)",
                    num(py, &["peak_rss_mb"]).map_or("?".into(), |x| format!("{x:.1}")),
                    num(r_, &["rss_python_over_predictor"])
                        .map_or("not available".into(), |x| format!("{x:.1}")),
                    num(r_, &["rss_python_over_both"])
                        .map_or("not available".into(), |x| format!("{x:.1}"))
                ),
                "",
            );
        }
    }
    let _ = writeln!(
        s,
        "\nEnd to end: {}",
        e["mode"].as_str().unwrap_or("not available")
    );
    if let Some(n) = r["notes"].as_array() {
        for x in n {
            let _ = writeln!(s, "- {}", x.as_str().unwrap_or(""));
        }
    }
    s
}

/// `oracle bench`.
pub fn run_bench(args: &BenchArgs) -> ExitCode {
    if let Some(n) = args.scale_worker {
        return match scale_worker(&args.models, &args.data, n, args.scale_bars) {
            Ok(v) => {
                println!("{v}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("scale worker: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match bench(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oracle bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let started = Instant::now();
    eprintln!(
        "bench: scale ({:?} twins × {} bar closes)…",
        args.twins, args.scale_bars
    );
    let scale = run_scale(args);
    eprintln!("bench: end to end ({} live bars per stream)…", args.bars);
    let e2e = match Bins::locate(args.bin_dir.as_deref()) {
        Ok(bins) => match run_e2e(args, &bins) {
            Ok(e) => e.json,
            Err(e) => json!({"error": format!("not available: {e:#}")}),
        },
        Err(e) => json!({"error": format!("not available: {e:#}")}),
    };
    eprintln!("bench: python reference…");
    let run = args.out.join("run");
    let (pm, pd) = if run.join("models").is_dir() {
        (run.join("models"), run.join("data"))
    } else {
        (args.models.clone(), args.data.clone())
    };
    let python = run_python(args, &pm, &pd);
    eprintln!("bench: criterion…");
    let criterion = run_criterion(args);
    let ours_20_ms = scale
        .as_array()
        .and_then(|a| a.iter().find(|f| f["twins"] == 20))
        .and_then(|f| num(f, &["bar_close_us", "p50"]))
        .map(|us| us / 1000.0);
    let py_ms = num(&python, &["latency_ms_per_bar_all_models", "p50"]);
    let py_rss = num(&python, &["peak_rss_mb"]);
    let pr_mb = num(&e2e, &["rss", "peak_kb_predictor"]).map(|k| k / 1024.0);
    let both_mb = num(&e2e, &["rss", "peak_kb_total"]).map(|k| k / 1024.0);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(round3(a / b)),
        _ => None,
    };
    let ratios = json!({
        "latency_python_over_ours": ratio(py_ms, ours_20_ms),
        "rss_python_over_predictor": ratio(py_rss, pr_mb),
        "rss_python_over_both": ratio(py_rss, both_mb),
    });
    let cmd: Vec<String> = std::env::args().collect();
    let date = {
        let now = wall_now() as i64;
        oracle_model::format_time(now)
    };
    let notes = vec![
        "bar → order is measured inside the executor's JSON log (its 'bar out' instant to its 'order sent' instant, the predictor's round trip over the loopback WebSocket in between); the simulator → executor leg is not in it (see ops/NEEDS.md: the executor's live broker and the sim's send/receive instants).",
        "the executor's paper feed sleeps --feed-interval-ms after every bar event, so the 20 streams of one bar arrive that far apart, not at once; 'bar close → last order' includes that spacing.",
        "bar files are the bundled ones, cut to 350 + N bars and re-stamped onto one weekly grid (the twins see only the order of bars), so every stream closes on the same instants.",
        "Python reference: the same models and bar files; its latency is compute only (no IPC), so it is compared with our in-process 20-twin bar close.",
    ];
    let result = json!({
        "command": cmd.join(" "),
        "machine": machine(),
        "date": date,
        "seconds": round3(started.elapsed().as_secs_f64()),
        "scale": scale,
        "e2e": e2e,
        "python": python,
        "criterion": criterion,
        "ratios": ratios,
        "notes": notes,
    });
    let md = markdown(&result);
    std::fs::write(
        args.out.join("bench.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    std::fs::write(args.out.join("bench.md"), &md)?;
    println!("{md}");
    println!(
        "wrote {} and {}",
        args.out.join("bench.json").display(),
        args.out.join("bench.md").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentiles(&mut v), Some((50.0, 99.0, 100.0)));
        assert_eq!(percentiles(&mut []), None);
    }

    #[test]
    fn slope_of_a_line() {
        let xs = [0.0, 1.0, 2.0, 3.0];
        let ys = [1.0, 3.0, 5.0, 7.0];
        assert!((slope(&xs, &ys).expect("slope") - 2.0).abs() < 1e-12);
    }

    #[test]
    fn coid_gives_model_and_bar() {
        assert_eq!(
            coid_bar("ot-EURUSD-H1-978307200-O"),
            Some(("EURUSD_H1".to_string(), 978_307_200))
        );
        assert_eq!(coid_bar("nonsense"), None);
    }

    #[test]
    fn log_lines_are_read() {
        let mut f = LogFacts::default();
        log_line(
            &mut f,
            r#"{"timestamp":"2001-01-01T00:00:00.100000Z","level":"INFO","fields":{"event":"bar","line":"BAR|EURUSD|H1|2001-01-01T00:00:00Z|1|1|1|1|1|SEQ:1"}}"#,
        );
        log_line(
            &mut f,
            r#"{"timestamp":"2001-01-01T00:00:00.101500Z","level":"INFO","fields":{"event":"order_sent","coid":"ot-EURUSD-H1-978307200-O"}}"#,
        );
        let k = ("EURUSD_H1".to_string(), 978_307_200);
        assert!((f.bar_out[&k] - 978_307_200.1).abs() < 1e-6);
        assert_eq!(f.orders.len(), 1);
        assert!(((f.orders[0].1 - f.bar_out[&k]) * 1000.0 - 1.5).abs() < 1e-3);
    }
}
