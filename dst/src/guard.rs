//! The prop-firm guard in a deterministic simulation: the executor's side core
//! (`oracle_executor_core::side::SideCore`, the product's decisions) with a `risk.preset`, driven
//! from a seed on one virtual clock against an in-memory book whose prices move every minute.
//!
//! A seed ([`GuardPlan::from_seed`]) draws the preset (FTMO 2-Step or 1-Step), the models'
//! signals at each M15 bar close, the quotes' random walk, a crash between two bars (an adverse
//! move of every held position, sized to take the equity past the daily limit), closes the book
//! refuses (the flatten retries them), and a "kill -9" (the side rebuilt from its journal's bytes
//! and the book's positions). The core is fed as the shell feeds it: an account read at each
//! batch, a quote of each symbol every minute ([`SideCore::handle_quote`]), and every action it
//! asks done by the book.
//!
//! Checked after every step ([`run_guard`]'s `Err` names the seed, the minute and what broke):
//! - no entry is sent while the side is halted;
//! - the guard's equity (estimated between account reads from the quotes) is the book's;
//! - a halt survives the restart;
//! - a seed whose crash took the equity past 80% of the daily allowance ends **flat and
//!   halted**, with no position opened after the halt;
//! - one seed in three ([`GuardPlan::past_midnight`]) starts at 22:30 in Prague and runs past
//!   its midnight: the core's timers are driven from the virtual clock as the shell drives them
//!   (`ExecutorCore::arm_guard_day`, `poll_timeout`, `handle_timeout`): `Timer::GuardDay` fires
//!   exactly at the Prague midnight, the side is flat then if a crash halted it, and a daily halt
//!   ends there (entries may go again); a run across the midnight whose day never ended fails;
//! - one seed in three of the others ([`GuardPlan::friday`]) starts on a Friday at 19:30 UTC
//!   with `risk.flat_before_weekend` (30 minutes) and the FX weekend (Friday 22:00 – Sunday
//!   22:00 UTC, as the shell reads it from the calendar): `Timer::Weekend` closes every position
//!   from 21:30 (a refused close tried again a minute later), no entry goes from then on, and
//!   the book is flat at the week's close;
//! - one seed in three ([`GuardPlan::news`], its own stream) has a news calendar
//!   (`risk.news`, `executor_core::restrictions`): events near the bars' batches targeting a
//!   currency, a symbol or every symbol, windows of ±2 to ±10 minutes. No entry goes inside a
//!   window of its symbol, and no exit either but a flatten (the guard's at a limit, the
//!   weekend's: a breach beats the news rule); an exit the rule held goes at the window's end by
//!   `Timer::HeldExit` (armed from `SideCore::news_hold_until`, as the shell's `next_held_open`)
//!   and is not lost.

use std::collections::{BTreeMap, HashMap};

use oracle_executor_core::broker::{BrokerPosition, OrderResult, Quote};
use oracle_executor_core::config::{ExecutorConfig, from_value};
use oracle_executor_core::exec::ExecutorCore;
use oracle_executor_core::gather::Timer;
use oracle_executor_core::journal::{Op, Replayed, encode_lines};
use oracle_executor_core::key::{KeyText, StreamKey, key_of};
use oracle_executor_core::restrictions::{NewsEvent, Restrictions, WeekEnd};
use oracle_executor_core::risk::{Account, Halt};
use oracle_executor_core::side::{Item, SideAction, SideCore};
use oracle_executor_core::volume::SymbolSpec;
use oracle_ipc::{Action, Timeframe};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// 2021-03-01 08:00 UTC, a Monday (09:00 in Prague): the run ends before the Prague midnight.
const START: i64 = 1_614_585_600;
/// 2021-03-01 21:30 UTC (22:30 in Prague, CET): a run from it crosses the Prague midnight.
const START_LATE: i64 = 1_614_634_200;
/// 2021-03-05 19:30 UTC, a Friday: a run from it reaches the FX weekend.
const START_FRIDAY: i64 = 1_614_972_600;
/// 2021-03-05 22:00 UTC: the FX week's last close.
const FRIDAY_CLOSE: i64 = 1_614_981_600;
/// 2021-03-07 22:00 UTC: the FX market's open after the weekend.
const SUNDAY_OPEN: i64 = 1_615_154_400;
/// `risk.flat_before_weekend.minutes` of the Friday seeds.
const FLAT_MINUTES: i64 = 30;

