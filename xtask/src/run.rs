//! The bench and chaos runs' processes and inputs: where the system's binaries are, the
//! executor, predictor and simulator started under the one supervisor
//! ([`oracle_procs::supervisor`]), their memory sampled from `/proc`, and the run's inputs (bar
//! files cut and re-stamped onto one grid, an executor configuration).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use oracle_core::{Symbol, Timeframe};
use oracle_procs::files::read_env_file;
use oracle_procs::supervisor::{Output, Proc, free_port, wait_port};

/// Where the system's binaries are: `oracle SUB` when the `oracle` binary is there, else the
/// per-crate binaries `oracle-sim`, `oracle-executor`, `oracle-predictor`.
#[derive(Clone, Debug)]
pub struct Bins {
    /// The folder holding them.
    pub dir: PathBuf,
    /// Use `oracle SUB` (true) or `oracle-SUB` (false).
    pub oracle: bool,
}

impl Bins {
    /// `dir` if given, else `$ORACLE_BIN_DIR`, else the folder of the running executable.
    pub fn locate(dir: Option<&Path>) -> anyhow::Result<Self> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => match std::env::var_os("ORACLE_BIN_DIR") {
                Some(d) => PathBuf::from(d),
                None => std::env::current_exe()?
                    .parent()
                    .context("executable has no folder")?
                    .to_path_buf(),
            },
        };
        // The per-crate binaries when both are there (what scripts/bench and scripts/chaos
        // build), else `oracle <subcommand>`.
        let split = ["oracle-executor", "oracle-predictor"]
            .iter()
            .all(|b| dir.join(b).is_file());
        if split {
            return Ok(Self { dir, oracle: false });
        }
        if dir.join("oracle").is_file() {
            return Ok(Self { dir, oracle: true });
        }
        bail!(
            "no oracle-executor/oracle-predictor (or oracle) binary in {}: build them (cargo build --release -p oracle-executor -p oracle-predictor) or pass --bin-dir / ORACLE_BIN_DIR",
            dir.display()
        )
    }

    /// The command for subcommand `sub` (`executor`, `predictor`, `sim`).
    pub fn command(&self, sub: &str) -> Command {
        if self.oracle {
            let mut c = Command::new(self.dir.join("oracle"));
            c.arg(sub);
            c
        } else {
            Command::new(self.dir.join(format!("oracle-{sub}")))
        }
    }

    /// Whether the binary for subcommand `sub` is there (`oracle`, or `oracle-SUB`).
    pub fn has(&self, sub: &str) -> bool {
        if self.oracle {
            self.dir.join("oracle").is_file()
        } else {
            self.dir.join(format!("oracle-{sub}")).is_file()
        }
    }
}

/// `VmRSS` and `VmHWM` of a process, kB.
pub fn mem_kb(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// This process's `VmHWM`, kB.
pub fn self_hwm_kb() -> Option<u64> {
    mem_kb(std::process::id()).map(|(_, h)| h)
}

/// One model of a prepared run.
#[derive(Clone, Debug)]
pub struct Stream {
    /// `SYM_TF` (the zip's stem).
    pub name: String,
    /// Symbol (metadata `symbol.name`, the system's one symbol identity).
    pub symbol: Symbol,
    /// Timeframe (metadata `symbol.timeframe`).
    pub tf: Timeframe,
    /// The cut, re-stamped bar file fed to the executor.
    pub csv: PathBuf,
    /// Bars in it (history + live).
    pub bars: usize,
}

/// The inputs of a pipeline run.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The models folder (only the models that have a bar file).
    pub models: PathBuf,
    /// The streams.
    pub streams: Vec<Stream>,
    /// `executor_config.json` (every symbol enabled, the model's lots, a wide stale limit).
    pub config: PathBuf,
    /// Live bars per stream (after the 350 history bars the executor serves).
    pub live: usize,
}

/// History bars the executor's paper feed serves before its replay (its `--feed-csv` rule).
pub const FEED_HISTORY: usize = 350;

