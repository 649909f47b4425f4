//! What the executor-core tests share (`tests/{guard,mutants_guard,market_hours,funded_rules,
//! side,mutants_policy,mutants_volume}.rs`): EURUSD's facts, the configs, a scripted book that
//! answers a side's actions on a plain integer clock (UTC s) with no runtime, the trading
//! calendars, and an M1 EURUSD model's core. Each test file sets the knobs it needs (the
//! account, the quote, refusals, a trading calendar).
#![allow(dead_code)]

use oracle_ctrader::calendar::{Holiday, TradingCalendar};
use std::collections::BTreeSet;

use oracle_executor_core::broker::{OrderLookup, OrderResult, Quote};
use oracle_executor_core::config::{ExecutorConfig, from_value};
use oracle_executor_core::journal::{Record, Replayed, encode_lines};
use oracle_executor_core::key::key_of;
use oracle_executor_core::policy::{AckKind, ActionName, Closed, ModelState, RealPos, StreamKey};
use oracle_executor_core::risk::Account;
use oracle_executor_core::side::{BatchResult, Item, SideAction, SideCore};
use oracle_executor_core::volume::SymbolSpec;
use oracle_ipc::{Action, Timeframe};

/// One lot of EURUSD in cTrader volume (cents of units): 100 000 units, a pip's move is 10.
pub const LOT: i64 = 10_000_000;
/// A minute, in seconds.
pub const M1: i64 = 60;
/// A bar open time (a Monday, 2021-03-01 00:00 UTC, 01:00 in Prague), for M15 bars.
pub const T0: i64 = 1_614_556_800;
/// An M15 bar, in seconds.
pub const M15: i64 = 900;
/// An hour and a day, in seconds (a trading schedule's units).
pub const H: u32 = 3600;
pub const D: u32 = 86_400;
/// Friday 2026-12-04 22:00 UTC: the FX week closes.
pub const FRI_2200: i64 = 1_796_421_600;
/// Saturday 2026-12-05 12:00 UTC.
pub const SAT_NOON: i64 = 1_796_472_000;
/// Sunday 2026-12-06 22:00 UTC: the FX week opens.
pub const SUN_2200: i64 = 1_796_594_400;

/// EURUSD as cTrader sends it: 1 lot = 10,000,000 cents, min = step = 0.01 lot.
pub fn eurusd() -> SymbolSpec {
    SymbolSpec {
        name: "EURUSD".into(),
        id: 1,
        digits: 5,
        pip_position: 4,
        lot_size: 10_000_000,
        min_volume: 100_000,
        step_volume: 100_000,
        max_volume: 10_000_000_000,
        trading_mode: oracle_executor_core::symbols::TradingMode::Enabled,
    }
}

