//! `oracle-dev soak`: the 30-day soak (issue 17 item 7), in two blocks of figures.
//!
//! 1. **DST soak** (`oracle_dst::soak`): `--dst-days` market days (30) on the deterministic
//!    simulation's virtual clock, in seconds: the realistic calendar (weekends, Christmas and one
//!    more holiday, the weekly Saturday maintenance window and two more in trading hours), the
//!    token expiring every 7 market days, exactly 10 connection drops, 3 predictor kills.
//! 2. **Real processes over TLS**: `oracle sim` + `oracle executor --broker` (live, paper book
//!    beside it) + `oracle predictor` on up to 20 models, `--hours` of market time at the speed
//!    the broker's 5 history requests a second allow (`auto`, see [`crate::chaos::auto_speed`]),
//!    the token expiring every `--token-every-s` wall seconds (every refreshed one too:
//!    `--token-expires-in` and `--token-ttl`), `--resets` connection drops at seeded points
//!    (`drop:random`, the simulator's `--seed`), and `--predictor-kills` / `--executor-kills`
//!    kill -9s at seeded points of progress, each process restarted at once from its state
//!    folder. RSS (`VmRSS`) of the executor and the predictor at the first live bar and at the
//!    end: each figure is of the process incarnation alive then (a restart starts afresh).
//!    The simulator here is open around the clock: the bundled bars are shifted to start at
//!    the wall clock's present, so the realistic calendar's weekends would depend on the day
//!    the command runs (the DST block covers the calendar).
//!
//! Prints both blocks, saying which figure came from which, writes `OUT/soak.json` (`--json`:
//! prints it too) and exits non-zero when an assertion fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::chaos::{self, auto_speed, journal_orders, kill_points};
use crate::run::{self, Bins, RUN_TOKEN};
use oracle_procs::files;
use oracle_procs::market::{self, MarketSpec};
use oracle_procs::supervisor::{self, Output, Proc, free_port, wait_port};

/// `oracle-dev soak` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// Models folder.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Bar files folder.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Output folder (soak.json, the real run's folder).
    #[arg(long, default_value = "out/soak")]
    pub out: PathBuf,
    /// Seed of every seeded point (DST plan, drops, kills).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Market days of the DST soak (0: skip it).
    #[arg(long, default_value_t = 30)]
    pub dst_days: u32,
    /// Hours of market time of the real-process span (0: skip it).
    #[arg(long, default_value_t = 6)]
    pub hours: u64,
    /// Models of the real-process span, at most.
    #[arg(long, default_value_t = 20)]
    pub max_models: usize,
    /// The simulator's speed (`<N>x`) or `auto` (the history budget's).
    #[arg(long, default_value = "auto")]
    pub speed: String,
    /// Connection drops of the real span (`drop:random`, at most this many).
    #[arg(long, default_value_t = 10)]
    pub resets: u64,
    /// Probability per server frame of a drop (until `--resets` happened).
    #[arg(long, default_value_t = 0.01)]
    pub drop_p: f64,
    /// kill -9s of the predictor in the real span.
    #[arg(long, default_value_t = 3)]
    pub predictor_kills: usize,
    /// kill -9s of the executor in the real span.
    #[arg(long, default_value_t = 3)]
    pub executor_kills: usize,
    /// Lifetime of every access token in the real span, wall seconds.
    #[arg(long, default_value_t = 40)]
    pub token_every_s: i64,
    /// Print soak.json's content.
    #[arg(long)]
    pub json: bool,
    /// Folder of the system's binaries (default: $ORACLE_BIN_DIR, else beside this one).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Give up on the real span after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout_s: u64,
}

