//! The simulated world of one seed and its invariants.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oracle_ctrader::proto::ProtoOaTrendbarPeriod;
use oracle_ctrader::session::{Session, SessionConfig, Transmit};
use oracle_ctrader::{Credentials, FrameDecoder, Secret};
use oracle_predictor::engine::{Predictor, Settings};
use oracle_sim::bars::{Period, format_iso_utc, format_price};
use oracle_sim::broker::{BadFrame, Broker, Output};
use oracle_sim::calendar::CalendarMode;
use oracle_sim::config::{
    BrokerConfig, DEFAULT_ACCESS_TOKEN, DEFAULT_ACCOUNT_ID, DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN, Fault, Speed,
};
use oracle_sim::market::{Market, Start};
use oracle_sim::msg::ErrorCode as SimErrorCode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::exec::{Exec, Hours, ModelSide, Stream};
use crate::fixtures;
use crate::pipe::{Delivery, Pipe, PipeFaults, Wrote};
use oracle_ctrader::calendar::Holiday;
use oracle_sim::calendar::SymbolHours;

/// Where in the predictor's handling of a batch of lines a kill -9 lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillPoint {
    /// Before the lines are handled: they are lost.
    BeforeLines,
    /// After the lines were handled and the answers sent, before the states were written.
    BeforePersist,
    /// After the states were written.
    AfterPersist,
}

/// Everything one seed decides.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// Bundled models that trade (file stems).
    pub models: Vec<String>,
    /// Live bars (of the coarsest stream) the market replays.
    pub live_bars: usize,
    /// Virtual seconds per bar of the coarsest stream (sets the replay speed).
    pub bar_wall_s: i64,
    /// The session's `live_close`.
    pub live_close: bool,
    /// Faults of the broker connection.
    pub pipe: PipeFaults,
    /// Every N-th new order is refused (`NOT_ENOUGH_MONEY`).
    pub reject_every: Option<u64>,
    /// Every N-th order's execution events are lost.
    pub lose_exec_every: Option<u64>,
    /// The access token expires this many virtual seconds after the start.
    pub token_expires_s: Option<i64>,
    /// The broker's history requests per second (below the session's 5: throttling).
    pub history_rate_limit: usize,
    /// Predictor kills: at its N-th batch of lines, where.
    pub kills: Vec<(u64, KillPoint)>,
    /// Virtual ms from a kill to the restart.
    pub restart_after_ms: i64,
    /// `BLOCKED_PAYLOAD_TYPE` with `retryAfter`: (request kind, None: any but auth;
    /// retryAfter s; every N-th matching request).
    pub blocked: Option<(Option<String>, u64, u64)>,
    /// A maintenance window: (starts s after the start, lasts s); applied only with
    /// `with_maintenance`.
    pub maintenance: Option<(u64, u64)>,
    /// Apply `maintenance`: on in one drawn plan in [`HOURS_ONE_IN`] (`DST_MAINTENANCE=1` in
    /// the tests turns it on for every seed).
    pub with_maintenance: bool,
    /// Every N-th `NewOrderReq` is executed and never answered.
    pub no_answer_every: Option<u64>,
    /// The session's UTC follows the market's clock (see `World::sync_utc`); off in drawn
    /// plans for now: with it, some seeds' traces differ from `oracle replay`
    /// (`DST_MARKET_UTC=1` in the tests turns it on).
    pub market_utc: bool,
    /// Executor kills (-9): the executor dies right after its N-th journal write (in
    /// increasing order; at the first session event after it while the session is authorized),
    /// losing its core, its adapter, its connection and (a power loss, see
    /// [`Plan::executor_kills_keep_written`]) the journal's unsynced tail, and starts again from
    /// the bytes left (see `Exec::kill_and_restart`).
    pub executor_kills: Vec<u64>,
    /// Per executor kill (in order): `true` for a process kill, which keeps every byte the
    /// executor wrote (they are in the kernel's page cache, and reach the disk without it);
    /// `false` or missing for a power loss, which keeps only the synced bytes. Drawn half and
    /// half.
    pub executor_kills_keep_written: Vec<bool>,
    /// The executor's link sends a batch's orders before their intents sync (the sync before
    /// the next input; `Link::set_sync_after_submit`): an experiment for taking the fsync off
    /// the orders' path, off in drawn plans (`DST_SYNC_AFTER_SUBMIT=1` in the tests turns it on).
    pub sync_after_submit: bool,
    /// Trading hours the broker serves and enforces (the soak: realistic, with its weekly
    /// Saturday maintenance window at a timed speed); drawn plans: realistic in one in
    /// [`HOURS_ONE_IN`], else always open.
    pub calendar: CalendarMode,
    /// Lifetime (virtual s) of every token a refresh issues (None: the broker's default):
    /// with `token_expires_s` the same, the token expires again and again.
    pub token_ttl_s: Option<i64>,
    /// The predictor's answers to one batch of bars come in two writes this many virtual ms
    /// apart, the first SIGNAL then the others (a real predictor's first SIGNAL of an instant
    /// often goes before its state write): the executor's gather waits for them
    /// (`Timer::Gather`, 25 ms). `None`: one write. Drawn for one seed in [`HOURS_ONE_IN`].
    pub late_signals_ms: Option<i64>,
    /// Extra whole-day holidays under the realistic calendar: (name, days since 1970-01-01).
    pub holidays: Vec<(String, i64)>,
    /// More broker faults, appended to the drawn ones (the soak's seeded connection drops and
    /// maintenance windows).
    pub extra_faults: Vec<Fault>,
    /// The market's bars when they are not the bundled files as read (the soak's series
    /// re-stamped onto one span); None: `fixtures::symbols()`.
    pub bars: Option<MarketBars>,
    /// Every N-th order (`NewOrderReq` or `ClosePositionReq`) the broker refuses
    /// `MARKET_CLOSED` though its market is open (a broker whose own calendar disagrees with
    /// the symbol's hours, for a moment): the entry is missed and never chased, the exit is held
    /// and tried again (a minute after the last release, `HELD_EXIT_RETRY_MS`) until it goes.
    /// One drawn plan in [`MARKET_CLOSED_ONE_IN`] (its own stream); applied only with an
    /// always-open calendar (the realistic one's refusals are its hours').
    pub market_closed_every: Option<u64>,
}

/// One drawn plan in this many has the broker refuse `MARKET_CLOSED` in open hours.
pub const MARKET_CLOSED_ONE_IN: u32 = 5;

/// The broker's `MARKET_CLOSED` refusals in open hours of `seed` (their own stream): every
/// N-th order, N in 2..=4, for one seed in [`MARKET_CLOSED_ONE_IN`].
fn market_closed_every(seed: u64) -> Option<u64> {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x4D43_4C4F_5345_4400);
    r.random_bool(1.0 / f64::from(MARKET_CLOSED_ONE_IN))
        .then(|| r.random_range(2..=4))
}

/// Bar series by symbol name that replace the bundled ones for a plan (history, the replay and
/// `oracle replay`'s check all read them).
#[derive(Clone)]
pub struct MarketBars(pub std::sync::Arc<BTreeMap<String, oracle_sim::symbols::SymbolData>>);