/// Midnight in Prague (CET, UTC+1: March 2021 before the 28th) after `t` (UTC s), the guards'
/// day's end: 23:00 UTC.
fn prague_midnight(t: i64) -> i64 {
    let day = t - t.rem_euclid(86_400);
    let m = day + 23 * 3_600;
    if m > t { m } else { m + 86_400 }
}
const M15: i64 = 900;
/// Quotes per bar (one a minute).
const TICKS: i64 = 15;
/// One lot (cTrader volume, cents of units): a pip is 10 in the account's currency.
const LOT: i64 = 10_000_000;
const SYMBOLS: [&str; 2] = ["EURUSD", "GBPUSD"];
const INITIAL: f64 = 100_000.0;

/// What a seed draws.
#[derive(Clone, Debug)]
pub struct GuardPlan {
    /// The seed.
    pub seed: u64,
    /// `ftmo-2step` or `ftmo-1step`.
    pub preset: &'static str,
    /// Bars (M15) run.
    pub bars: usize,
    /// The first bar after which the crash comes (the first one with a position held).
    pub crash_bar: usize,
    /// The crash's size: a share of the daily allowance lost (above 0.8: the guard must act).
    pub crash_share: f64,
    /// The bar before whose batch the executor is killed and restarted (from its journal).
    pub kill_bar: Option<usize>,
    /// Probability that the book refuses a close.
    pub refuse_close: f64,
    /// The run starts at 22:30 in Prague and crosses its midnight (the guards' day ends), the
    /// crash before it (one seed in three, its own stream).
    pub past_midnight: bool,
    /// The run starts on a Friday at 19:30 UTC with `risk.flat_before_weekend` (30 minutes)
    /// and reaches the FX week's close (one in three of the seeds not past midnight).
    pub friday: bool,
    /// The core's timers are driven (off only to prove the harness catches a shell that does
    /// not drive them).
    pub drive_timers: bool,
    /// A news calendar (`risk.news`): one seed in three, its own stream.
    pub news: Option<GuardNews>,
    /// The core is given the news calendar (off only to prove the harness catches an executor
    /// that trades through the windows: the book still knows them).
    pub news_to_core: bool,
    /// The shell arms `Timer::HeldExit` for the exits a news window held (off only to prove
    /// the harness catches a shell that never releases them).
    pub release_news_holds: bool,
}

/// A seed's news calendar: the windows' half-width and the events.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardNews {
    /// `risk.news.minutes`: the windows are `[event − minutes, event + minutes]`.
    pub minutes: u32,
    /// The events, by time.
    pub events: Vec<NewsEvent>,
}

impl GuardNews {
    /// The news calendar of `seed` (one seed in three; `bars` M15 bars from `start`): one to
    /// three events, each within a window of some bar's batch instant (so the rule meets
    /// entries, exits and held exits), targeting a currency, a symbol or every symbol.
    fn from_seed(seed: u64, start: i64, bars: usize) -> Option<GuardNews> {
        let mut n = ChaCha8Rng::seed_from_u64(seed ^ 0x4E45_5753_0000_0000);
        if !n.random_bool(1.0 / 3.0) {
            return None;
        }
        let minutes: u32 = n.random_range(2..=10);
        let half = i64::from(minutes) * 60;
        let mut events: Vec<NewsEvent> = (0..n.random_range(1..=3))
            .map(|i| {
                let bar = n.random_range(0..bars) as i64;
                let at = start + bar * M15 + M15 + 2 + n.random_range(-half..=half);
                let target = ["USD", "EUR", "GBPUSD", "*"][n.random_range(0..4)];
                NewsEvent {
                    at_ms: at * 1000,
                    targets: vec![target.to_string()],
                    title: format!("event {i}"),
                }
            })
            .collect();
        events.sort_by_key(|e| e.at_ms);
        Some(GuardNews { minutes, events })
    }

    /// The window of `symbol` that `now` (UTC s) is in (both ends included): (event's title,
    /// the window's end, UTC s). The harness's own reading of the calendar.
    fn window(&self, symbol: &str, now: i64) -> Option<(&str, i64)> {
        let half = i64::from(self.minutes) * 60;
        self.events
            .iter()
            .filter(|e| e.targets(symbol) && (now - e.at_ms.div_euclid(1000)).abs() <= half)
            .map(|e| (e.title.as_str(), e.at_ms.div_euclid(1000) + half))
            .next_back()
    }

    /// The end (UTC s) of the last window of `symbol` that began by `now`.
    fn last_end(&self, symbol: &str, now: i64) -> Option<i64> {
        let half = i64::from(self.minutes) * 60;
        self.events
            .iter()
            .filter(|e| e.targets(symbol))
            .map(|e| e.at_ms.div_euclid(1000))
            .filter(|at| at - half <= now)
            .map(|at| at + half)
            .max()
    }
}