/// The grid every prepared bar file is re-stamped onto: one bar a week from 2001-01-01 (a
/// Monday). The twins see only the order of bars, never the calendar, so re-stamping changes no
/// decision; it makes every stream close on the same instants (20 symbols on the same bar), and
/// one week is a legal gap for every timeframe.
pub const GRID_START: i64 = 978_307_200;
/// Grid step, seconds.
pub const GRID_STEP: i64 = 7 * 86_400;

/// Cuts the last `live + 350` bars of `data/NAME.csv` for every model in `models` (at most
/// `max_models`), re-stamps them onto the common grid, copies the zips into `run/models`, and
/// writes an executor configuration enabling every symbol.
pub fn prepare(
    models: &Path,
    data: &Path,
    run: &Path,
    live: usize,
    max_models: usize,
) -> anyhow::Result<Prepared> {
    let mdir = run.join("models");
    let ddir = run.join("data");
    std::fs::create_dir_all(&mdir)?;
    std::fs::create_dir_all(&ddir)?;
    let mut zips: Vec<PathBuf> = std::fs::read_dir(models)
        .with_context(|| format!("models folder {}", models.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    zips.sort();
    let mut streams = Vec::new();
    let mut lots: BTreeMap<Symbol, [f64; 4]> = BTreeMap::new();
    for z in zips {
        if streams.len() >= max_models {
            break;
        }
        let Ok(m) = oracle_model::load_model(&z) else {
            continue;
        };
        let src = data.join(format!("{}.csv", m.name));
        let Ok(text) = std::fs::read_to_string(&src) else {
            continue;
        };
        let rows: Vec<&str> = text.lines().skip(1).filter(|l| !l.is_empty()).collect();
        let want = live + FEED_HISTORY;
        if rows.len() < want {
            bail!(
                "{}: {} bars, the run needs {want} (350 history + {live} live); lower --bars",
                src.display(),
                rows.len()
            );
        }
        let mut out = String::from("time,open,high,low,close,volume\n");
        for (i, r) in rows[rows.len() - want..].iter().enumerate() {
            let rest = r.split_once(',').map_or("", |(_, x)| x);
            out.push_str(&oracle_model::format_time(
                GRID_START + GRID_STEP * i as i64,
            ));
            out.push(',');
            out.push_str(rest);
            out.push('\n');
        }
        let csv = ddir.join(format!("{}.csv", m.name));
        std::fs::write(&csv, out)?;
        std::fs::copy(&z, mdir.join(z.file_name().context("zip name")?))?;
        lots.entry(m.metadata.symbol)
            .or_insert(m.model.costs().lot_sizes);
        streams.push(Stream {
            name: m.name.clone(),
            symbol: m.metadata.symbol,
            tf: m.metadata.timeframe,
            csv,
            bars: want,
        });
    }
    if streams.is_empty() {
        bail!(
            "no model in {} has a bar file in {}",
            models.display(),
            data.display()
        );
    }
    let mut cfg = serde_json::Map::new();
    cfg.insert(
        "risk".into(),
        serde_json::json!({"stale_after_secs": 315_360_000, "daily_loss_pct": 100.0, "max_drawdown_pct": 100.0}),
    );
    for (sym, l) in &lots {
        cfg.insert(
            sym.to_string(),
            serde_json::json!({"enabled": true, "lot_weak": l[1], "lot_moderate": l[2], "lot_strong": l[3]}),
        );
    }
    let config = run.join("executor_config.json");
    std::fs::write(&config, serde_json::to_string_pretty(&cfg)?)?;
    Ok(Prepared {
        models: mdir,
        streams,
        config,
        live,
    })
}

/// The IPC token of runs started here (loopback only; never a real secret).
pub const RUN_TOKEN: &str = "oracle-dev-run-token-0123456789";

/// Starts the paper-mode executor on `prepared` (`--feed-csv` per stream).
pub fn spawn_executor(
    bins: &Bins,
    p: &Prepared,
    state: &Path,
    port: u16,
    feed_interval_ms: u64,
    log: &Path,
) -> anyhow::Result<Proc> {
    let mut c = bins.command("executor");
    c.arg("--paper")
        .arg("--config")
        .arg(&p.config)
        .arg("--models")
        .arg(&p.models)
        .arg("--state")
        .arg(state)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--feed-interval-ms")
        .arg(feed_interval_ms.to_string())
        // The replay starts once the predictor has its history: every run's traces start at
        // the same bar (a run is comparable row for row with another).
        .arg("--feed-wait-client")
        .arg("--json")
        .env("ORACLE_IPC_TOKEN", RUN_TOKEN)
        .env("RUST_LOG", "info");
    for s in &p.streams {
        c.arg("--feed-csv")
            .arg(format!("{}_{}={}", s.symbol, s.tf, s.csv.display()));
    }
    Proc::spawn("executor", c, log, Output::Log)
}

/// Starts the predictor on the models in `models`.
pub fn spawn_predictor(
    bins: &Bins,
    models: &Path,
    state: &Path,
    trace: &Path,
    port: u16,
    log: &Path,
    extra: &[String],
) -> anyhow::Result<Proc> {
    let mut c = bins.command("predictor");
    c.arg("--models")
        .arg(models)
        .arg("--state")
        .arg(state)
        .arg("--trace")
        .arg(trace)
        .arg("--ipc")
        .arg(format!("ws://127.0.0.1:{port}"))
        .arg("--json")
        .args(extra)
        .env("ORACLE_IPC_TOKEN", RUN_TOKEN);
    Proc::spawn("predictor", c, log, Output::Log)
}

/// A live system's processes as the runs over the simulator start (and restart) them: the
/// simulator, the executor (live broker over the simulator, paper book beside it) and the
/// predictor, on one market, in one folder. Used by the chaos proof (broker disconnects), the
/// bench (the simulator → executor leg) and the soak (which restarts the executor and the
/// predictor after its kill -9s).
///
/// In `dir`: the simulator's CA, credentials and timing file (`sim-timing.jsonl`, its
/// `--timing-out`), `sim.log`; the executor's state in `executor/` and `executor.log`; the
/// predictor's `state/`, `trace/`, `predictor.log`. The replay is held until [`Self::go`] (the
/// simulator's `--start-file`, `dir/start`).
pub struct LiveSystem {
    bins: Bins,
    dir: PathBuf,
    models: PathBuf,
    executor_config: PathBuf,
    sim_port: u16,
    ipc_port: u16,
    envs: Vec<(String, String)>,
    account: String,
    executor_args: Vec<String>,
    /// Arguments every process takes alike (`--keep-warm-ms N`).
    all_args: Vec<String>,
}

impl LiveSystem {
    /// Starts the simulator on `m` at `speed` (`--calendar realistic` when the market is
    /// shifted onto it, [`oracle_procs::market::Market::realistic`]) with `sim_args` added (faults,
    /// seed, token lifetimes), waits for its CA and credentials; `executor_args` go to every
    /// executor started, `all_args` to every process (the simulator, the executors, the
    /// predictors). Returns the system and the simulator's process.
    pub fn start(
        bins: &Bins,
        m: &oracle_procs::market::Market,
        dir: &Path,
        speed: &str,
        sim_args: &[String],
        executor_args: &[String],
        all_args: &[String],
    ) -> anyhow::Result<(Self, Proc)> {
        let sim_port = free_port()?;
        let ipc_port = free_port()?;
        let ca = dir.join("sim-ca.pem");
        let creds = dir.join("sim-credentials.env");
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
            .arg(speed)
            .arg("--cert-out")
            .arg(&ca)
            .arg("--credentials-out")
            .arg(&creds)
            .arg("--start-file")
            .arg(dir.join("start"))
            .arg("--timing-out")
            .arg(dir.join("sim-timing.jsonl"))
            .arg("--json")
            .args(sim_args)
            .args(all_args);
        if m.realistic {
            c.arg("--calendar").arg("realistic");
        }
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
        let envs = read_env_file(&creds);
        let account = envs
            .iter()
            .find(|(k, _)| k == "ORACLE_CTRADER_ACCOUNT_ID")
            .map(|(_, v)| v.clone())
            .with_context(|| format!("{}: no ORACLE_CTRADER_ACCOUNT_ID", creds.display()))?;
        let sys = Self {
            bins: bins.clone(),
            dir: dir.to_path_buf(),
            models: m.models_dir.clone(),
            executor_config: m.executor_config.clone(),
            sim_port,
            ipc_port,
            envs,
            account,
            executor_args: executor_args.to_vec(),
            all_args: all_args.to_vec(),
        };
        Ok((sys, sim))
    }

    /// Starts the executor (its state in `dir/executor`) and waits for its IPC port.
    pub fn executor(&self) -> anyhow::Result<Proc> {
        let mut c = self.bins.command("executor");
        c.arg("--config")
            .arg(&self.executor_config)
            .arg("--models")
            .arg(&self.models)
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
            .args(&self.executor_args)
            .args(&self.all_args)
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

    /// Starts the predictor (`dir/state`, `dir/trace`).
    pub fn predictor(&self) -> anyhow::Result<Proc> {
        spawn_predictor(
            &self.bins,
            &self.models,
            &self.dir.join("state"),
            &self.dir.join("trace"),
            self.ipc_port,
            &self.dir.join("predictor.log"),
            &self.all_args,
        )
    }

    /// Lets the simulator's replay start.
    pub fn go(&self) -> anyhow::Result<()> {
        std::fs::write(self.dir.join("start"), b"go\n")?;
        Ok(())
    }
}

/// Starts the simulator (with `--fault` each of `faults`), the live executor (with
/// `executor_args`) and the predictor on `m` in `dir`, `all_args` to all three (see
/// [`LiveSystem`]); returns them (sim,
/// executor, predictor) with the market started.
pub fn spawn_live_system(
    bins: &Bins,
    m: &oracle_procs::market::Market,
    dir: &Path,
    speed: &str,
    faults: &[String],
    executor_args: &[String],
    all_args: &[String],
) -> anyhow::Result<(Proc, Proc, Proc)> {
    let sim_args: Vec<String> = faults
        .iter()
        .flat_map(|f| ["--fault".to_string(), f.clone()])
        .collect();
    let (sys, sim) = LiveSystem::start(bins, m, dir, speed, &sim_args, executor_args, all_args)?;
    let ex = sys.executor()?;
    let pr = sys.predictor()?;
    sys.go()?;
    Ok((sim, ex, pr))
}

/// `VmRSS` of a running process, kB (0 when it is gone).
pub fn rss_kb(p: &Proc) -> u64 {
    p.pid().and_then(mem_kb).map_or(0, |(rss, _)| rss)
}

/// Data rows of a trace file (header excluded); 0 when absent.
pub fn trace_rows(path: &Path) -> usize {
    File::open(path)
        .map(|f| BufReader::new(f).lines().count().saturating_sub(1))
        .unwrap_or(0)
}

/// Parses an RFC 3339 UTC timestamp (`2025-01-01T12:00:00.123456Z`, as tracing's JSON logs
/// write) into Unix seconds as f64.
pub fn parse_ts(s: &str) -> Option<f64> {
    let (date_time, frac) = match s.trim_end_matches('Z').split_once('.') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (s.trim_end_matches('Z').to_string(), String::new()),
    };
    let whole = oracle_model::parse_time(&format!("{date_time}Z"))?;
    let frac: f64 = if frac.is_empty() {
        0.0
    } else {
        format!("0.{}", frac.trim_end_matches(|c: char| !c.is_ascii_digit()))
            .parse()
            .ok()?
    };
    Some(whole as f64 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse() {
        let t = parse_ts("2001-01-01T00:00:01.250000Z").expect("ts");
        assert!((t - (978_307_201.25)).abs() < 1e-6);
        assert_eq!(parse_ts("2001-01-01T00:00:00Z"), Some(978_307_200.0));
    }
}