impl std::fmt::Debug for MarketBars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_map();
        for (name, d) in self.0.iter() {
            let span = match (d.bars.first(), d.bars.last()) {
                (Some(a), Some(b)) => format!(
                    "{} bars {} .. {}",
                    d.bars.len(),
                    format_iso_utc(a.time_ms),
                    format_iso_utc(b.time_ms)
                ),
                _ => "no bars".into(),
            };
            l.entry(name, &span);
        }
        l.finish()
    }
}

/// A known defect injected to prove the harness catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defect {
    /// None: the system as it is.
    None,
    /// The executor does not send the predictor its n-th live bar.
    ExecutorDropsBar(u64),
    /// The pipe delivers every `NewOrderReq` frame twice.
    PipeDuplicatesOrders,
    /// The executor sends the predictor its n-th live bar with another close.
    ExecutorAltersBar(u64),
    /// A killed executor starts again with an empty journal (its durable bytes lost).
    ExecutorLosesJournal,
    /// The executor never arms its held exits' timer (`Timer::HeldExit`): an exit held while a
    /// market was closed is not sent at the open.
    ExecutorIgnoresHeldExitTimer,
    /// The executor ignores its gather's timer (`Timer::Gather`): a batch waiting for a late
    /// SIGNAL of its close instant goes only when that SIGNAL comes.
    ExecutorIgnoresGatherTimer,
}

/// Why a seed failed: the first invariant broken, where, and how to replay it.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// Virtual time (Unix ms) of the step that broke it.
    pub at_ms: i64,
    /// Steps taken.
    pub step: u64,
    /// What broke.
    pub what: String,
    /// The seed's scratch folder (state file, traces), kept for a look.
    pub scratch: Option<PathBuf>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} failed at step {} ({}): {}\n  replay: {}",
            self.seed,
            self.step,
            format_iso_utc(self.at_ms),
            self.what,
            replay_command(self.seed)
        )
    }
}

/// The one command that replays `seed`.
pub fn replay_command(seed: u64) -> String {
    format!("DST_SEED={seed} cargo test -p oracle-dst --release --test dst -- one_seed --nocapture")
}

/// What a passing seed did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Steps taken.
    pub steps: u64,
    /// Live bars the predictor got over all streams.
    pub bars: u64,
    /// Orders sent.
    pub orders: u64,
    /// Connection resets injected by the pipe.
    pub resets: u64,
    /// Connections that went dead.
    pub deaths: u64,
    /// Predictor kills.
    pub kills: u64,
    /// Session connects.
    pub connects: u64,
    /// Trace rows checked against `oracle replay`.
    pub rows_checked: u64,
    /// Orders the broker refused.
    pub refused: u64,
    /// Requests whose outcome was unknown.
    pub unknown: u64,
    /// Token refreshes.
    pub refreshes: u64,
    /// Entries not chased.
    pub missed_entries: u64,
    /// Executor kills (restarts from the journal's bytes left).
    pub executor_kills: u64,
    /// Of those, process kills (every byte written kept; the others were power losses).
    pub executor_kills_keeping_written: u64,
    /// Power losses while the executor's link owed a sync (with `Plan::sync_after_submit`).
    pub losses_in_sync_window: u64,
    /// Market time (Unix ms) the live replay started at.
    pub start_ms: i64,
    /// Market time (Unix ms) the replay ended at.
    pub end_ms: i64,
    /// Connections the broker closed (its faults, maintenance, token or idle rules).
    pub server_closes: u64,
    /// Fatal authentication failures of the session (each would need a person).
    pub fatal_auth: u64,
    /// Each broker fault of the run (its kind, `DropRandom`, `Maintenance`, …, in the broker
    /// configuration's order) and how many times it fired.
    pub faults_fired: Vec<(String, u64)>,
    /// Expected live bars (every stream's history bars after its warm-up) that never reached
    /// the executor's streams.
    pub missed_bars: u64,
    /// Client order ids that reached the broker more than once, counted once per extra time.
    pub duplicate_orders: u64,
    /// Batches of lines the predictor was given.
    pub batches: u64,
    /// `RefreshTokenRes` the broker sent (it spent the refresh token each time) that never
    /// reached the session (the connection died with it on the way).
    pub refresh_answers_lost: u64,
    /// Runs that ended in an authentication stop needing a person (`oracle auth`): the
    /// session's fatal auth failure after a refresh answer was lost, the only case where one
    /// is allowed (single-use refresh tokens: no client can recover).
    pub auth_stops: u64,
    /// The session's last fatal authentication failure: its code and description.
    pub auth_failure: Option<String>,
    /// Exits the broker refused `MARKET_CLOSED`: held until the market's open.
    pub held_exits: u64,
    /// Entries the broker refused `MARKET_CLOSED`: missed, never chased.
    pub market_closed_entries: u64,
    /// Releases of the held exits at a market's open (`Timer::HeldExit`) that sent closes.
    pub held_releases: u64,
    /// Batches that went when the gather's wait ran out (`Timer::Gather`: a SIGNAL of their
    /// close instant late).
    pub gather_timeouts: u64,
    /// Orders the broker refused `MARKET_CLOSED` in open hours (the plan's
    /// `market_closed_every`).
    pub market_closed_injected: u64,
    /// Entries' margins taken from the margin-rate cache (a broker's answer younger than its
    /// life, scaled to the current price: not asked again).
    pub margins_cached: u64,
    /// Margins of the next transitions' entries prefetched off the orders' path.
    pub margins_prefetched: u64,
    /// The longest an exit refused `MARKET_CLOSED` in open hours stayed held (virtual ms).
    pub open_hold_max_ms: i64,
}