impl GuardPlan {
    /// The run's first bar (UTC s).
    pub fn start(&self) -> i64 {
        if self.past_midnight {
            START_LATE
        } else if self.friday {
            START_FRIDAY
        } else {
            START
        }
    }
}

impl GuardPlan {
    /// The plan of `seed`.
    pub fn from_seed(seed: u64) -> GuardPlan {
        let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15);
        let bars = r.random_range(12..28);
        // Its own stream: the other draws stay what they were.
        let mut m = ChaCha8Rng::seed_from_u64(seed ^ 0x5052_4147_5545_0000);
        let past_midnight = m.random_bool(1.0 / 3.0);
        let late_crash = m.random_range(1..=3);
        let friday = !past_midnight && m.random_bool(1.0 / 3.0);
        let mut plan = GuardPlan {
            seed,
            preset: if r.random_bool(0.5) {
                "ftmo-2step"
            } else {
                "ftmo-1step"
            },
            bars,
            crash_bar: r.random_range(2..bars - 4),
            crash_share: r.random_range(0.85..1.6),
            kill_bar: r.random_bool(0.5).then(|| r.random_range(1..bars)),
            refuse_close: if r.random_bool(0.3) { 0.3 } else { 0.0 },
            past_midnight,
            friday,
            drive_timers: true,
            news: None,
            news_to_core: true,
            release_news_holds: true,
        };
        plan.news = GuardNews::from_seed(seed, plan.start(), bars);
        if past_midnight {
            // The midnight is 6 bars after the start: the crash comes before it.
            plan.crash_bar = late_crash;
        }
        plan
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GuardSummary {
    /// Orders sent (entries and exits).
    pub orders: u64,
    /// Closes the book refused.
    pub refused: u64,
    /// The crash came (a position was held after `crash_bar`).
    pub crashed: bool,
    /// The side ended halted.
    pub halted: bool,
    /// Restarts.
    pub restarts: u64,
    /// Guards' days the core's `Timer::GuardDay` ended (at the Prague midnight).
    pub days_ended: u64,
    /// Daily halts that midnight lifted.
    pub halts_lifted: u64,
    /// Runs whose open positions `Timer::Weekend` closed before the week's close.
    pub weekend_flattens: u64,
    /// Orders placed inside a news window of their symbol: flattens (the rule allows them).
    pub news_flattens: u64,
    /// Releases of the exits a news window held (`Timer::HeldExit` at the window's end).
    pub news_releases: u64,
}

struct Pos {
    symbol: String,
    label: String,
    coid: String,
    buy: bool,
    volume: i64,
    price: f64,
}

struct Book {
    rng: ChaCha8Rng,
    refuse_close: f64,
    balance: f64,
    mid: BTreeMap<&'static str, f64>,
    positions: BTreeMap<u64, Pos>,
    next_id: u64,
    journal: Vec<u8>,
    orders: u64,
    refused: u64,
    /// The minute an entry went out while halted, if one did.
    entry_while_halted: Option<String>,
    /// From when (UTC s) no entry may go: the flat window before the weekend.
    flat_from: Option<i64>,
    /// An entry that went out in the flat window before the weekend.
    entry_in_weekend: Option<String>,
    opened_after_halt: bool,
    /// The seed's news calendar (the harness's copy).
    news: Option<GuardNews>,
    /// An order placed inside a news window that the rule does not allow.
    order_in_news: Option<String>,
    /// Orders placed inside a news window that the rule allows (flattens).
    news_flattens: u64,
}

const SPREAD: f64 = 0.00002;

/// An order on the wire: id, operation, position closed, symbol, buy, volume, label.
type Wired = (String, Op, Option<u64>, String, bool, i64, String);

impl Book {
    fn quote(&self, symbol: &str) -> (f64, f64) {
        let m = self.mid.get(symbol).copied().unwrap_or(1.0);
        (m, m + SPREAD)
    }

    fn pnl(&self, p: &Pos) -> f64 {
        let (bid, ask) = self.quote(&p.symbol);
        let units = p.volume as f64 / 100.0;
        if p.buy {
            (bid - p.price) * units
        } else {
            (p.price - ask) * units
        }
    }

    fn equity(&self) -> f64 {
        self.balance + self.positions.values().map(|p| self.pnl(p)).sum::<f64>()
    }

    fn account(&self) -> Account {
        let e = self.equity();
        Account {
            balance: self.balance,
            equity: e,
            free_margin: e,
        }
    }

