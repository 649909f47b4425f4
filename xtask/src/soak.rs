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
//!    The market runs on the simulator's realistic calendar (`--calendar realistic`: FX Sunday
//!    22:00 – Friday 22:00 UTC, indices and stocks on New York hours, Christmas, the Saturday
//!    06:00–08:00 UTC maintenance window): the bundled bars are shifted by whole weeks
//!    ([`oracle_procs::market`]'s `week_start`), so every bar keeps its weekday and hour and
//!    the span starts at `--week-start` (Friday 14:00 UTC: a 2-hour span in trading hours, a
//!    72-hour one across the weekend and its maintenance window), the first such instant at or
//!    after the run, whatever day it is made on. `--always-open`: the old market, shifted to
//!    start at the present and open around the clock.
//!
//! Prints both blocks, saying which figure came from which, writes `OUT/soak.json` (`--json`:
//! prints it too) and exits non-zero when an assertion fails. A real span that placed no order
//! at the broker fails (its "no duplicate orders" would hold vacuously) unless `--allow-no-orders`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::chaos::{self, journal_orders, kill_points};
use crate::run::{self, Bins, LiveSystem};
use oracle_procs::files;
use oracle_procs::market;
use oracle_procs::supervisor;

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
    /// Where in the UTC week the real span starts (`DAY HH:MM`), on the realistic calendar.
    #[arg(long, default_value = "Fri 14:00", value_parser = parse_week_start)]
    pub week_start: i64,
    /// The real span on a market open around the clock, starting at the present (no calendar).
    #[arg(long)]
    pub always_open: bool,
    /// Pass a real span that placed no order (one meant to trade nothing, e.g. a short span of
    /// models that only hold); without it, no order at the broker fails the soak: its "no
    /// duplicate orders" would hold vacuously.
    #[arg(long)]
    pub allow_no_orders: bool,
}