impl Plan {
    /// The plan of `seed`.
    pub fn from_seed(seed: u64) -> Plan {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let symbols = fixtures::symbols();
        // Models whose stream is their symbol's source series (no aggregation): every
        // bundled model but the coarser of a symbol with two.
        let names: Vec<&String> = fixtures::models()
            .iter()
            .filter(|(_, b)| {
                symbols
                    .get(&b.spec.symbol)
                    .is_some_and(|d| d.period.name() == b.spec.timeframe)
            })
            .map(|(n, _)| n)
            .collect();
        let n = if r.random_bool(0.3) { 2 } else { 1 };
        let mut models: Vec<String> = Vec::new();
        while models.len() < n {
            let m = names[r.random_range(0..names.len())].clone();
            if !models.contains(&m) {
                models.push(m);
            }
        }
        let p = |r: &mut ChaCha8Rng, x: f64| r.random_bool(x);
        let pipe = PipeFaults {
            reset: if p(&mut r, 0.4) { 0.004 } else { 0.0 },
            dead: if p(&mut r, 0.25) { 0.002 } else { 0.0 },
            delay: if p(&mut r, 0.4) { 0.2 } else { 0.0 },
            max_delay_ms: 3_000,
            duplicate_client_frames_with: None,
        };
        let kills = if p(&mut r, 0.5) {
            let k = r.random_range(1..=2);
            let mut v: Vec<(u64, KillPoint)> = (0..k)
                .map(|_| {
                    let at = r.random_range(1..30);
                    let pt = match r.random_range(0..3) {
                        0 => KillPoint::BeforeLines,
                        1 => KillPoint::BeforePersist,
                        _ => KillPoint::AfterPersist,
                    };
                    (at, pt)
                })
                .collect();
            v.sort_by_key(|x| x.0);
            v.dedup_by_key(|x| x.0);
            v
        } else {
            Vec::new()
        };
        let hours = market_hours(seed);
        let kills_e = executor_kills(seed);
        Plan {
            seed,
            models,
            live_bars: r.random_range(8..=30),
            bar_wall_s: [20, 60, 120][r.random_range(0..3)],
            live_close: p(&mut r, 0.5),
            pipe,
            reject_every: p(&mut r, 0.3).then(|| r.random_range(2..5)),
            lose_exec_every: p(&mut r, 0.2).then(|| r.random_range(2..6)),
            token_expires_s: p(&mut r, 0.3).then(|| r.random_range(60..1_200)),
            history_rate_limit: if p(&mut r, 0.3) { 1 } else { 5 },
            kills,
            restart_after_ms: r.random_range(0..90_000),
            blocked: p(&mut r, 0.2).then(|| {
                // Requests the session re-queues after retryAfter (its docs); any request
                // (subscriptions too) is left out for now: see the crate's report.
                let kind = [
                    Some("NewOrderReq"),
                    Some("GetTrendbarsReq"),
                    Some("ReconcileReq"),
                ][r.random_range(0..3)]
                .map(str::to_string);
                (kind, r.random_range(1..=5), r.random_range(3..=12))
            }),
            maintenance: p(&mut r, 0.15)
                .then(|| (r.random_range(10..=600), r.random_range(10..=300))),
            with_maintenance: hours.1,
            no_answer_every: p(&mut r, 0.15).then(|| r.random_range(2..=6)),
            market_utc: false,
            calendar: hours.0,
            late_signals_ms: late_signals(seed),
            token_ttl_s: None,
            holidays: Vec::new(),
            extra_faults: Vec::new(),
            executor_kills: kills_e.0,
            executor_kills_keep_written: kills_e.1,
            sync_after_submit: false,
            bars: None,
            // Under the realistic calendar the broker refuses by its hours already.
            market_closed_every: market_closed_every(seed)
                .filter(|_| hours.0 == CalendarMode::AlwaysOpen),
        }
    }
}

/// The trading hours of `seed` (their own stream: the other draws stay what they were): the
/// realistic calendar (each symbol's class hours and Christmas: weekends, daily closes of the
/// indices and stocks; the broker refuses `MARKET_CLOSED` outside them, the executor holds an
/// exit until the open and misses an entry) for one seed in [`HOURS_ONE_IN`], else always open;
/// and whether the drawn maintenance window is applied (one seed in [`HOURS_ONE_IN`]).
fn market_hours(seed: u64) -> (CalendarMode, bool) {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x4D41_524B_4554_4852);
    let p = 1.0 / HOURS_ONE_IN as f64;
    let calendar = if r.random_bool(p) {
        CalendarMode::Realistic
    } else {
        CalendarMode::AlwaysOpen
    };
    (calendar, r.random_bool(p))
}

/// The delay between the predictor's two writes of `seed` (their own stream), if split.
fn late_signals(seed: u64) -> Option<i64> {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x4741_5448_4552_0001);
    r.random_bool(1.0 / HOURS_ONE_IN as f64)
        .then(|| r.random_range(5..=60))
}

/// One drawn plan in this many has market hours (and, drawn apart, one in this many its
/// maintenance window applied).
pub const HOURS_ONE_IN: u32 = 6;

/// The executor kills of `seed` (their own stream: the other draws stay what they were), and
/// which of them keep the bytes written (process kills) rather than only the synced ones (power
/// losses).
fn executor_kills(seed: u64) -> (Vec<u64>, Vec<bool>) {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x0E5E_C0DE_4B11_1000);
    if !r.random_bool(0.3) {
        return (Vec::new(), Vec::new());
    }
    let n = r.random_range(1..=2);
    let mut v: Vec<u64> = (0..n).map(|_| r.random_range(1..60)).collect();
    v.sort_unstable();
    v.dedup();
    let keep = v.iter().map(|_| r.random_bool(0.5)).collect();
    (v, keep)
}

/// Runs `seed`'s plan with no defect.
pub fn run_seed(seed: u64) -> Result<Summary, Failure> {
    run(&Plan::from_seed(seed), Defect::None)
}

/// Extra bars beyond the window the predictor asks for when it has a state to catch up from.
const HISTORY_EXTRA: usize = 60;

/// The simulator's period and the trendbar period of a model's timeframe (parsed when its zip
/// was loaded): the period is the timeframe itself, the trendbar period `oracle_ctrader`'s one
/// timeframe -> period map.
fn period_of(tf: oracle_ipc::Timeframe) -> (Period, ProtoOaTrendbarPeriod) {
    (tf, ProtoOaTrendbarPeriod::from(tf))
}

struct World {
    plan: Plan,
    defect: Defect,
    t0: i64,
    base: Instant,
    now: i64,
    step: u64,
    broker: Broker,
    session: Session,
    pipe: Pipe,
    conn: Option<u64>,
    server_decoder: FrameDecoder,
    exec: Exec,
    pred: Option<Predictor>,
    pred_batches: u64,
    restart_at: Option<i64>,
    ever_connected: bool,
    settings: Settings,
    scratch: PathBuf,
    summary: Summary,
    /// End of the replay (market ms): the last bar of every stream closes by it.
    end_ms: i64,
    /// `RefreshTokenRes` the broker sent (each spent a refresh token), on any connection.
    refresh_answers_sent: u64,
    /// A planned power loss held back (with `Plan::sync_after_submit`) until the broker has
    /// taken what the executor sent while its link owed a sync; `true` once it has.
    loss_pending: Option<bool>,
    /// `TokensRefreshed` the session reported.
    refresh_answers_received: u64,
    /// The predictor's second write of a batch's answers, and when it arrives (virtual ms).
    late: Option<(i64, Vec<String>)>,
    /// Orders the broker got (`NewOrderReq`, `ClosePositionReq`): the count the plan's
    /// `market_closed_every` refusals go by.
    orders_in: u64,
}

fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Runs one plan. The scratch folder is removed when the seed passes and kept (and named in
/// the failure) when it fails.
pub fn run(plan: &Plan, defect: Defect) -> Result<Summary, Failure> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let scratch = scratch_root().join(format!(
        "oracle-dst-{}-{}-{}",
        std::process::id(),
        plan.seed,
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let fail = |what: String| Failure {
        seed: plan.seed,
        at_ms: 0,
        step: 0,
        what,
        scratch: None,
    };
    let mut w = World::new(plan.clone(), defect, scratch.clone()).map_err(fail)?;
    let r = w.run_to_end();
    if r.is_ok() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    r.map_err(|mut f| {
        f.what = format!("{} (scratch folder: {})", f.what, scratch.display());
        f.scratch = Some(scratch.clone());
        f
    })
}

impl World {
    fn new(plan: Plan, defect: Defect, scratch: PathBuf) -> Result<World, String> {
        let models = fixtures::models();
        let bars = plan.bars.clone();
        let symbols = bars.as_ref().map_or(fixtures::symbols(), |b| &*b.0);
        let mut data = Vec::new();
        let mut need_hist = 0usize;
        let mut coarsest = 0i64;
        for name in &plan.models {
            let b = models.get(name).ok_or(format!("{name}: not bundled"))?;
            let d = symbols
                .get(&b.spec.symbol)
                .ok_or(format!("{}: no bar file", b.spec.symbol))?;
            need_hist = need_hist.max(b.spec.window + HISTORY_EXTRA + 5);
            coarsest = coarsest.max(d.period.fixed_ms().unwrap_or(60_000));
            if !data
                .iter()
                .any(|x: &oracle_sim::symbols::SymbolData| x.spec.name == d.spec.name)
            {
                data.push(d.clone());
            }
        }
        // Start after enough bars of the coarsest stream (finer ones get more).
        let mut market = Market::new(data, Start::AfterBars(need_hist));
        // `live_bars` bars of the coarsest stream (whatever its trading hours): the replay ends
        // at the open of the bar after them, whose first tick closes the last one.
        market.end_ms = market
            .symbols
            .iter()
            .filter(|s| s.base.fixed_ms() == Some(coarsest))
            .filter_map(|s| {
                let bars = s.series.get(&s.base)?;
                let i = bars.iter().position(|b| b.time_ms >= market.start_ms)?;
                bars.get(i + plan.live_bars).map(|b| b.time_ms)
            })
            .max()
            .or(Some(market.start_ms + coarsest * plan.live_bars as i64));
        let start_ms = market.start_ms;
        let end_ms = market.end_ms.unwrap_or(i64::MAX);
        // Times speed: a bar of the coarsest stream lasts `bar_wall_s` virtual seconds.
        let factor = coarsest as f64 / (plan.bar_wall_s as f64 * 1000.0);
        let mut faults = Vec::new();
        if let Some(every) = plan.reject_every {
            faults.push(Fault::Reject {
                code: SimErrorCode::NotEnoughMoney,
                every,
                symbol: None,
                times: None,
                via_error_res: false,
            });
        }
        if let Some(every) = plan.lose_exec_every {
            faults.push(Fault::LoseExec {
                every,
                times: None,
                filled_only: false,
            });
        }
        if let Some((kind, retry_after_s, every)) = &plan.blocked {
            faults.push(Fault::Blocked {
                kind: kind.clone(),
                retry_after_s: *retry_after_s,
                every: *every,
                times: None,
            });
        }
        if let Some((after_s, for_s)) = plan.maintenance.filter(|_| plan.with_maintenance) {
            faults.push(Fault::Maintenance { after_s, for_s });
        }
        faults.extend(plan.extra_faults.iter().cloned());
        if let Some(every) = plan.no_answer_every {
            faults.push(Fault::NoAnswer {
                kind: "NewOrderReq".into(),
                every,
                times: None,
            });
        }
        let mut cfg = BrokerConfig {
            seed: plan.seed,
            speed: Speed::Times(factor),
            history_rate_limit: plan.history_rate_limit,
            faults,
            ..BrokerConfig::default()
        };
        if let Some(s) = plan.token_expires_s {
            cfg.tokens[0].expires_in_s = s;
        }
        if let Some(s) = plan.token_ttl_s {
            cfg.token_ttl_s = s;
        }
        cfg.calendar = plan.calendar;
        cfg.holidays = plan.holidays.clone();
        let t0 = start_ms;
        let broker = Broker::new(cfg, market, t0).map_err(|e| e.to_string())?;

        // Streams: what the broker's history holds, and the models on each.
        let mut streams: BTreeMap<(i64, i32), Stream> = BTreeMap::new();
        let mut sides = Vec::new();
        for name in &plan.models {
            let b = &models[name];
            let (period, pq) = period_of(b.model_spec.stream.timeframe);
            let (si, sm) = broker
                .market()
                .symbols
                .iter()
                .enumerate()
                .find(|(_, s)| s.spec.name == b.spec.symbol)
                .ok_or(format!("{}: not in the market", b.spec.symbol))?;
            let len = period.fixed_ms().ok_or("fixed period")?;
            let series = sm.series.get(&period).ok_or("series")?;
            // History's bars: a bar wholly in closed hours (the realistic calendar) has no tick.
            let expected: Vec<i64> = series
                .iter()
                .filter(|x| x.time_ms + len <= end_ms)
                .filter(|x| broker.bar_in_hours(si, x.time_ms, len))
                .map(|x| x.time_ms / 1000)
                .collect();
            let key = (sm.id, pq as i32);
            streams.entry(key).or_insert_with(|| Stream {
                symbol_id: sm.id,
                period: pq,
                symbol: b.spec.symbol.clone(),
                tf: oracle_ipc::Timeframe::from_name(&b.spec.timeframe).expect("a supported tf"),
                digits: sm.spec.digits,
                bars: Vec::new(),
                expected,
                warm_until: None,
                revised: Default::default(),
            });
            sides.push(ModelSide {
                name: name.clone(),
                stream: key,
                // One entry is the symbol's minimum volume.
                lot: sm.spec.min_volume.max(1) as f64 / sm.spec.lot_size.max(1) as f64,
            });
        }
        let mut exec = Exec::new(DEFAULT_ACCOUNT_ID, streams.into_values().collect(), sides);
        exec.sync_after_submit = plan.sync_after_submit;
        exec.link.set_sync_after_submit(plan.sync_after_submit);
        match defect {
            Defect::ExecutorDropsBar(n) => exec.drop_live_nth = Some(n),
            Defect::ExecutorAltersBar(n) => exec.alter_live_nth = Some(n),
            Defect::ExecutorLosesJournal => exec.lose_journal_on_kill = true,
            Defect::ExecutorIgnoresHeldExitTimer => exec.ignore_held_exit_timer = true,
            Defect::ExecutorIgnoresGatherTimer => exec.ignore_gather_timer = true,
            _ => {}
        }

        // The markets' hours as the executor's shell reads them from the broker's schedule
        // (market hours on): each symbol's calendar, the holidays the broker adds.
        if plan.calendar == CalendarMode::Realistic {
            let calendars = exec
                .streams
                .values()
                .map(|st| {
                    let mut h = SymbolHours::for_symbol(&st.symbol, plan.calendar);
                    h.holidays
                        .extend(plan.holidays.iter().map(|(name, days)| Holiday {
                            name: name.clone(),
                            time_zone: h.time_zone.clone(),
                            date_days: *days,
                            recurring: false,
                            start_second: None,
                            end_second: None,
                        }));
                    (st.symbol.clone(), h.calendar())
                })
                .collect();
            exec.hours = Some(Hours {
                calendars,
                t0: start_ms,
                start: start_ms,
                factor,
                end: end_ms,
            });
        } else {
            // Always open: no calendar (every market open until the replay's end); the map
            // between the clocks still serves the held exits' watch (an exit the broker refused
            // `MARKET_CLOSED` in open hours must still go).
            exec.hours = Some(Hours {
                calendars: BTreeMap::new(),
                t0: start_ms,
                start: start_ms,
                factor,
                end: end_ms,
            });
        }
        let base = Instant::now();
        let creds = Credentials {
            client_id: Secret::new(DEFAULT_CLIENT_ID),
            client_secret: Secret::new(DEFAULT_CLIENT_SECRET),
            access_token: Secret::new(DEFAULT_ACCESS_TOKEN),
            refresh_token: Some(Secret::new(DEFAULT_REFRESH_TOKEN)),
        };
        let mut scfg = SessionConfig::new(creds, DEFAULT_ACCOUNT_ID);
        scfg.live_close = plan.live_close;
        let mut session = Session::new(scfg, base, t0);
        exec.set_clock(base, t0);
        // Subscribe every stream with a gap to fill: the bars from `need_hist` bars before the
        // start are fetched from history, exactly once each.
        let keys: Vec<(i64, i32)> = exec.streams.keys().copied().collect();
        for key in keys {
            let st = &exec.streams[&key];
            let before: Vec<i64> = st
                .expected
                .iter()
                .copied()
                .filter(|t| *t * 1000 + st.period.seconds().unwrap_or(0) * 1000 <= start_ms)
                .collect();
            let want = models
                .values()
                .filter(|b| b.spec.symbol == st.symbol && b.spec.timeframe == st.tf.as_str())
                .map(|b| b.spec.window + HISTORY_EXTRA)
                .max()
                .unwrap_or(0);
            let from = before.len().saturating_sub(want + 1);
            let last_closed = before.get(from).copied();
            session
                .subscribe_bars(base, st.symbol_id, st.period, last_closed)
                .map_err(|e| e.to_string())?;
            let first = before.get(from + 1).copied();
            let stm = exec.streams.get_mut(&key).expect("key");
            // The stream's expected bars begin after `last_closed`.
            stm.expected.retain(|t| first.is_some_and(|f| *t >= f));
            stm.warm_until = before.last().copied();
        }
        session.start(base);

        let models_dir = scratch.join("models");
        std::fs::create_dir_all(&models_dir).map_err(|e| e.to_string())?;
        for name in &plan.models {
            // The loader looks models up by file stem; the file only has to exist for the scan.
            std::fs::write(models_dir.join(format!("{name}.zip")), b"")
                .map_err(|e| e.to_string())?;
        }
        let settings = Settings {
            models_dir,
            state_dir: scratch.join("state"),
            trace_dir: Some(scratch.join("trace")),
            history_extra: HISTORY_EXTRA,
        };
        let mut pipe_faults = plan.pipe.clone();
        if defect == Defect::PipeDuplicatesOrders {
            // Every NewOrderReq frame carries its client order id, `ot-…` (the core's).
            pipe_faults.duplicate_client_frames_with = Some(b"ot-".to_vec());
        }
        let pipe = Pipe::new(pipe_faults, plan.seed);
        Ok(World {
            plan,
            defect,
            t0,
            base,
            now: t0,
            step: 0,
            broker,
            session,
            pipe,
            conn: None,
            server_decoder: FrameDecoder::default(),
            exec,
            pred: None,
            pred_batches: 0,
            restart_at: None,
            late: None,
            refresh_answers_sent: 0,
            loss_pending: None,
            refresh_answers_received: 0,
            ever_connected: false,
            settings,
            scratch,
            summary: Summary::default(),
            end_ms,
            orders_in: 0,
        })
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_millis((self.now - self.t0).max(0) as u64)
    }

    fn ms_of(&self, t: Instant) -> i64 {
        let d = t.saturating_duration_since(self.base);
        // Rounded up: a deadline is never reached early.
        self.t0 + d.as_nanos().div_ceil(1_000_000) as i64
    }

    fn fail(&self, what: impl Into<String>) -> Failure {
        Failure {
            seed: self.plan.seed,
            at_ms: self.now,
            step: self.step,
            what: what.into(),
            scratch: None,
        }
    }

    fn reset_connection(&mut self, why: &str) {
        // A power loss held back for orders the broker has not taken: they die with the
        // connection, so the loss is planned again (the next kill check fires or holds it).
        if self.loss_pending == Some(false) {
            self.loss_pending = None;
        }
        if let Some(c) = self.conn.take() {
            self.broker.disconnect(c, self.now);
        }
        self.pipe.close();
        self.server_decoder = FrameDecoder::default();
        let now = self.instant();
        self.session.handle_disconnected(now, why.to_string());
    }

    /// The session's UTC is the market's: in production the broker's clock and the wall clock
    /// are one; here the replay runs ahead of the virtual wall clock (a bar lasts
    /// `bar_wall_s`), and a session judging closes by the wall clock would wait hours of
    /// virtual time for a bar the market closed while no spot could reach it (a maintenance
    /// window, a dead connection at the end of the replay). Timers stay on the virtual clock.
    fn sync_utc(&mut self) {
        if !self.plan.market_utc {
            return;
        }
        let inst = self.instant();
        let utc = self.broker.market().now_ms.max(self.now);
        self.session.handle_utc(inst, utc);
    }

    /// Moves everything that can move at `now`; true when something did.
    /// The plan's refusal in open hours of this request, if it is an order whose turn it is:
    /// the broker's `MARKET_CLOSED` order error in its place (the broker never sees it).
    fn market_closed_refusal(
        &mut self,
        req: &oracle_sim::msg::Request,
    ) -> Option<oracle_sim::msg::Event> {
        use oracle_sim::msg::Request;
        let every = self
            .plan
            .market_closed_every
            .filter(|_| self.plan.calendar == CalendarMode::AlwaysOpen)?;
        let (account_id, position_id) = match req {
            Request::NewOrder(o) => (o.account_id, None),
            Request::ClosePosition {
                account_id,
                position_id,
                ..
            } => (*account_id, Some(*position_id)),
            _ => return None,
        };
        self.orders_in += 1;
        if self.orders_in % every != 0 {
            return None;
        }
        self.summary.market_closed_injected += 1;
        Some(oracle_sim::msg::Event::OrderError {
            account_id,
            code: SimErrorCode::MarketClosed,
            order_id: None,
            position_id,
            description: "market is closed (fault: refused in open hours)".into(),
        })
    }

    fn settle(&mut self) -> Result<bool, Failure> {
        let mut any = false;
        let mut refusals = Vec::new();
        self.sync_utc();
        loop {
            let mut progressed = false;
            let inst = self.instant();
            while let Some(t) = self.session.poll_transmit() {
                progressed = true;
                match t {
                    Transmit::Connect => {
                        self.summary.connects += 1;
                        self.pipe.open();
                        self.server_decoder = FrameDecoder::default();
                        self.conn = Some(self.broker.connect(self.now));
                        self.session.handle_connected(inst);
                    }
                    Transmit::Bytes(b) => {
                        if self.conn.is_some()
                            && self.pipe.client_write(self.now, b) == Wrote::Reset
                        {
                            self.reset_connection("reset by the pipe");
                        }
                    }
                    Transmit::Close => {
                        if let Some(c) = self.conn.take() {
                            self.broker.disconnect(c, self.now);
                        }
                        self.pipe.close();
                    }
                }
            }
            while let Some(d) = self.pipe.poll(self.now) {
                progressed = true;
                match d {
                    Delivery::ToServer(bytes) => {
                        let Some(conn) = self.conn else { continue };
                        if let Some(d) = &mut self.loss_pending {
                            *d = true;
                        }
                        self.server_decoder.feed(&bytes);
                        loop {
                            match self.server_decoder.next_frame() {
                                Ok(Some(body)) => match oracle_sim::wire::decode_request(&body) {
                                    Ok((cmid, req)) => match self.market_closed_refusal(&req) {
                                        Some(ev) => refusals.push((cmid, ev)),
                                        None => {
                                            self.broker.handle_request(self.now, conn, cmid, req)
                                        }
                                    },
                                    Err(e) => self.broker.handle_bad_frame(
                                        self.now,
                                        conn,
                                        BadFrame::Garbage { reason: e.0 },
                                    ),
                                },
                                Ok(None) => break,
                                Err(e) => return Err(self.fail(format!("client framing: {e}"))),
                            }
                        }
                        // The refusals in open hours: answered as the broker answers its own
                        // (`ProtoOAOrderErrorEvent` with the request's client message id).
                        for (cmid, ev) in refusals.drain(..) {
                            let bytes = oracle_sim::wire::encode_event(cmid, &ev);
                            if self.conn.is_some()
                                && self.pipe.server_write(self.now, bytes, 0) == Wrote::Reset
                            {
                                self.reset_connection("reset by the pipe");
                            }
                        }
                    }
                    Delivery::ToClient(bytes) => self.session.handle_bytes(inst, &bytes),
                }
            }
            while let Some(o) = self.broker.poll_output() {
                progressed = true;
                match o {
                    Output::Send {
                        conn,
                        client_msg_id,
                        event,
                        delay_ms,
                    } => {
                        if matches!(event, oracle_sim::msg::Event::RefreshTokenRes { .. }) {
                            self.refresh_answers_sent += 1;
                        }
                        if Some(conn) != self.conn {
                            continue;
                        }
                        let bytes = oracle_sim::wire::encode_event(client_msg_id, &event);
                        if self.pipe.server_write(self.now, bytes, delay_ms as i64) == Wrote::Reset
                        {
                            self.reset_connection("reset by the pipe");
                        }
                    }
                    Output::Close { conn, graceful, .. } => {
                        if Some(conn) != self.conn {
                            continue;
                        }
                        self.summary.server_closes += 1;
                        if graceful {
                            for b in self.pipe.take_to_client() {
                                self.session.handle_bytes(inst, &b);
                            }
                        }
                        self.reset_connection("closed by the server");
                    }
                    Output::Garbage { .. } | Output::Oversized { .. } | Output::Silenced { .. } => {
                    }
                }
            }
            // A held-back power loss: the broker has the orders, the intents are not durable.
            if self.loss_pending == Some(true) {
                self.loss_pending = None;
                self.exec.kill_and_restart(false);
                self.late = None;
                self.reset_connection("the executor's machine lost power");
                progressed = true;
            }
            while let Some(ev) = self.session.poll_event() {
                progressed = true;
                if let oracle_ctrader::session::Event::AuthFailed { code, description } = &ev {
                    self.summary.fatal_auth += 1;
                    self.summary.auth_failure =
                        Some(format!("{code}: {}", description.as_deref().unwrap_or("")));
                }
                if matches!(ev, oracle_ctrader::session::Event::TokensRefreshed { .. }) {
                    self.refresh_answers_received += 1;
                }
                self.exec.handle_event(inst, &mut self.session, ev);
                if self
                    .plan
                    .executor_kills
                    .get(self.exec.kills as usize)
                    .is_some_and(|n| self.exec.journal.appends >= *n)
                    // While authorized: a kill that drops the connection with a token refresh
                    // in flight loses the new tokens with the answer (a fatal authentication
                    // failure the executor's kill is not about).
                    && self.session.state() == oracle_ctrader::session::State::Ready
                    && self.loss_pending.is_none()
                {
                    // kill -9 of the executor (or the machine's power): its socket dies
                    // with it.
                    let keep = self
                        .plan
                        .executor_kills_keep_written
                        .get(self.exec.kills as usize)
                        .copied()
                        .unwrap_or(false);
                    if !keep && self.exec.link.owes_sync() {
                        // Orders on their way whose intents are not durable: the power goes
                        // once the broker has taken them (the window the experiment opens).
                        self.loss_pending = Some(false);
                        continue;
                    }
                    self.exec.kill_and_restart(keep);
                    // The predictor's answers on their way die with the connection.
                    self.late = None;
                    self.reset_connection("the executor was killed");
                }
            }
            // The predictor connects once every stream holds its history.
            if self.pred.is_none()
                && self.restart_at.is_none()
                && !self.ever_connected
                && self.exec.warm()
            {
                self.start_predictor()?;
                progressed = true;
            }
            if self.pred.is_some() && !self.exec.to_predictor.is_empty() {
                progressed = true;
                self.feed_predictor()?;
            }
            self.check()?;
            if !progressed {
                return Ok(any);
            }
            any = true;
        }
    }

    fn start_predictor(&mut self) -> Result<(), Failure> {
        if std::env::var_os("DST_VERBOSE").is_some() {
            eprintln!(
                "{} predictor starts; bars kept {:?}",
                format_iso_utc(self.now),
                self.exec
                    .streams
                    .values()
                    .map(|s| (
                        s.bars.len(),
                        s.bars.last().map(|b| b.time),
                        s.expected.last()
                    ))
                    .collect::<Vec<_>>()
            );
        }
        let mut p = Predictor::new(self.settings.clone(), fixtures::loader())
            .map_err(|e| self.fail(format!("the predictor cannot start: {e}")))?;
        let _ = p.scan();
        let lines = p.on_connected();
        self.pred = Some(p);
        self.ever_connected = true;
        self.exec.handle_predictor_connected();
        let inst = self.instant();
        self.exec
            .handle_predictor_lines(inst, &mut self.session, &lines);
        Ok(())
    }

    fn kill_predictor(&mut self) -> Result<(), Failure> {
        if let Some(p) = self.pred.take() {
            // kill -9: nothing is flushed, nothing is dropped in order.
            std::mem::forget(p);
        }
        self.summary.kills += 1;
        self.exec.handle_predictor_gone();
        self.restart_at = Some(self.now + self.plan.restart_after_ms);
        // What the dead predictor wrote so far must already be right.
        self.check_traces(false)
    }

    fn feed_predictor(&mut self) -> Result<(), Failure> {
        let lines = std::mem::take(&mut self.exec.to_predictor);
        self.pred_batches += 1;
        let kill = self
            .plan
            .kills
            .iter()
            .find(|(n, _)| *n == self.pred_batches)
            .map(|(_, k)| *k);
        if kill == Some(KillPoint::BeforeLines) {
            return self.kill_predictor();
        }
        let p = self.pred.as_mut().expect("a predictor to feed");
        self.summary.bars += lines
            .iter()
            .filter(|l| l.starts_with("BAR|") && !l.contains("|HIST:1"))
            .count() as u64;
        let out = p.handle_lines(&lines);
        if std::env::var_os("DST_VERBOSE").is_some() {
            eprintln!(
                "{} lines {} -> {}: {:?} -> {:?}",
                format_iso_utc(self.now),
                lines.len(),
                out.len(),
                lines.last(),
                out.last()
            );
        }
        let inst = self.instant();
        self.deliver_late();
        let (first, later) = self.split_answers(out);
        self.exec
            .handle_predictor_lines(inst, &mut self.session, &first);
        if !later.is_empty() {
            let ms = self.plan.late_signals_ms.unwrap_or(0);
            self.late = Some((self.now + ms, later));
        }
        if kill == Some(KillPoint::BeforePersist) {
            return self.kill_predictor();
        }
        let p = self.pred.as_mut().expect("a predictor to feed");
        p.persist()
            .map_err(|e| self.fail(format!("the predictor cannot write its state: {e}")))?;
        if kill == Some(KillPoint::AfterPersist) {
            return self.kill_predictor();
        }
        Ok(())
    }

    /// With `late_signals_ms`: the answers up to the first SIGNAL now, the rest in a second
    /// write (when there are two SIGNALs or more).
    fn split_answers(&self, mut out: Vec<String>) -> (Vec<String>, Vec<String>) {
        let signal = |l: &String| l.starts_with("SIGNAL|");
        if self.plan.late_signals_ms.is_none() || out.iter().filter(|l| signal(l)).count() < 2 {
            return (out, Vec::new());
        }
        let first = out.iter().position(signal).map_or(out.len(), |i| i + 1);
        let rest = out.split_off(first);
        (out, rest)
    }

    /// The predictor's second write reaches the executor (in order: before any later one).
    fn deliver_late(&mut self) {
        if let Some((_, lines)) = self.late.take() {
            let inst = self.instant();
            self.exec
                .handle_predictor_lines(inst, &mut self.session, &lines);
        }
    }

    /// Invariants after every step.
    fn check(&mut self) -> Result<(), Failure> {
        let inst = self.instant();
        self.exec.watch_held(inst);
        if let Some(v) = self.exec.violations.first() {
            return Err(self.fail(v.clone()));
        }
        if let Some((coid, n)) = self
            .broker
            .new_orders_by_client_id()
            .iter()
            .find(|(_, n)| **n > 1)
        {
            return Err(self.fail(format!(
                "client order id {coid} reached the broker {n} times"
            )));
        }
        if !self.broker.replay_done()
            && let Some(r) = self.exec.exit_refusals.first()
        {
            return Err(self.fail(format!("an exit was refused: {r}")));
        }
        Ok(())
    }

    /// At the end, the executor core's real positions are the broker's: each model's position
    /// (or none) is the one open on its symbol.
    fn check_positions(&self) -> Result<(), Failure> {
        let open = self.broker.open_positions(DEFAULT_ACCOUNT_ID);
        for name in &self.plan.models {
            let m = &self.exec.models[name];
            let symbol = &self.exec.streams[&m.stream].symbol;
            let mut at_broker: Vec<i64> = open
                .iter()
                .filter(|(s, _)| s == symbol)
                .map(|(_, v)| *v)
                .collect();
            at_broker.sort_unstable();
            // Every model on the symbol (two timeframes of one symbol share its positions).
            let mut held: Vec<i64> = self
                .plan
                .models
                .iter()
                .filter(|n| &self.exec.streams[&self.exec.models[*n].stream].symbol == symbol)
                .filter_map(|n| self.exec.real_position(n).map(|p| p.1))
                .collect();
            held.sort_unstable();
            if held != at_broker {
                return Err(self.fail(format!(
                    "{name}: the executor holds {held:?} on {symbol}, the broker {at_broker:?} at the end (real ≠ broker)"
                )));
            }
        }
        Ok(())
    }

    /// Every model's trace (the rows it has written) equals `oracle replay` over history's
    /// bars from its first bar; with `complete`, up to the stream's last bar.
    fn check_traces(&mut self, complete: bool) -> Result<(), Failure> {
        let names: Vec<String> = self.plan.models.clone();
        for name in names {
            let path = self.scratch.join("trace").join(format!("{name}.csv"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            // A later row for a time replaces an earlier one (re-stepped after a rewind).
            let mut rows: BTreeMap<String, String> = BTreeMap::new();
            for l in text.lines().skip(1) {
                if let Some((t, _)) = l.split_once(',') {
                    rows.insert(t.to_string(), l.to_string());
                }
            }
            let mut rows: Vec<String> = rows.into_values().collect();
            if !complete {
                // Mid-run (a kill), a revision sent may not be applied yet: only the rows
                // before the first revised bar are final.
                let m = &self.exec.models[&name];
                if let Some(t) = self.exec.streams[&m.stream].revised.first() {
                    let cut = format_iso_utc(t * 1000);
                    rows.retain(|r| r.split(',').next().is_some_and(|x| x < cut.as_str()));
                }
            }
            if rows.is_empty() {
                if complete {
                    return Err(self.fail(format!("{name}: the twin traced no bar")));
                }
                continue;
            }
            let first_time = rows[0].split(',').next().unwrap_or("").to_string();
            // From the twin's first bar: a twin that never wrote a state starts again from FLAT
            // after a kill, over the window then at hand (its trace starts again too).
            let replay = self.replay_for(&name, &first_time)?;
            for (i, row) in rows.iter().enumerate() {
                let Some(want) = replay.get(i) else {
                    return Err(self.fail(format!(
                        "{name}: the twin traced {} rows, more than history's {} bars from {first_time}",
                        rows.len(),
                        replay.len()
                    )));
                };
                if row != want {
                    return Err(self.fail(format!(
                        "{name}: trace row {} differs from oracle replay over history's bars: got {row:?}, replay {want:?} (a bar missed, duplicated or altered on its way to the twin)",
                        i + 1
                    )));
                }
            }
            if complete && rows.len() != replay.len() {
                return Err(self.fail(format!(
                    "{name}: the twin traced {} bars, history holds {} from {first_time}: a bar never reached it",
                    rows.len(),
                    replay.len()
                )));
            }
            self.summary.rows_checked += rows.len() as u64;
        }
        Ok(())
    }

    /// `oracle replay` of `name` over history's bars from `first_time` to the stream's end.
    fn replay_for(
        &self,
        name: &str,
        first_time: &str,
    ) -> Result<std::sync::Arc<Vec<String>>, Failure> {
        let b = &fixtures::models()[name];
        let (si, sm) = self
            .broker
            .market()
            .symbols
            .iter()
            .enumerate()
            .find(|(_, s)| s.spec.name == b.spec.symbol)
            .ok_or_else(|| self.fail("symbol"))?;
        let (period, _) = period_of(b.model_spec.stream.timeframe);
        let len = period.fixed_ms().unwrap_or(0);
        let digits = sm.spec.digits;
        let mut csv = String::from("time,open,high,low,close,volume\n");
        let mut started = false;
        for x in sm.series.get(&period).map(Vec::as_slice).unwrap_or(&[]) {
            if x.time_ms + len > self.end_ms {
                break;
            }
            if !self.broker.bar_in_hours(si, x.time_ms, len) {
                continue;
            }
            let t = format_iso_utc(x.time_ms);
            if !started && t != first_time {
                continue;
            }
            started = true;
            csv.push_str(&format!(
                "{t},{},{},{},{},{}\n",
                format_price(x.open, digits),
                format_price(x.high, digits),
                format_price(x.low, digits),
                format_price(x.close, digits),
                x.volume
            ));
        }
        if !started {
            return Err(self.fail(format!(
                "{name}: the twin's first bar {first_time} is not a bar of history"
            )));
        }
        fixtures::replay_rows(name, &csv, &self.scratch).map_err(|e| self.fail(e))
    }

    fn done(&self) -> bool {
        self.broker.replay_done()
            && self.pred.is_some()
            && self.exec.in_flight() == 0
            && self
                .exec
                .streams
                .values()
                .all(|s| s.bars.last().map(|b| b.time) == s.expected.last().copied())
            && self.exec.to_predictor.is_empty()
            && self.late.is_none()
    }

    fn run_to_end(&mut self) -> Result<Summary, Failure> {
        // Generous: the replay plus backoffs and timeouts after it.
        let cap = self.end_ms.max(self.t0)
            + (self.plan.live_bars as i64 + 10) * self.plan.bar_wall_s * 1000
            + 30 * 60_000;
        let mut auth_stop = false;
        loop {
            self.step += 1;
            self.settle()?;
            if self.done() {
                break;
            }
            if self.session.state() == oracle_ctrader::session::State::Failed
                && self.exec.in_flight() == 0
            {
                // A fatal authentication failure: allowed only where a refresh answer was lost
                // after the broker spent the token (no client can recover: a person runs
                // `oracle auth`); the executor must have stopped cleanly (checked below).
                let lost = self
                    .refresh_answers_sent
                    .saturating_sub(self.refresh_answers_received);
                if lost == 0 {
                    return Err(self.fail(format!(
                        "a fatal authentication failure ({} of them) with no refresh answer lost after the broker spent the token: the session gave up where it could have recovered",
                        self.summary.fatal_auth
                    )));
                }
                auth_stop = true;
                break;
            }
            let mut next: Option<i64> = None;
            let mut at = |t: i64| next = Some(next.map_or(t, |n: i64| n.min(t)));
            if let Some(t) = self.session.poll_timeout() {
                at(self.ms_of(t));
            }
            if let Some(t) = self.broker.poll_timeout() {
                at(t);
            }
            if let Some(t) = self.exec.poll_timeout() {
                at(self.ms_of(t));
            }
            if let Some(t) = self.pipe.next_at() {
                at(t);
            }
            if let Some(t) = self.restart_at {
                at(t);
            }
            if let Some((t, _)) = &self.late {
                at(*t);
            }
            let Some(t) = next else {
                return Err(self.fail(format!(
                    "nothing left to happen, and the run is not done (session {:?}, fatal auth failures {}; {})",
                    self.session.state(),
                    self.summary.fatal_auth,
                    self.exec.describe()
                )));
            };
            if t > cap {
                let lag: Vec<String> = self
                    .exec
                    .streams
                    .values()
                    .map(|s| {
                        format!(
                            "{} {}: last bar {:?} of {:?}",
                            s.symbol,
                            s.tf.as_str(),
                            s.bars.last().map(|b| b.time),
                            s.expected.last()
                        )
                    })
                    .collect();
                return Err(self.fail(format!(
                    "not done by the end of the run (virtual {}): {} ; in flight {}; predictor up {}",
                    format_iso_utc(cap),
                    lag.join(", "),
                    self.exec.in_flight(),
                    self.pred.is_some()
                )));
            }
            self.now = self.now.max(t);
            let inst = self.instant();
            self.sync_utc();
            if self.session.poll_timeout().is_some_and(|x| x <= inst) {
                self.session.handle_timeout(inst);
            }
            if self.broker.poll_timeout().is_some_and(|x| x <= self.now) {
                self.broker.handle_timeout(self.now);
            }
            if self.exec.poll_timeout().is_some_and(|x| x <= inst) {
                self.exec.handle_timeout(inst, &mut self.session);
            }
            if self.late.as_ref().is_some_and(|(t, _)| *t <= self.now) {
                self.deliver_late();
            }
            if self.restart_at.is_some_and(|r| r <= self.now) {
                self.restart_at = None;
                self.start_predictor()?;
            }
            if self.step > 5_000_000 {
                return Err(self.fail("more than 5,000,000 steps: a livelock"));
            }
        }
        // Let the predictor's last batch settle, then the final checks (after an auth stop
        // the bars it kept from the executor are missing: the rows so far must still match).
        self.check_traces(!auth_stop)?;
        self.check_positions()?;
        if !auth_stop && let Some(lost) = self.exec.held_exits_lost() {
            return Err(self.fail(lost));
        }
        if !auth_stop && let Some(lost) = self.exec.held_in_open_market_lost() {
            return Err(self.fail(lost));
        }
        self.summary.steps = self.step;
        (
            self.summary.orders,
            self.summary.refused,
            self.summary.unknown,
        ) = self.exec.order_counts();
        self.summary.executor_kills = self.exec.kills;
        self.summary.executor_kills_keeping_written = self.exec.kills_keeping_written;
        self.summary.losses_in_sync_window = self.exec.losses_in_sync_window;
        self.summary.refreshes = self.exec.refreshes;
        self.summary.missed_entries = self.exec.missed_entries;
        self.summary.held_exits = self.exec.held_exits;
        self.summary.market_closed_entries = self.exec.market_closed_entries;
        self.summary.held_releases = self.exec.releases;
        self.summary.gather_timeouts = self.exec.gather_timeouts;
        (self.summary.margins_cached, self.summary.margins_prefetched) = self.exec.margin_counts();
        self.summary.open_hold_max_ms = self.exec.open_hold_max_ms;
        self.summary.resets = self.pipe.resets;
        self.summary.deaths = self.pipe.deaths;
        self.summary.start_ms = self.t0;
        self.summary.refresh_answers_lost = self
            .refresh_answers_sent
            .saturating_sub(self.refresh_answers_received);
        self.summary.auth_stops = u64::from(auth_stop);
        self.summary.end_ms = self.end_ms;
        self.summary.batches = self.pred_batches;
        self.summary.faults_fired = self
            .broker
            .config()
            .faults
            .iter()
            .zip(self.broker.faults_fired())
            .map(|(f, n)| {
                let d = format!("{f:?}");
                let kind = d.split([' ', '{']).next().unwrap_or("").to_string();
                (kind, *n)
            })
            .collect();
        self.summary.duplicate_orders = self
            .broker
            .new_orders_by_client_id()
            .values()
            .map(|n| n.saturating_sub(1))
            .sum();
        self.summary.missed_bars = self
            .exec
            .streams
            .values()
            .map(|s| {
                let got: std::collections::BTreeSet<i64> = s.bars.iter().map(|b| b.time).collect();
                s.expected
                    .iter()
                    .filter(|t| s.warm_until.is_none_or(|w| **t > w))
                    .filter(|t| !got.contains(t))
                    .count() as u64
            })
            .sum();
        let _ = self.defect;
        Ok(self.summary.clone())
    }
}