/// `oracle-dev soak`.
pub fn run_soak(args: &SoakArgs) -> ExitCode {
    match soak(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn soak(args: &SoakArgs) -> anyhow::Result<bool> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("output folder {}", args.out.display()))?;
    let mut ok = true;
    let mut doc = json!({"seed": args.seed});
    if args.dst_days > 0 {
        let t = Instant::now();
        match oracle_dst::soak::run_soak(args.seed, args.dst_days) {
            Ok(s) => {
                let secs = t.elapsed().as_secs_f64();
                println!("[DST, virtual clock] {}\n  ({secs:.1} s)", s.text());
                let check = s.check(args.dst_days);
                if let Err(e) = &check {
                    println!("  FAILED: {e}");
                    ok = false;
                }
                doc["dst"] = dst_json(&s, secs, check.is_ok());
            }
            Err(f) => {
                println!("[DST, virtual clock] FAILED: {f}");
                doc["dst"] = json!({"ok": false, "failure": f.to_string()});
                ok = false;
            }
        }
    }
    if args.hours > 0 {
        let bins = Bins::locate(args.bin_dir.as_deref())?;
        let r = real_span(args, &bins)?;
        println!("[real processes, TLS, wall clock] {}", r.text());
        if let Some(e) = r.failure() {
            println!("  FAILED: {e}");
            ok = false;
        }
        doc["real"] = r.json();
    }
    doc["ok"] = json!(ok);
    let path = args.out.join("soak.json");
    files::write_file(&path, &format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    println!(
        "soak: {} (figures in {})",
        if ok { "ok" } else { "FAILED" },
        path.display()
    );
    Ok(ok)
}

fn dst_json(s: &oracle_dst::soak::SoakSummary, secs: f64, ok: bool) -> Value {
    json!({"clock": "virtual (deterministic simulation)", "seconds": secs, "ok": ok,
           "models": s.models, "start": s.start, "end": s.end, "market_days": s.market_days,
           "closed_days": s.closed_days, "holiday": s.holiday,
           "saturday_maintenance_windows": s.saturday_maintenance,
           "maintenance_windows_in_trading_hours": s.maintenance_windows,
           "live_bars": s.bars, "missed_bars": s.missed_bars, "orders": s.orders,
           "duplicate_orders": s.duplicate_orders, "token_rotations": s.token_rotations,
           "connection_drops": s.resets, "server_closes": s.server_closes,
           "predictor_kills": s.predictor_kills, "executor_kills": s.executor_kills,
           "restarts_needing_a_person": s.restarts_needing_a_person,
           "trace_rows_equal_replay": s.trace_rows_equal_replay})
}

/// The real-process span's figures.
#[derive(Debug, Default)]
pub struct RealSpan {
    /// Models.
    pub models: usize,
    /// Market hours, speed.
    pub hours: u64,
    /// The simulator's speed.
    pub speed: String,
    /// Wall seconds.
    pub seconds: f64,
    /// Live bars the simulator closed for the models, and those never seen by the predictor.
    pub live_bars: usize,
    /// Of those, missed.
    pub missed: usize,
    /// Trace rows and rows equal to `oracle replay`'s; models whose trace differs.
    pub rows: usize,
    /// Rows equal.
    pub rows_equal: usize,
    /// Models whose trace differs.
    pub differ: Vec<String>,
    /// `NewOrderReq`s at the broker, distinct ids, duplicates.
    pub broker_orders: (usize, usize, usize),
    /// Journal intents, distinct ids, duplicates.
    pub journal_orders: (usize, usize, usize),
    /// Drops the simulator made (its timing file).
    pub resets: usize,
    /// Token refreshes the simulator granted.
    pub rotations: usize,
    /// Token lifetime, wall seconds.
    pub token_every_s: i64,
    /// Kills done: predictor, executor.
    pub kills: (usize, usize),
    /// Kills asked.
    pub kills_asked: (usize, usize),
    /// Processes that stopped on their own (a restart a person would have to make).
    pub needing_a_person: usize,
    /// VmRSS kB (executor, predictor) at the first live bar and at the end.
    pub rss_start: (u64, u64),
    /// At the end.
    pub rss_end: (u64, u64),
    /// Resets asked.
    pub resets_asked: u64,
}

impl RealSpan {
    /// The first assertion that fails.
    pub fn failure(&self) -> Option<String> {
        let checks = [
            (self.live_bars > 0 && self.rows > 0, "no live bar traced"),
            (self.missed == 0, "missed bars"),
            (
                self.rows_equal == self.rows && self.differ.is_empty(),
                "traces differ from oracle replay",
            ),
            (
                self.broker_orders.2 == 0 && self.journal_orders.2 == 0,
                "duplicate orders",
            ),
            (self.resets as u64 == self.resets_asked, "connection drops"),
            (self.rotations > 0, "no token rotation"),
            (self.kills == self.kills_asked, "kills"),
            (self.needing_a_person == 0, "restarts needing a person"),
        ];
        checks.iter().find(|c| !c.0).map(|c| c.1.to_string())
    }

    /// The printed block.
    pub fn text(&self) -> String {
        let mb = |kb: u64| kb as f64 / 1024.0;
        format!(
            "{} models, {} h of market at {} in {:.0} s\n  live bars {} (missed {}), trace rows = oracle replay: {}/{}{}\n  orders at the broker {} for {} ids (duplicates {}), journal intents {} (duplicates {})\n  token rotations survived {} (lifetime {} s), connection drops {} of {}, kill -9s predictor {} executor {}, restarts needing a person {}\n  RSS (per process incarnation) executor {:.1} -> {:.1} MB, predictor {:.1} -> {:.1} MB (first live bar -> end)",
            self.models,
            self.hours,
            self.speed,
            self.seconds,
            self.live_bars,
            self.missed,
            self.rows_equal,
            self.rows,
            if self.differ.is_empty() {
                String::new()
            } else {
                format!(" (differ: {})", self.differ.join(", "))
            },
            self.broker_orders.0,
            self.broker_orders.1,
            self.broker_orders.2,
            self.journal_orders.0,
            self.journal_orders.2,
            self.rotations,
            self.token_every_s,
            self.resets,
            self.resets_asked,
            self.kills.0,
            self.kills.1,
            self.needing_a_person,
            mb(self.rss_start.0),
            mb(self.rss_end.0),
            mb(self.rss_start.1),
            mb(self.rss_end.1),
        )
    }

    /// soak.json's section.
    pub fn json(&self) -> Value {
        json!({"clock": "wall (real processes over TLS)", "models": self.models,
               "market_hours": self.hours, "speed": self.speed, "seconds": self.seconds,
               "live_bars": self.live_bars, "missed_bars": self.missed,
               "trace_rows": self.rows, "trace_rows_equal_replay": self.rows_equal,
               "differ": self.differ, "broker_orders": self.broker_orders.0,
               "duplicate_orders": self.broker_orders.2,
               "journal_duplicate_intents": self.journal_orders.2,
               "token_rotations": self.rotations, "token_lifetime_s": self.token_every_s,
               "connection_drops": self.resets, "predictor_kills": self.kills.0,
               "executor_kills": self.kills.1, "restarts_needing_a_person": self.needing_a_person,
               "rss_kb_per_incarnation": {"executor": [self.rss_start.0, self.rss_end.0],
                                          "predictor": [self.rss_start.1, self.rss_end.1]},
               "ok": self.failure().is_none()})
    }
}

/// What restarts a process: the simulator's, the executor's and the predictor's commands.
struct System<'a> {
    bins: &'a Bins,
    m: &'a market::Market,
    dir: &'a Path,
    sim_port: u16,
    ipc_port: u16,
    envs: Vec<(String, String)>,
    account: String,
}