fn parse_week_start(s: &str) -> Result<i64, String> {
    market::parse_week_position(s).map_err(|e| format!("--week-start: {e}"))
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
    /// Market time the span started at (ISO-8601).
    pub start: String,
    /// The simulator's calendar (`realistic` or `always-open`).
    pub calendar: String,
    /// `--allow-no-orders`: a span with no order at the broker passes.
    pub allow_no_orders: bool,
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
                self.broker_orders.0 > 0 || self.allow_no_orders,
                "no order at the broker (\"duplicates 0\" would hold vacuously; every entry \
                 refused? e.g. MARKET_CLOSED: see the executor's log; --allow-no-orders to \
                 pass a span meant to trade nothing)",
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
            "{} models, {} h of market from {} ({} calendar) at {} in {:.0} s\n  live bars {} (missed {}), trace rows = oracle replay: {}/{}{}\n  orders at the broker {} for {} ids (duplicates {}), journal intents {} (duplicates {})\n  token rotations survived {} (lifetime {} s), connection drops {} of {}, kill -9s predictor {} executor {}, restarts needing a person {}\n  RSS (per process incarnation) executor {:.1} -> {:.1} MB, predictor {:.1} -> {:.1} MB (first live bar -> end)",
            self.models,
            self.hours,
            self.start,
            self.calendar,
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
               "market_hours": self.hours, "start": self.start, "calendar": self.calendar,
               "speed": self.speed, "seconds": self.seconds,
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

fn real_span(args: &SoakArgs, bins: &Bins) -> anyhow::Result<RealSpan> {
    let m = chaos::live_market(
        &args.models,
        &args.data,
        &args.out.join("sim-input"),
        args.hours,
        args.max_models,
        (!args.always_open).then_some(args.week_start),
    )?;
    let dir = args.out.join("real");
    files::fresh_dir(&dir)?;
    let speed = chaos::live_speed(&m, &args.speed);
    let counted = chaos::counted_bars(&m);
    let total: usize = counted.values().map(Vec::len).sum();
    let calendar = if m.realistic {
        "realistic"
    } else {
        "always-open"
    };
    println!(
        "real span: {} models, {} h of market from {} ({calendar} calendar) at {speed}, {total} live bars; token lifetime {} s, {} drops, kill -9s: predictor {}, executor {}",
        m.models.len(),
        args.hours,
        m.start,
        args.token_every_s,
        args.resets,
        args.predictor_kills,
        args.executor_kills
    );
    let sim_args: Vec<String> = [
        "--seed".to_string(),
        args.seed.to_string(),
        "--token-expires-in".to_string(),
        args.token_every_s.to_string(),
        "--token-ttl".to_string(),
        args.token_every_s.to_string(),
        "--fault".to_string(),
        format!("drop:random={},times={}", args.drop_p, args.resets),
    ]
    .into();
    let (sys, mut sim) = LiveSystem::start(bins, &m, &dir, &speed, &sim_args, &[], &[])?;
    let t0 = Instant::now();
    let mut ex = sys.executor()?;
    let mut pr = sys.predictor()?;
    sys.go()?;
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
        start: m.start.clone(),
        calendar: calendar.to_string(),
        allow_no_orders: args.allow_no_orders,
        ..Default::default()
    };
    let deadline = t0 + Duration::from_secs(args.timeout_s);
    let trace = dir.join("trace");
    let progress = || -> usize {
        counted
            .iter()
            .map(|(n, bars)| {
                let seen = chaos::seen_times(&trace.join(format!("{n}.bars.csv")));
                bars.iter()
                    .filter(|t| seen.contains(&oracle_model::format_time(**t)))
                    .count()
            })
            .sum()
    };
    let mut next = 0;
    let mut last_restart = Instant::now();
    loop {
        let done = chaos::traces_reached(&counted, &dir);
        if done && next >= points.len() && last_restart.elapsed() > Duration::from_secs(3) {
            break;
        }
        let p = progress();
        if r.rss_start == (0, 0) && p > 0 {
            r.rss_start = (run::rss_kb(&ex), run::rss_kb(&pr));
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
    std::thread::sleep(chaos::confirmations(m.models.len()));
    r.rss_end = (run::rss_kb(&ex), run::rss_kb(&pr));
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
    let f = chaos::live_figures(&m.models_dir, &counted, &dir);
    (r.live_bars, r.missed, r.rows, r.rows_equal) = (f.live_bars, f.missed, f.rows, f.rows_equal);
    r.differ = f.differ;
    Ok(r)
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
            broker_orders: (5, 5, 0),
            journal_orders: (6, 5, 0),
            ..Default::default()
        }
    }

    #[test]
    fn a_real_span_that_placed_no_order_fails_saying_so_unless_allowed() {
        let none = RealSpan {
            broker_orders: (0, 0, 0),
            journal_orders: (0, 0, 0),
            ..good()
        };
        let e = none.failure().expect("no order fails");
        assert!(
            e.contains("no order at the broker") && e.contains("--allow-no-orders"),
            "{e}"
        );
        assert_eq!(none.json()["ok"].as_bool(), Some(false));
        // Journal intents the broker never got are no orders either.
        let intents_only = RealSpan {
            broker_orders: (0, 0, 0),
            ..good()
        };
        assert!(intents_only.failure().is_some());
        // The flag passes a span meant to trade nothing; the other checks still stand.
        let allowed = RealSpan {
            allow_no_orders: true,
            ..none
        };
        assert_eq!(allowed.failure(), None);
        let e = RealSpan {
            missed: 1,
            ..allowed
        }
        .failure();
        assert_eq!(e.as_deref(), Some("missed bars"));
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            soak: SoakArgs,
        }
        assert!(
            !Cli::try_parse_from(["soak"])
                .expect("defaults")
                .soak
                .allow_no_orders
        );
        let a = Cli::try_parse_from(["soak", "--allow-no-orders"]).expect("flag");
        assert!(a.soak.allow_no_orders);
    }

    #[test]
    fn the_week_start_flag_parses_and_a_bad_one_names_the_flag() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            soak: SoakArgs,
        }
        let a = Cli::try_parse_from(["soak"]).expect("defaults").soak;
        assert_eq!(a.week_start, 4 * 86_400 + 14 * 3600, "Friday 14:00 UTC");
        assert!(!a.always_open);
        let a = Cli::try_parse_from(["soak", "--week-start", "Sun 22:00"]).expect("sunday");
        assert_eq!(a.soak.week_start, 6 * 86_400 + 22 * 3600);
        let e = Cli::try_parse_from(["soak", "--week-start", "Fry 14:00"])
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("--week-start") && e.contains("Fry 14:00"), "{e}");
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