/// EURUSD at 0.01 / 0.03 / 0.05 lot, the plain risk guard.
pub fn plain_cfg() -> ExecutorConfig {
    from_value(&serde_json::json!({
        "EURUSD": {"lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}
    }))
    .expect("valid config")
}

/// FTMO 2-Step on a 100 000 account: daily 5 000, maximum 10 000, acting at 80%; one lot of
/// EURUSD for every strength.
pub fn ftmo_cfg() -> ExecutorConfig {
    from_value(&serde_json::json!({
        "EURUSD": {"lot_weak": 1.0, "lot_moderate": 1.0, "lot_strong": 1.0},
        "risk": {"preset": "ftmo-2step", "initial_balance": 100000.0}
    }))
    .expect("valid config")
}

/// FX hours: Sunday 22:00 – Friday 22:00 UTC, Christmas Day closed.
pub fn fx() -> TradingCalendar {
    TradingCalendar::new(
        "UTC",
        &[(22 * H, 5 * D + 22 * H)],
        &[Holiday {
            name: "Christmas Day".into(),
            time_zone: "UTC".into(),
            // 2000-12-25, recurring.
            date_days: 11_316,
            recurring: true,
            start_second: None,
            end_second: None,
        }],
    )
    .expect("valid calendar")
}

/// An index: New York 18:00 – 17:00 next day, Sunday to Friday (a daily hour's break).
pub fn index() -> TradingCalendar {
    let s: Vec<(u32, u32)> = (0..5)
        .map(|d| (d * D + 18 * H, (d + 1) * D + 17 * H))
        .collect();
    TradingCalendar::new("America/New_York", &s, &[]).expect("valid calendar")
}

/// A scripted book with a trading calendar (the market is closed where it says): 10 000 of
/// balance, fills of 100 000 units at 1.1, batches decided with [`plain_cfg`].
pub fn hours_book(cal: TradingCalendar) -> Book {
    let mut b = Book::new(plain_cfg());
    b.hours = Some(cal);
    b.account = account(10_000.0, 10_000.0);
    b.fill_volume = 100_000;
    b
}

/// The M1 EURUSD model.
pub fn key() -> StreamKey {
    key_of("EURUSD", Timeframe::M1).unwrap()
}

/// The EURUSD model on `tf`.
pub fn key_on(tf: Timeframe) -> StreamKey {
    key_of("EURUSD", tf).unwrap()
}

/// A model whose last signal, `target`, was for the bar [`T0`], holding `volume` of EURUSD at
/// 1.1 in `action`'s direction as the position `position_id`.
pub fn held(position_id: u64, action: Action, target: Action, volume: i64) -> ModelState {
    ModelState {
        target: Some(ActionName(target)),
        last_bt: Some(T0),
        real: Some(RealPos {
            position_id,
            action: ActionName(action),
            volume,
            price: 1.1,
        }),
        missed: false,
    }
}

/// A side deciding with `cfg` from the journal's view `rep`, the bars [`T0`] and `T0 + M15`
/// streamed on each of `keys`.
pub fn side_at_t0(cfg: &ExecutorConfig, rep: &Replayed, keys: &[StreamKey]) -> SideCore {
    let mut core = SideCore::new("live", cfg, rep);
    for k in keys {
        core.policy.handle_bar(k, T0);
        core.policy.handle_bar(k, T0 + M15);
    }
    core
}

/// A signal of the M1 EURUSD model for the bar opened at `bt`.
pub fn item(target: Action, bt: i64) -> Item {
    item_for(&key(), target, bt)
}

/// A signal of the model `k` for the bar opened at `bt`.
pub fn item_for(k: &StreamKey, target: Action, bt: i64) -> Item {
    Item {
        key: *k,
        tf: k.timeframe,
        target,
        bt,
    }
}

/// The same LONG_WEAK target again on the bar opened at `open` (the market's open after an
/// entry missed while it was closed), a minute later: missed, never chased, no order sent.
pub fn assert_entry_not_chased_at(book: &mut Book, core: &mut SideCore, open: i64) {
    core.policy.handle_bar(&key(), open);
    let out = book.run(core, open + M1, &[item(Action::LongWeak, open)]);
    assert_eq!(
        out[0].0,
        AckKind::WaitSync("MISSED_ENTRY".into()),
        "{out:?}"
    );
    assert!(book.submitted.is_empty(), "{:?}", book.submitted);
}

/// A side (with [`plain_cfg`]) whose M1 EURUSD model's last signal was `target` at `bt - M1`
/// holding `real` (100 000 units at 1.1), with the bars `bt - M1` and `bt` streamed (a signal
/// at `bt` is a fresh transition).
pub fn core_at(target: Action, real: Option<Action>, bt: i64) -> SideCore {
    let mut rep = Replayed::default();
    rep.models.insert(
        key(),
        ModelState {
            target: Some(ActionName(target)),
            last_bt: Some(bt - M1),
            real: real.map(|a| RealPos {
                position_id: 7,
                action: ActionName(a),
                volume: 100_000,
                price: 1.1,
            }),
            missed: false,
        },
    );
    let mut core = SideCore::new("live", &plain_cfg(), &rep);
    core.policy.handle_bar(&key(), bt - M1);
    core.policy.handle_bar(&key(), bt);
    core
}

pub fn account(balance: f64, equity: f64) -> Account {
    Account {
        balance,
        equity,
        free_margin: equity,
    }
}

/// A scripted book: answers every action of a side, fills every order at its bid (or refuses
/// it), keeps the journal bytes and a trace of what it was asked.
pub struct Book {
    /// `account`, `spec <symbol>`, `sync <coids>` (`sync failed …`), `submit <coid>`,
    /// `margins <n>`, `await`, `lookup <coid>`, in order.
    pub trace: Vec<String>,
    pub journal: Vec<u8>,
    pub account: Account,
    /// (bid, ask) of every symbol; orders fill at the bid.
    pub quote: (f64, f64),
    pub next_position: u64,
    /// Each order sent (client order id), and whether it bought ([`Book::sent`]).
    pub submitted: Vec<String>,
    buys: Vec<bool>,
    /// Close orders the broker refuses (`MARKET_MOVED`).
    pub refuse_closes: bool,
    /// Every order refused with (code, message).
    pub refuse_all: Option<(&'static str, &'static str)>,
    /// The volume of a fill.
    pub fill_volume: i64,
    /// The market is closed where this calendar says (none: always open).
    pub hours: Option<TradingCalendar>,
    /// The config a batch of [`Book::run`] is decided with.
    pub cfg: ExecutorConfig,
    /// Client order ids whose answer never comes (`Unknown`).
    pub silent: BTreeSet<String>,
    /// What a lookup finds.
    pub found: Option<OrderResult>,
    /// The journal's fsync fails.
    pub journal_broken: bool,
}

impl Book {
    /// 100 000 of balance and equity, EURUSD at 1.1 / 1.10002, one-lot fills, `cfg`'s batches.
    pub fn new(cfg: ExecutorConfig) -> Self {
        Book {
            trace: Vec::new(),
            journal: Vec::new(),
            account: account(100_000.0, 100_000.0),
            quote: (1.1, 1.10002),
            next_position: 100,
            submitted: Vec::new(),
            buys: Vec::new(),
            refuse_closes: false,
            refuse_all: None,
            fill_volume: LOT,
            hours: None,
            cfg,
            silent: BTreeSet::new(),
            found: None,
            journal_broken: false,
        }
    }

    /// The market at `now` (UTC s) by [`Book::hours`]: closed until its next open, or open.
    pub fn closed(&self, now: i64) -> Option<Closed> {
        let cal = self.hours.as_ref()?;
        let ms = now * 1000;
        (!cal.is_open(ms)).then(|| Closed {
            until_ms: cal.next_open(ms),
        })
    }

    /// Does every action the side asks until it waits for nothing; `step` runs before each
    /// order outcome is fed back (it may change the broker's account).
    pub fn drive_with(
        &mut self,
        core: &mut SideCore,
        now: i64,
        step: &mut dyn FnMut(&mut SideCore, &mut Account),
    ) {
        let mut wire: Vec<String> = Vec::new();
        let mut answers: Vec<(String, OrderResult)> = Vec::new();
        loop {
            while let Some(a) = core.poll_action() {
                self.perform(core, now, a, &mut wire, &mut answers);
            }
            if answers.is_empty() {
                break;
            }
            let (coid, r) = answers.remove(0);
            step(core, &mut self.account);
            core.handle_order_outcome(now, &coid, r);
        }
    }

    /// Does every action the side asks until it waits for nothing.
    pub fn drive(&mut self, core: &mut SideCore, now: i64) {
        self.drive_with(core, now, &mut |_, _| {});
    }

    /// A batch of signals at `now`, decided with [`Book::cfg`]: its result (then a flatten asked
    /// while it ran starts).
    pub fn run(&mut self, core: &mut SideCore, now: i64, items: &[Item]) -> BatchResult {
        let out = self.batch(core, now, items);
        self.drive(core, now);
        out
    }

    /// [`Book::run`] up to the batch's result only (the same loop as the shell's driver).
    pub fn batch(&mut self, core: &mut SideCore, now: i64, items: &[Item]) -> BatchResult {
        core.handle_signals(now, &self.cfg, items);
        self.drive(core, now);
        core.take_batch_result().expect("the batch completes")
    }

    /// Answers one action (an order's answer goes to `answers`, fed back by the caller).
    pub fn perform(
        &mut self,
        core: &mut SideCore,
        now: i64,
        a: SideAction,
        wire: &mut Vec<String>,
        answers: &mut Vec<(String, OrderResult)>,
    ) {
        match a {
            SideAction::AskAccount => {
                self.trace.push("account".into());
                core.handle_account(now, Some(self.account));
            }
            SideAction::AskSpec { symbol } => {
                self.trace.push(format!("spec {symbol}"));
                core.handle_spec(&symbol, (symbol == "EURUSD").then(eurusd));
            }
            SideAction::AskMarket { symbols } => {
                let q: Vec<Option<Quote>> = symbols
                    .iter()
                    .map(|_| {
                        Some(Quote {
                            bid: self.quote.0,
                            ask: self.quote.1,
                        })
                    })
                    .collect();
                let c: Vec<Option<Closed>> = symbols.iter().map(|_| self.closed(now)).collect();
                core.handle_market_hours(&q, true, &c);
            }
            SideAction::JournalIntents { records } => {
                let coids: Vec<String> = records.iter().map(coid_of).collect();
                if self.journal_broken {
                    self.trace.push(format!("sync failed {}", coids.join(",")));
                    core.handle_journaled(Err("disk full".into()));
                } else {
                    self.journal
                        .extend(encode_lines(&records).expect("encodable"));
                    self.trace.push(format!("sync {}", coids.join(",")));
                    core.handle_journaled(Ok(()));
                }
            }
            SideAction::Journal { record, .. } => {
                self.journal
                    .extend(encode_lines(&[record]).expect("encodable"));
            }
            SideAction::Submit(o) => {
                let coid = o.req.client_order_id.clone();
                self.trace.push(format!("submit {coid}"));
                self.submitted.push(coid.clone());
                self.buys.push(o.req.buy);
                wire.push(coid);
            }
            SideAction::AskMargins { asks } => {
                self.trace.push(format!("margins {}", asks.len()));
                let m: Vec<Option<f64>> = asks.iter().map(|_| Some(50.0)).collect();
                core.handle_margins(&m);
            }
            SideAction::AwaitAnswers => {
                self.trace.push("await".into());
                for c in std::mem::take(wire) {
                    let r = if let Some((code, msg)) = self.refuse_all {
                        OrderResult::Rejected {
                            code: code.into(),
                            msg: msg.into(),
                        }
                    } else if self.silent.contains(&c) {
                        OrderResult::Unknown
                    } else if self.refuse_closes && !c.ends_with("-O") {
                        OrderResult::Rejected {
                            code: "MARKET_MOVED".into(),
                            msg: "no".into(),
                        }
                    } else {
                        self.next_position += 1;
                        OrderResult::Filled {
                            position_id: self.next_position,
                            price: self.quote.0,
                            volume: self.fill_volume,
                        }
                    };
                    answers.push((c, r));
                }
            }
            SideAction::LookUp(OrderLookup {
                client_order_id, ..
            }) => {
                self.trace.push(format!("lookup {client_order_id}"));
                core.handle_lookup(Ok(self.found.clone()));
            }
        }
    }

    /// The journal's records.
    pub fn records(&self) -> Vec<Record> {
        String::from_utf8(self.journal.clone())
            .expect("utf-8")
            .lines()
            .map(|l| Record::from_line(l).expect("a record"))
            .collect()
    }

    /// Each order sent: its client order id and whether it bought.
    pub fn sent(&self) -> Vec<(String, bool)> {
        self.submitted
            .iter()
            .cloned()
            .zip(self.buys.iter().copied())
            .collect()
    }

    /// The client order ids sent.
    pub fn coids(&self) -> Vec<String> {
        self.submitted.clone()
    }

    /// Forgets the orders sent so far.
    pub fn clear_sent(&mut self) {
        self.submitted.clear();
        self.buys.clear();
    }
}

/// An intent's client order id (empty for another record).
pub fn coid_of(r: &Record) -> String {
    match r {
        Record::Intent { coid, .. } => coid.clone(),
        _ => String::new(),
    }
}