impl System<'_> {
    fn executor(&self) -> anyhow::Result<Proc> {
        let mut c = self.bins.command("executor");
        c.arg("--config")
            .arg(&self.m.executor_config)
            .arg("--models")
            .arg(&self.m.models_dir)
            .arg("--state")
            .arg(self.dir.join("executor"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.ipc_port))
            .arg("--broker")
            .arg(format!("127.0.0.1:{}", self.sim_port))
            .arg("--account-id")
            .arg(&self.account)
            .arg("--ca")
            .arg(self.dir.join("sim-ca.pem"))
            .arg("--with-paper")
            .arg("--json")
            .env("ORACLE_IPC_TOKEN", RUN_TOKEN)
            .env("RUST_LOG", "info");
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        let mut ex = Proc::spawn("executor", c, &self.dir.join("executor.log"), Output::Log)?;
        wait_port(&mut ex, self.ipc_port, Duration::from_secs(30))?;
        Ok(ex)
    }

    fn predictor(&self) -> anyhow::Result<Proc> {
        run::spawn_predictor(
            self.bins,
            &self.m.models_dir,
            &self.dir.join("state"),
            &self.dir.join("trace"),
            self.ipc_port,
            &self.dir.join("predictor.log"),
        )
    }
}

fn real_span(args: &SoakArgs, bins: &Bins) -> anyhow::Result<RealSpan> {
    let input = args.out.join("sim-input");
    files::fresh_dir(&input)?;
    let spec = MarketSpec {
        history: 400,
        hours: args.hours,
        max_models: args.max_models,
        copy_models: true,
        risk: Some(
            json!({"stale_after_secs": 315_360_000, "daily_loss_pct": 100.0, "max_drawdown_pct": 100.0}),
        ),
    };
    let m = market::prepare(&args.models, &args.data, &input, &spec)?;
    let dir = args.out.join("real");
    files::fresh_dir(&dir)?;
    let tfs = || m.models.values().map(|(_, tf)| tf.as_str());
    let speed = if args.speed == "auto" {
        format!("{}x", auto_speed(tfs()))
    } else {
        args.speed.clone()
    };
    let counted: BTreeMap<String, Vec<i64>> = m
        .live_bars
        .iter()
        .map(|(n, bars)| {
            let k = m.expected.get(n).map_or(0, |&k| k as usize).min(bars.len());
            (n.clone(), bars[..k].to_vec())
        })
        .collect();
    let total: usize = counted.values().map(Vec::len).sum();
    let last: BTreeMap<String, String> = counted
        .iter()
        .filter_map(|(n, b)| b.last().map(|t| (n.clone(), oracle_model::format_time(*t))))
        .collect();
    println!(
        "real span: {} models, {} h of market at {speed}, {total} live bars; token lifetime {} s, {} drops, kill -9s: predictor {}, executor {}",
        m.models.len(),
        args.hours,
        args.token_every_s,
        args.resets,
        args.predictor_kills,
        args.executor_kills
    );
    // The simulator.
    let sim_port = free_port()?;
    let ipc_port = free_port()?;
    let ca = dir.join("sim-ca.pem");
    let creds = dir.join("sim-credentials.env");
    let start = dir.join("start");
    let mut c = bins.command("sim");
    c.arg("--listen")
        .arg(format!("127.0.0.1:{sim_port}"))
        .arg("--data")
        .arg(&m.data)
        .arg("--models")
        .arg(&m.models_dir)
        .arg("--start")
        .arg(&m.start)
        .arg("--speed")
        .arg(&speed)
        .arg("--seed")
        .arg(args.seed.to_string())
        .arg("--token-expires-in")
        .arg(args.token_every_s.to_string())
        .arg("--token-ttl")
        .arg(args.token_every_s.to_string())
        .arg("--fault")
        .arg(format!("drop:random={},times={}", args.drop_p, args.resets))
        .arg("--cert-out")
        .arg(&ca)
        .arg("--credentials-out")
        .arg(&creds)
        .arg("--start-file")
        .arg(&start)
        .arg("--timing-out")
        .arg(dir.join("sim-timing.jsonl"))
        .arg("--json");
    let mut sim = Proc::spawn("sim", c, &dir.join("sim.log"), Output::Log)?;
    wait_port(&mut sim, sim_port, Duration::from_secs(30))?;
    let until = Instant::now() + Duration::from_secs(10);
    while !(ca.is_file() && creds.is_file()) {
        if Instant::now() > until {
            bail!(
                "the simulator wrote no {} / {}",
                ca.display(),
                creds.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let envs = oracle_procs::files::read_env_file(&creds);
    let account = envs
        .iter()
        .find(|(k, _)| k == "ORACLE_CTRADER_ACCOUNT_ID")
        .map(|(_, v)| v.clone())
        .with_context(|| format!("{}: no ORACLE_CTRADER_ACCOUNT_ID", creds.display()))?;
    let sys = System {
        bins,
        m: &m,
        dir: &dir,
        sim_port,
        ipc_port,
        envs,
        account,
    };
    let t0 = Instant::now();
    let mut ex = sys.executor()?;
    let mut pr = sys.predictor()?;
    std::fs::write(&start, b"go\n")?;
    // Seeded kill points over the live bars traced, the two processes' apart.
    let mut points: Vec<(usize, bool)> = kill_points(args.seed, args.predictor_kills, total)
        .into_iter()
        .map(|p| (p, false))
        .chain(
            kill_points(args.seed ^ 0xe8ec, args.executor_kills, total)
                .into_iter()
                .map(|p| (p, true)),
        )
        .collect();
    points.sort_unstable();
    let mut r = RealSpan {
        models: m.models.len(),
        hours: args.hours,
        speed: speed.clone(),
        token_every_s: args.token_every_s,
        kills_asked: (args.predictor_kills, args.executor_kills),
        resets_asked: args.resets,
        ..Default::default()
    };
    let deadline = t0 + Duration::from_secs(args.timeout_s);
    let trace = dir.join("trace");
    let progress = || -> usize {
        counted
            .iter()
            .map(|(n, bars)| {
                let seen = seen_times(&trace.join(format!("{n}.bars.csv")));
                bars.iter()
                    .filter(|t| seen.contains(&oracle_model::format_time(**t)))
                    .count()
            })
            .sum()
    };
    let mut next = 0;
    let mut last_restart = Instant::now();
    loop {
        let done = last.iter().all(|(n, t)| {
            let row = chaos::last_line(&trace.join(format!("{n}.csv")));
            row.starts_with(|c: char| c.is_ascii_digit())
                && row.split(',').next() >= Some(t.as_str())
        });
        if done && next >= points.len() && last_restart.elapsed() > Duration::from_secs(3) {
            break;
        }
        let p = progress();
        if r.rss_start == (0, 0) && p > 0 {
            r.rss_start = (rss(&ex), rss(&pr));
        }
        if next < points.len() && (p >= points[next].0 || done) {
            if points[next].1 {
                ex.kill9();
                ex = sys.executor()?;
                r.kills.1 += 1;
            } else {
                pr.kill9();
                pr = sys.predictor()?;
                r.kills.0 += 1;
            }
            next += 1;
            last_restart = Instant::now();
            continue;
        }
        if let Err(e) = supervisor::all_alive(&mut [&mut sim, &mut ex, &mut pr]) {
            r.needing_a_person += 1;
            pr.stop(Duration::from_secs(3));
            ex.stop(Duration::from_secs(3));
            sim.stop(Duration::from_secs(3));
            bail!("{e:#} (logs in {})", dir.display());
        }
        if Instant::now() > deadline {
            pr.stop(Duration::from_secs(3));
            ex.stop(Duration::from_secs(3));
            sim.stop(Duration::from_secs(3));
            bail!(
                "the real span timed out after {} s at {p} of {total} live bars; logs in {}",
                args.timeout_s,
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The last bars' history confirmations (and revisions) before counting.
    std::thread::sleep(Duration::from_millis(3000 + 200 * m.models.len() as u64));
    r.rss_end = (rss(&ex), rss(&pr));
    pr.stop(Duration::from_secs(3));
    ex.stop(Duration::from_secs(3));
    sim.stop(Duration::from_secs(3));
    r.seconds = t0.elapsed().as_secs_f64();
    if let Some((orders, drops)) = chaos::sim_timing(&dir.join("sim-timing.jsonl")) {
        r.broker_orders = orders;
        r.resets = drops;
    }
    r.journal_orders = journal_orders(&dir.join("executor/journal.jsonl"));
    r.rotations = std::fs::read_to_string(dir.join("sim.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("tokens refreshed"))
        .count();
    for (name, bars) in &counted {
        let (rows, eq, differ) = chaos::trace_vs_replay(&m.models_dir, name, &dir);
        r.rows += rows;
        r.rows_equal += eq;
        if let Some(d) = differ {
            r.differ.push(format!("{name}: {d}"));
        }
        let seen = seen_times(&trace.join(format!("{name}.bars.csv")));
        r.live_bars += bars.len();
        r.missed += bars
            .iter()
            .filter(|t| !seen.contains(&oracle_model::format_time(**t)))
            .count();
    }
    Ok(r)
}

/// VmRSS of a running process, kB (0 when gone).
fn rss(p: &Proc) -> u64 {
    p.pid().and_then(run::mem_kb).map_or(0, |(rss, _)| rss)
}

fn seen_times(path: &Path) -> std::collections::HashSet<String> {
    chaos::seen_times(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> RealSpan {
        RealSpan {
            models: 20,
            live_bars: 100,
            rows: 500,
            rows_equal: 500,
            resets: 10,
            resets_asked: 10,
            rotations: 3,
            kills: (3, 3),
            kills_asked: (3, 3),
            ..Default::default()
        }
    }

    #[test]
    fn a_real_span_with_every_figure_right_passes_and_one_off_is_named() {
        assert_eq!(good().failure(), None);
        let cases: [(RealSpan, &str); 6] = [
            (
                RealSpan {
                    missed: 1,
                    ..good()
                },
                "missed bars",
            ),
            (
                RealSpan {
                    broker_orders: (3, 2, 1),
                    ..good()
                },
                "duplicate orders",
            ),
            (
                RealSpan {
                    rows_equal: 499,
                    ..good()
                },
                "oracle replay",
            ),
            (
                RealSpan {
                    resets: 9,
                    ..good()
                },
                "connection drops",
            ),
            (
                RealSpan {
                    kills: (3, 2),
                    ..good()
                },
                "kills",
            ),
            (
                RealSpan {
                    rotations: 0,
                    ..good()
                },
                "token rotation",
            ),
        ];
        for (bad, what) in cases {
            let e = bad.failure().expect(what);
            assert!(e.starts_with(what) || e.contains(what), "{e}");
        }
        assert!(good().json()["ok"].as_bool() == Some(true));
    }
}