    fn positions(&self) -> Vec<BrokerPosition> {
        self.positions
            .iter()
            .map(|(id, p)| BrokerPosition {
                position_id: *id,
                symbol: p.symbol.clone(),
                label: p.label.clone(),
                client_order_id: p.coid.clone(),
                buy: p.buy,
                volume: p.volume,
                price: p.price,
            })
            .collect()
    }

    /// Every action the side asks, until it waits for nothing.
    fn drive(&mut self, core: &mut SideCore, now: i64) {
        let mut wire: Vec<Wired> = Vec::new();
        let mut answers: Vec<(String, OrderResult)> = Vec::new();
        loop {
            while let Some(a) = core.poll_action() {
                match a {
                    SideAction::AskAccount => core.handle_account(now, Some(self.account())),
                    SideAction::AskSpec { symbol } => {
                        let spec = SYMBOLS.contains(&symbol.as_str()).then(|| spec(&symbol));
                        core.handle_spec(&symbol, spec);
                    }
                    SideAction::AskMarket { symbols } => {
                        let q: Vec<Option<Quote>> = symbols
                            .iter()
                            .map(|s| {
                                let (bid, ask) = self.quote(s);
                                Some(Quote { bid, ask })
                            })
                            .collect();
                        core.handle_market(&q, true);
                    }
                    SideAction::JournalIntents { records } => {
                        self.journal
                            .extend(encode_lines(&records).expect("encodable"));
                        core.handle_journaled(Ok(()));
                    }
                    SideAction::Journal { record, .. } => {
                        self.journal
                            .extend(encode_lines(&[record]).expect("encodable"));
                    }
                    SideAction::Submit(o) => {
                        self.orders += 1;
                        if o.op == Op::Open && core.halt_now().is_some() {
                            self.entry_while_halted = Some(o.req.client_order_id.clone());
                        }
                        if o.op == Op::Open && self.flat_from.is_some_and(|f| now >= f) {
                            self.entry_in_weekend = Some(o.req.client_order_id.clone());
                        }
                        if let Some((title, end)) = self
                            .news
                            .as_ref()
                            .and_then(|n| n.window(&o.req.symbol, now))
                        {
                            // A flatten (the guard's while halted, the weekend's) beats the
                            // news rule; nothing else goes inside a window.
                            let flatten = o.op == Op::Close
                                && (core.halt_now().is_some()
                                    || self.flat_from.is_some_and(|f| now >= f));
                            if flatten {
                                self.news_flattens += 1;
                            } else {
                                self.order_in_news = Some(format!(
                                    "{} {:?} on {} inside the news window of \"{title}\" (until {end}s)",
                                    o.req.client_order_id, o.op, o.req.symbol
                                ));
                            }
                        }
                        wire.push((
                            o.req.client_order_id.clone(),
                            o.op,
                            o.position_id,
                            o.req.symbol.clone(),
                            o.req.buy,
                            o.req.volume,
                            o.req.label.clone(),
                        ));
                    }
                    SideAction::AskMargins { asks } => {
                        let m: Vec<Option<f64>> = asks.iter().map(|_| Some(100.0)).collect();
                        core.handle_margins(&m);
                    }
                    SideAction::AwaitAnswers => {
                        for (coid, op, pid, symbol, buy, volume, label) in std::mem::take(&mut wire)
                        {
                            let r = self.execute(&coid, op, pid, &symbol, buy, volume, &label);
                            answers.push((coid, r));
                        }
                    }
                    SideAction::LookUp(_) => core.handle_lookup(Ok(None)),
                }
            }
            if answers.is_empty() {
                break;
            }
            let (coid, r) = answers.remove(0);
            core.handle_order_outcome(now, &coid, r);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn execute(
        &mut self,
        coid: &str,
        op: Op,
        pid: Option<u64>,
        symbol: &str,
        buy: bool,
        volume: i64,
        label: &str,
    ) -> OrderResult {
        match op {
            Op::Open => {
                self.next_id += 1;
                let (bid, ask) = self.quote(symbol);
                let price = if buy { ask } else { bid };
                self.positions.insert(
                    self.next_id,
                    Pos {
                        symbol: symbol.to_string(),
                        label: label.to_string(),
                        coid: coid.to_string(),
                        buy,
                        volume,
                        price,
                    },
                );
                OrderResult::Filled {
                    position_id: self.next_id,
                    price,
                    volume,
                }
            }
            Op::Close => {
                if self.refuse_close > 0.0 && self.rng.random_bool(self.refuse_close) {
                    self.refused += 1;
                    return OrderResult::Rejected {
                        code: "TRADING_BAD_VOLUME".into(),
                        msg: "refused by the seed".into(),
                    };
                }
                let Some(p) = pid.and_then(|id| self.positions.remove(&id)) else {
                    return OrderResult::Rejected {
                        code: "POSITION_NOT_FOUND".into(),
                        msg: "no such position".into(),
                    };
                };
                self.balance += self.pnl(&p);
                let (bid, ask) = self.quote(&p.symbol);
                OrderResult::Filled {
                    position_id: pid.unwrap_or(0),
                    price: if p.buy { bid } else { ask },
                    volume,
                }
            }
        }
    }
}

fn spec(symbol: &str) -> SymbolSpec {
    SymbolSpec {
        name: symbol.into(),
        id: if symbol == "EURUSD" { 1 } else { 2 },
        digits: 5,
        pip_position: 4,
        lot_size: LOT,
        min_volume: 100_000,
        step_volume: 100_000,
        max_volume: 10_000_000_000,
        trading_mode: oracle_executor_core::symbols::TradingMode::Enabled,
    }
}

fn config(preset: &str, friday: bool, news: Option<&GuardNews>) -> ExecutorConfig {
    let sym = serde_json::json!({"lot_weak": 1.0, "lot_moderate": 1.0, "lot_strong": 1.0});
    let mut risk = serde_json::json!({"preset": preset, "initial_balance": INITIAL});
    if friday {
        risk["flat_before_weekend"] = serde_json::json!({ "minutes": FLAT_MINUTES });
    }
    if let Some(n) = news {
        // The file is the shell's to read; the core gets its events (`core_of`).
        risk["news"] = serde_json::json!({"file": "news.csv", "minutes": n.minutes});
    }
    from_value(&serde_json::json!({"EURUSD": sym, "GBPUSD": sym, "risk": risk}))
        .expect("a valid config")
}

/// The executor core around a live side from `rep` (as the shell builds it), with the news
/// file's `events`.
fn core_of(cfg: &ExecutorConfig, rep: &Replayed, events: Vec<NewsEvent>) -> ExecutorCore {
    let side = SideCore::new("live", cfg, rep);
    let mut ex = ExecutorCore::new(cfg.clone(), Some(side), None, HashMap::new());
    ex.set_restrictions(&Restrictions::new(&cfg.risk, events));
    ex
}

/// The news events the core is given (none when the plan withholds them).
fn core_news(plan: &GuardPlan) -> Vec<NewsEvent> {
    plan.news
        .as_ref()
        .filter(|_| plan.news_to_core)
        .map(|n| n.events.clone())
        .unwrap_or_default()
}

fn live(ex: &mut ExecutorCore) -> &mut SideCore {
    ex.live.as_mut().expect("the live side")
}

/// The shell's clock of the timers: the time (UTC ms) of the last step (the timers are armed
/// then: the shell arms them at every turn of its loop), and when a daily halt ended at the
/// Prague midnight.
struct Clock {
    last_ms: i64,
    lifted: Option<i64>,
    /// When the exits a news window held were last released (UTC s).
    released: Option<i64>,
}

/// The core's timers due by `t` (UTC s), in deadline order, as the shell handles them: armed
/// at the last step (`last_ms`, the timers' clock is UTC ms here), then each one due fired at
/// its deadline. `Timer::GuardDay`: the guards close their day (a daily halt ends), the
/// journal records it. Checked: it fires at the Prague midnight; a side a crash halted is flat
/// then; a daily halt ends there.
fn timers(
    plan: &GuardPlan,
    ex: &mut ExecutorCore,
    book: &mut Book,
    clock: &mut Clock,
    t: i64,
    sum: &mut GuardSummary,
) -> Result<(), String> {
    let Clock {
        last_ms,
        lifted,
        released,
    } = clock;
    if !plan.drive_timers {
        return Ok(());
    }
    let midnight = prague_midnight(plan.start());
    loop {
        // The shell's turn: the weekends asked of the calendars (the FX weekend on Friday
        // seeds), then the timers armed.
        for symbol in ex.week_ends_due(*last_ms) {
            let we = plan.friday.then_some(WeekEnd {
                close_ms: FRIDAY_CLOSE * 1000,
                open_ms: SUNDAY_OPEN * 1000,
            });
            ex.set_week_end(&symbol, *last_ms, we);
        }
        ex.arm_weekend(*last_ms, *last_ms);
        ex.arm_guard_day(*last_ms, *last_ms);
        // The held exits: released at their news window's end, else now (the book's markets
        // are always open; the core tries again a minute after the last release), as the
        // shell's `next_held_open`.
        let side = live(ex);
        let next = side
            .held_exits()
            .iter()
            .map(|(_, symbol)| side.news_hold_until(symbol, *last_ms).unwrap_or(*last_ms))
            .min()
            .filter(|_| plan.release_news_holds);
        ex.arm_held_exits(*last_ms, *last_ms, next);
        let Some(at) = ex.poll_timeout().filter(|at| *at <= t * 1000) else {
            *last_ms = t * 1000;
            return Ok(());
        };
        let due = ex.handle_timeout(at);
        *last_ms = at;
        if due.contains(&Timer::Weekend) && !ex.handle_weekend(at, at).is_empty() {
            // Flat before the weekend: the closes go out now.
            book.drive(live(ex), at / 1000);
            sum.weekend_flattens += 1;
        }
        if due.contains(&Timer::HeldExit) {
            let sides = ex.release_held_exits(at / 1000, at);
            if !sides.is_empty() {
                book.drive(live(ex), at / 1000);
                // The release's result is no ACK: dropped.
                let _ = live(ex).take_batch_result();
                *released = Some(at / 1000);
                sum.news_releases += 1;
            }
        }
        if !due.contains(&Timer::GuardDay) {
            continue;
        }
        if at != midnight * 1000 {
            return Err(format!(
                "Timer::GuardDay fired at {}s, not at the Prague midnight {midnight}s",
                at / 1000,
            ));
        }
        let before = live(ex).halt_now();
        // Flat by then, unless the book refuses closes (the flatten may still be retrying
        // one refused in the halt's last minute).
        if before.is_some() && !book.positions.is_empty() && book.refuse_close == 0.0 {
            return Err(format!(
                "halted ({:?}) and NOT flat at the day's end: {} position(s)",
                before.map(|h| h.code()),
                book.positions.len()
            ));
        }
        ex.handle_guard_day_end(at);
        book.drive(live(ex), at / 1000);
        sum.days_ended += 1;
        let after = live(ex).halt_now();
        match (before, after) {
            (Some(Halt::DailyLoss { .. }), None) => {
                sum.halts_lifted += 1;
                *lifted = Some(at / 1000);
            }
            (Some(Halt::DailyLoss { .. }), Some(h)) => {
                return Err(format!(
                    "the daily halt did not end at the Prague midnight: {} after it",
                    h.code()
                ));
            }
            _ => {}
        }
        ex.arm_guard_day(at, at);
        if ex.poll_timeout().is_some_and(|n| n <= at) {
            return Err("Timer::GuardDay armed again for the day it ended".into());
        }
    }
}

/// Runs `plan`; `Err` names the seed, the minute and the invariant broken.
pub fn run_guard(plan: &GuardPlan) -> Result<GuardSummary, String> {
    let cfg = config(plan.preset, plan.friday, plan.news.as_ref());
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let mut book = Book {
        rng: ChaCha8Rng::seed_from_u64(plan.seed.wrapping_add(1)),
        refuse_close: plan.refuse_close,
        balance: INITIAL,
        mid: SYMBOLS.iter().map(|s| (*s, 1.2)).collect(),
        positions: BTreeMap::new(),
        next_id: 1000,
        journal: Vec::new(),
        orders: 0,
        refused: 0,
        entry_while_halted: None,
        flat_from: plan.friday.then_some(FRIDAY_CLOSE - FLAT_MINUTES * 60),
        entry_in_weekend: None,
        opened_after_halt: false,
        news: plan.news.clone(),
        order_in_news: None,
        news_flattens: 0,
    };
    let keys: Vec<StreamKey> = SYMBOLS
        .iter()
        .map(|s| key_of(s, Timeframe::M15).unwrap())
        .collect();
    let start = plan.start();
    let mut ex = core_of(&cfg, &Replayed::default(), core_news(plan));
    let mut clock = Clock {
        last_ms: start * 1000,
        lifted: None,
        released: None,
    };
    let mut targets: Vec<Action> = vec![Action::Wait; keys.len()];
    let mut sum = GuardSummary::default();
    let mut crash: Option<(f64, i64)> = None; // (pips per tick per position's direction, ticks left)
    let mut crash_done = false;
    let mut halted_at: Option<i64> = None;
    let fail = |now: i64, what: String| {
        format!(
            "guard seed {} at {}s after the start: {what}\nreplay: {}",
            plan.seed,
            now - start,
            guard_replay_command(plan.seed)
        )
    };
    let allowance = INITIAL
        * if plan.preset == "ftmo-2step" {
            0.05
        } else {
            0.03
        };
    for bar in 0..plan.bars {
        let bt = start + bar as i64 * M15;
        let now = bt + M15 + 2;
        timers(plan, &mut ex, &mut book, &mut clock, now, &mut sum).map_err(|e| fail(now, e))?;
        for k in &keys {
            live(&mut ex).policy.handle_bar(k, bt);
        }
        if plan.kill_bar == Some(bar) {
            // kill -9: the side from its journal's bytes and the book's positions.
            let was = live(&mut ex).halt_now().map(|h| h.code());
            let rep = Replayed::from_bytes(&book.journal);
            ex = core_of(&cfg, &rep, core_news(plan));
            for k in &keys {
                live(&mut ex).policy.handle_bar(k, bt);
            }
            live(&mut ex).handle_reconciled(book.positions());
            book.drive(live(&mut ex), now);
            sum.restarts += 1;
            // The restarted shell's first turn: the weekends asked of the calendars again
            // and the timers armed, before any SIGNAL.
            timers(plan, &mut ex, &mut book, &mut clock, now, &mut sum)
                .map_err(|e| fail(now, e))?;
            if live(&mut ex).halt_now().map(|h| h.code()) != was {
                return Err(fail(
                    now,
                    format!(
                        "the halt did not survive the restart: {was:?} before, {:?} after",
                        live(&mut ex).halt_now().map(|h| h.code())
                    ),
                ));
            }
        }
        // The bar's signals: each model keeps its target or moves to another.
        let items: Vec<Item> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                if rng.random_bool(0.35) {
                    targets[i] =
                        [Action::LongWeak, Action::ShortWeak, Action::Wait][rng.random_range(0..3)];
                }
                Item {
                    key: *k,
                    tf: Timeframe::M15,
                    target: targets[i],
                    bt,
                }
            })
            .collect();
        let before = book.positions.len();
        live(&mut ex).handle_signals(now, &cfg, &items);
        book.drive(live(&mut ex), now);
        if live(&mut ex).take_batch_result().is_none() {
            return Err(fail(now, "the batch did not complete".into()));
        }
        book.drive(live(&mut ex), now);
        if halted_at.is_some() && clock.lifted.is_none() && book.positions.len() > before {
            book.opened_after_halt = true;
        }
        // Between this bar and the next: a quote a minute; the crash when it is due.
        // On a Friday seed, a crash that would run into the flat window is not drawn: the
        // weekend's flatten would close the positions before the equity reached the limit.
        let before_weekend = book.flat_from.is_none_or(|f| now + (TICKS - 3) * 60 < f);
        // Nor while an exit a news window held waits for its end: its release would close a
        // position in the crash's course (and the loss fall short of the limit).
        let no_news_hold = live(&mut ex).held_exits().is_empty();
        if !crash_done
            && bar >= plan.crash_bar
            && !book.positions.is_empty()
            && before_weekend
            && no_news_hold
        {
            let units: f64 = book
                .positions
                .values()
                .map(|p| p.volume as f64 / 100.0)
                .sum();
            let ticks = TICKS - 3;
            // Down to crash_share of the daily allowance below the day's anchor over `ticks`
            // minutes, every position adverse.
            let anchor = live(&mut ex)
                .guard
                .as_ref()
                .and_then(|g| g.daily_floor())
                .map_or(INITIAL, |f| f + allowance);
            let loss = (book.equity() - (anchor - plan.crash_share * allowance)).max(0.0);
            crash = Some((loss / units / ticks as f64, ticks));
            crash_done = true;
            sum.crashed = true;
        }
        for t in 1..TICKS {
            let at = now + t * 60;
            timers(plan, &mut ex, &mut book, &mut clock, at, &mut sum).map_err(|e| fail(at, e))?;
            news_holds_released(plan, &mut ex, &clock, at).map_err(|e| fail(at, e))?;
            for s in SYMBOLS {
                let noise = (rng.random::<f64>() - 0.5) * 0.0004;
                let step = match crash {
                    Some((d, _)) => {
                        // Adverse for what is held on the symbol (long: down, short: up).
                        let long = book
                            .positions
                            .values()
                            .filter(|p| p.symbol == s)
                            .map(|p| if p.buy { 1.0 } else { -1.0 })
                            .sum::<f64>();
                        -d * long.signum()
                    }
                    None => noise,
                };
                if let Some(m) = book.mid.get_mut(s) {
                    *m = (*m + step).max(0.1);
                }
                let (bid, ask) = book.quote(s);
                // The guard evaluated on this quote: its equity (the last account read's, moved
                // by the positions' P&L since) is the book's.
                if let Some(v) = live(&mut ex).handle_quote(at * 1000, s, bid, ask) {
                    let e = v.daily.floor + v.daily.money;
                    if (e - book.equity()).abs() > 0.01 {
                        return Err(fail(
                            at,
                            format!(
                                "the guard's equity {e:.2} is not the book's {:.2}",
                                book.equity()
                            ),
                        ));
                    }
                }
                book.drive(live(&mut ex), at);
                if halted_at.is_none() && live(&mut ex).halt_now().is_some() {
                    halted_at = Some(at);
                }
            }
            if let Some((_, left)) = &mut crash {
                *left -= 1;
                if *left == 0 {
                    crash = None;
                }
            }
            if let Some(c) = &book.entry_while_halted {
                return Err(fail(at, format!("entry {c} sent while halted")));
            }
            if let Some(c) = &book.entry_in_weekend {
                return Err(fail(
                    at,
                    format!("entry {c} sent in the flat window before the weekend"),
                ));
            }
            if let Some(c) = &book.order_in_news {
                return Err(fail(at, format!("order {c} (risk.news)")));
            }
            if plan.friday && at >= FRIDAY_CLOSE && !book.positions.is_empty() {
                return Err(fail(
                    at,
                    format!(
                        "NOT flat at the week's close: {} position(s) open (risk.flat_before_weekend)",
                        book.positions.len()
                    ),
                ));
            }
        }
    }
    let end = start + plan.bars as i64 * M15 + M15;
    timers(plan, &mut ex, &mut book, &mut clock, end, &mut sum).map_err(|e| fail(end, e))?;
    if end > prague_midnight(start) && sum.days_ended == 0 {
        return Err(fail(
            end,
            "the run crossed the Prague midnight and the guard's day never ended (Timer::GuardDay not driven)".into(),
        ));
    }
    if let Some(c) = &book.entry_while_halted {
        return Err(fail(end, format!("entry {c} sent while halted")));
    }
    if book.opened_after_halt {
        return Err(fail(end, "a position was opened after the halt".into()));
    }
    if let Some(c) = &book.order_in_news {
        return Err(fail(end, format!("order {c} (risk.news)")));
    }
    news_holds_released(plan, &mut ex, &clock, end).map_err(|e| fail(end, e))?;
    sum.news_flattens = book.news_flattens;
    sum.halted = live(&mut ex).halt_now().is_some();
    // A daily halt the midnight lifted was checked flat at its end (in `timers`).
    if sum.crashed && clock.lifted.is_none() && !(sum.halted && book.positions.is_empty()) {
        return Err(fail(
            end,
            format!(
                "the crash took the equity through the daily limit but the run ends {} and {} (equity {:.2}, {} position(s))",
                if sum.halted { "halted" } else { "NOT halted" },
                if book.positions.is_empty() {
                    "flat"
                } else {
                    "NOT flat"
                },
                book.equity(),
                book.positions.len()
            ),
        ));
    }
    sum.orders = book.orders;
    sum.refused = book.refused;
    Ok(sum)
}

/// An exit a news window held whose window ended before `now` (UTC s) went at its end: the
/// held exits' release ran after it (a close it sent the book refused is held again and
/// retried), else it is still held, not sent at its end (a SIGNAL's batch may send it later:
/// too late).
fn news_holds_released(
    plan: &GuardPlan,
    ex: &mut ExecutorCore,
    clock: &Clock,
    now: i64,
) -> Result<(), String> {
    let Some(news) = &plan.news else {
        return Ok(());
    };
    for (key, symbol) in live(ex).held_exits() {
        let Some(until) = news.last_end(&symbol, now).filter(|u| *u < now) else {
            continue;
        };
        if clock.released.is_none_or(|r| r <= until) {
            return Err(format!(
                "{}: an exit held by the news window ending at {until}s was never sent at its end (last release {:?})",
                key.model_name(),
                clock.released
            ));
        }
    }
    Ok(())
}

/// The one command that replays guard seed `seed` (the sweep from it, one seed).
pub fn guard_replay_command(seed: u64) -> String {
    format!(
        "DST_SEED_BASE={seed} DST_SEEDS=1 cargo test -p oracle-dst --release --test dst -- guard_seed_sweep --nocapture"
    )
}

/// The run of `seed`'s plan.
pub fn run_guard_seed(seed: u64) -> Result<GuardSummary, String> {
    run_guard(&GuardPlan::from_seed(seed))
}
