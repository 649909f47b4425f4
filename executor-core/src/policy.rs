//! The executor policy: sans-IO, deterministic, time is a parameter.
//!
//! Per model (symbol, timeframe) it tracks the predictor's **virtual target** from SIGNALs and the
//! **real** position it holds at the broker. The real position follows the virtual one only at
//! transitions:
//!
//! - same target as before and real == target → `HOLD`;
//! - real ≠ target → close the real position (exits are always allowed, and a failed exit is
//!   retried on every later signal);
//! - at a **transition** (the target changed since the previous bar's signal) to LONG/SHORT, open
//!   the new position if the risk guard agrees (intensity change = close + reopen);
//! - a refused entry answers `FAIL|<reason>` at the transition, then `WAIT_SYNC|MISSED_ENTRY` on
//!   every later signal until the next transition: it is never chased. A transition the executor
//!   did not see (first signal ever, a gap of bars, a restart without a journal) is a missed entry
//!   too.
//!
//! **Architecture invariant:** this module reads no clock, does no I/O and knows no protobuf. The
//! engine feeds it signals, bars, prices and broker outcomes, and executes the [`Plan`]s it returns.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;

use oracle_ipc::{Action, Timeframe};
use serde::{Deserialize, Serialize};

use crate::config::ExecutorConfig;
pub use crate::key::{KeyText, StreamKey, key_of};
use crate::risk::Halt;
use crate::symbols::TradingMode;
use crate::volume::{SymbolSpec, VolumeError, lots_to_volume};

/// A real position held for a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealPos {
    /// Broker position id (the ACK's ticket).
    pub position_id: u64,
    /// Direction and intensity it was opened for.
    pub action: ActionName,
    /// Volume in cents.
    pub volume: i64,
    /// Fill price.
    pub price: f64,
}

/// Serializable action name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionName(#[serde(with = "action_serde")] pub Action);

mod action_serde {
    use oracle_ipc::Action;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(a: &Action, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(a.as_str())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
        let s = String::deserialize(d)?;
        Action::from_name(&s).ok_or_else(|| serde::de::Error::custom("unknown action"))
    }
}

/// What the policy knows of one model; journaled after every signal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    /// Last virtual target seen (None: never).
    pub target: Option<ActionName>,
    /// Bar time of the last signal.
    pub last_bt: Option<i64>,
    /// The real position.
    pub real: Option<RealPos>,
    /// The current target's entry was refused or missed: wait for the next transition.
    pub missed: bool,
}

/// Why an entry (or, for broker errors, an exit) did not happen. `code()` goes in the ACK,
/// `Display` in the log.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// Symbol not in the config or unknown to the broker.
    UnknownSymbol,
    /// `enabled: false` in executor_config.json.
    SymbolDisabled,
    /// The symbol's state could not be explained at reconciliation.
    Unreconciled(String),
    /// HALTED.
    Halted(Halt),
    /// The bar closed too long ago.
    Stale {
        /// Seconds since the bar closed.
        age: i64,
        /// Limit.
        limit: i64,
    },
    /// No live price for the symbol.
    NoPrice,
    /// Spread above the limit.
    Spread {
        /// Spread now, points.
        points: f64,
        /// Limit, points.
        limit: f64,
    },
    /// Lots → volume failed.
    Volume(VolumeError),
    /// Not enough free margin.
    Margin {
        /// Margin the order needs.
        need: f64,
        /// Free margin now.
        free: f64,
        /// Percent of the free margin allowed.
        pct: f64,
    },
    /// No broker session.
    BrokerDown,
    /// The broker refused (error code from the server).
    Broker {
        /// Server error code (`NOT_ENOUGH_MONEY`…).
        code: String,
        /// Server text.
        msg: String,
    },
    /// The order's outcome is unknown; the symbol waits for reconciliation.
    OutcomeUnknown,
    /// The broker's `tradingMode` of the symbol is not ENABLED (close-only or disabled): no
    /// entry, exits go on.
    TradingMode(TradingMode),
    /// The symbol's market is closed (its broker calendar, or the broker's `MARKET_CLOSED`):
    /// an entry is missed, never chased; an exit is held until the open.
    MarketClosed {
        /// When it opens, UTC Unix milliseconds (None: not known).
        until_ms: Option<i64>,
    },
    /// `risk.flat_before_weekend`: the symbol's weekend is near (or under way): no entry until
    /// its market opens after it (missed, never chased).
    Weekend {
        /// The week's last close, UTC Unix ms.
        close_ms: i64,
        /// The open after the weekend, UTC Unix ms.
        until_ms: i64,
    },
    /// `risk.news`: within ±N minutes of a news event targeting the symbol: no entry (missed,
    /// never chased); an exit is held until the window's end.
    NewsWindow {
        /// The event's title.
        title: String,
        /// The first instant after the window, UTC Unix ms.
        until_ms: i64,
    },
}

/// The symbol's market is closed at the decision's instant (from the broker's trading calendar,
/// computed by the shell: the core reads no calendar and no clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed {
    /// The first open instant, UTC Unix milliseconds (None: not within the calendar's reach).
    pub until_ms: Option<i64>,
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.until_ms {
            Some(ms) => write!(
                f,
                "market closed until {}",
                oracle_ipc::Iso(ms.div_euclid(1000))
            ),
            None => write!(f, "market closed (no open instant known)"),
        }
    }
}

impl Refusal {
    /// Reason code for `ACK|…|FAIL|<code>`.
    pub fn code(&self) -> String {
        match self {
            Refusal::UnknownSymbol => "UNKNOWN_SYMBOL".into(),
            Refusal::SymbolDisabled => "SYMBOL_DISABLED".into(),
            Refusal::Unreconciled(_) => "SYMBOL_UNRECONCILED".into(),
            Refusal::Halted(h) => h.code().into(),
            Refusal::Stale { .. } => "STALE_SIGNAL".into(),
            Refusal::NoPrice => "NO_PRICE".into(),
            Refusal::Spread { .. } => "SPREAD".into(),
            Refusal::Volume(VolumeError::BelowMin { .. }) => "VOLUME_BELOW_MIN".into(),
            Refusal::Volume(VolumeError::AboveMax { .. }) => "VOLUME_ABOVE_MAX".into(),
            Refusal::Volume(VolumeError::Invalid { .. }) => "VOLUME_INVALID".into(),
            Refusal::Margin { .. } => "MARGIN".into(),
            Refusal::BrokerDown => "BROKER_DOWN".into(),
            Refusal::Broker { code, .. } => {
                let c: String = code
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_uppercase()
                        } else {
                            '_'
                        }
                    })
                    .take(40)
                    .collect();
                format!("BROKER_{c}")
            }
            Refusal::OutcomeUnknown => "OUTCOME_UNKNOWN".into(),
            Refusal::TradingMode(m) => format!("TRADING_MODE_{}", m.name()),
            Refusal::MarketClosed { .. } => "MARKET_CLOSED".into(),
            Refusal::Weekend { .. } => "WEEKEND".into(),
            Refusal::NewsWindow { .. } => "NEWS_WINDOW".into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnknownSymbol => {
                write!(
                    f,
                    "symbol is not in executor_config.json or unknown to the broker"
                )
            }
            Refusal::SymbolDisabled => write!(
                f,
                "symbol is disabled (\"enabled\": false in executor_config.json); exits still run"
            ),
            Refusal::Unreconciled(why) => write!(
                f,
                "symbol not traded: its broker state could not be explained ({why}); check the account, then restart"
            ),
            Refusal::Halted(Halt::DailyLoss { equity, floor, .. }) => write!(
                f,
                "HALTED by the daily loss limit: equity {equity:.2} fell to/below the day's floor {floor:.2}; entries resume at the next broker day, exits still run"
            ),
            Refusal::Halted(Halt::Operator { .. }) => write!(
                f,
                "HALTED by a person (oracle halt): entries stay refused until oracle resume, exits still run"
            ),
            Refusal::Halted(Halt::MaxDrawdown { equity, floor }) => write!(
                f,
                "HALTED by the maximum drawdown limit: equity {equity:.2} fell to/below {floor:.2}; entries stay refused until a person intervenes, exits still run"
            ),
            Refusal::Stale { age, limit } => write!(
                f,
                "signal is stale: its bar closed {age}s ago (limit {limit}s); entry skipped, not chased"
            ),
            Refusal::NoPrice => write!(f, "no live price for the symbol; entry skipped"),
            Refusal::Spread { points, limit } => {
                write!(
                    f,
                    "spread {points:.1} points is above the limit {limit:.1}; entry skipped"
                )
            }
            Refusal::Volume(e) => write!(f, "volume: {e}"),
            Refusal::Margin { need, free, pct } => write!(
                f,
                "not enough free margin: the order needs {need:.2}, free margin is {free:.2} (at most {pct}% may be used)"
            ),
            Refusal::BrokerDown => write!(f, "no broker connection; entry skipped"),
            Refusal::Broker { code, msg } => write!(f, "broker refused: {code} {msg}"),
            Refusal::OutcomeUnknown => write!(
                f,
                "order outcome unknown (no answer from the broker); symbol paused until reconciliation"
            ),
            Refusal::TradingMode(m) => write!(
                f,
                "the broker has the symbol in trading mode {m} (not ENABLED): entry missed, not chased; exits still run"
            ),
            Refusal::MarketClosed { until_ms } => write!(
                f,
                "{}; entry missed, not chased",
                Closed {
                    until_ms: *until_ms
                }
            ),
            Refusal::Weekend { close_ms, until_ms } => write!(
                f,
                "flat before the weekend (risk.flat_before_weekend): the market closes for the weekend at {} and opens at {}; entry missed, not chased",
                oracle_ipc::Iso(close_ms.div_euclid(1000)),
                oracle_ipc::Iso(until_ms.div_euclid(1000))
            ),
            Refusal::NewsWindow { title, until_ms } => write!(
                f,
                "news window (risk.news): \"{title}\" targets the symbol; no order until {}; entry missed, not chased",
                oracle_ipc::Iso(until_ms.div_euclid(1000))
            ),
        }
    }
}

/// Market facts the entry check needs, gathered by the engine just before deciding.
#[derive(Clone, Debug)]
pub struct Market<'a> {
    /// Signal processing time, Unix seconds.
    pub now: i64,
    /// Broker symbol, when known.
    pub spec: Option<&'a SymbolSpec>,
    /// (bid, ask) now.
    pub quote: Option<(f64, f64)>,
    /// Free margin now.
    pub free_margin: Option<f64>,
    /// Current halt.
    pub halt: Option<Halt>,
    /// Broker session up.
    pub connected: bool,
    /// The symbol's market is closed now (None: open, or no calendar known).
    pub closed: Option<Closed>,
}

/// An order to open, ready for the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenOrder {
    /// Direction/intensity.
    pub action: Action,
    /// Volume in cents.
    pub volume: i64,
    /// Lots (for the log).
    pub lots: f64,
    /// `baseSlippagePrice` (ask for a buy, bid for a sell).
    pub base_price: f64,
    /// `slippageInPoints`.
    pub slippage_points: u32,
}

/// What the engine must do for one signal.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The model.
    pub key: StreamKey,
    /// Close this position first.
    pub close: Option<RealPos>,
    /// Then the entry: `Ok(order)` to send, `Err(refusal)` if refused, `None` if no entry.
    pub entry: Option<Result<OpenOrder, Refusal>>,
    /// True when an entry was due but missed (not fresh) → WAIT_SYNC.
    pub missed: bool,
    /// The signal's target.
    pub target: Action,
    /// Bar time.
    pub bar_time: i64,
    /// Margin check still to do for the entry (needs the broker's expected margin).
    pub check_margin: bool,
    /// An exit was due but the market is closed: it is held (not sent) until the open.
    pub held: Option<Closed>,
}

impl Plan {
    /// A plan that does nothing (no exit, no entry) for `key`'s signal `target` at `bar_time`.
    pub fn nothing(key: &StreamKey, target: Action, bar_time: i64) -> Self {
        Plan {
            key: *key,
            close: None,
            entry: None,
            missed: false,
            target,
            bar_time,
            check_margin: false,
            held: None,
        }
    }
}

/// What happened to one broker request.
#[derive(Clone, Debug, PartialEq)]
pub enum Exec {
    /// Filled: position id, price, volume.
    Filled {
        /// Position id.
        position_id: u64,
        /// Fill price.
        price: f64,
        /// Volume.
        volume: i64,
    },
    /// Refused.
    Refused(Refusal),
}

/// The ACK outcome, owned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AckKind {
    /// `OK|T:|P:`.
    Ok {
        /// Ticket (position id).
        ticket: u64,
        /// Price.
        price: f64,
    },
    /// `FAIL|reason`.
    Fail(String),
    /// `WAIT_SYNC|reason`.
    WaitSync(String),
    /// `HOLD`.
    Hold,
}

/// Bar times remembered per stream (for transition freshness).
const BAR_MEMORY: usize = 8;

/// The policy state of all models.
#[derive(Debug, Default)]
pub struct Policy {
    /// Per model.
    pub models: BTreeMap<StreamKey, ModelState>,
    /// Symbols refused until reconciliation explains them, with why.
    pub unreconciled: HashMap<String, String>,
    bars: HashMap<StreamKey, VecDeque<i64>>,
}

impl Policy {
    /// Empty policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// A closed bar was streamed (remembered so a signal's freshness can be judged).
    pub fn handle_bar(&mut self, key: &StreamKey, time: i64) {
        let q = self.bars.entry(*key).or_default();
        if q.back().is_none_or(|&b| time > b) {
            q.push_back(time);
            if q.len() > BAR_MEMORY {
                q.pop_front();
            }
        }
    }

    /// The open time of the latest bar streamed on `key`'s stream (`None`: none yet).
    pub fn last_bar(&self, key: &StreamKey) -> Option<i64> {
        self.bars.get(key).and_then(|q| q.back().copied())
    }

    /// Is `bt` the bar right after `last`? Only a bar that was streamed can be: its predecessor
    /// is the streamed bar before it (weekends and gaps are then handled); when `bt` is the
    /// oldest bar remembered, exactly one timeframe later. A bar not streamed (not closed yet,
    /// in the future, or no bar time at all) is never consecutive: no entry is made on it.
    fn consecutive(&self, key: &StreamKey, tf: Timeframe, last: i64, bt: i64) -> bool {
        let Some(q) = self.bars.get(key) else {
            return false;
        };
        match q.iter().position(|&b| b == bt) {
            Some(0) => bt - last == tf.seconds(),
            Some(i) => q[i - 1] == last,
            None => false,
        }
    }

    /// Decides what to do for a signal (`tf`, `bt` from its tags).
    pub fn decide(
        &self,
        cfg: &ExecutorConfig,
        key: &StreamKey,
        tf: Timeframe,
        target: Action,
        bt: i64,
        m: &Market<'_>,
    ) -> Plan {
        let st = self.models.get(key).cloned().unwrap_or_default();
        let mut plan = Plan::nothing(key, target, bt);
        if let Some(r) = &st.real
            && r.action.0 != target
        {
            match m.closed {
                // Held, not refused: the shell's timer sends it at the first open instant.
                Some(c) => plan.held = Some(c),
                None => plan.close = Some(r.clone()),
            }
        }
        if target == Action::Wait || st.real.as_ref().is_some_and(|r| r.action.0 == target) {
            return plan;
        }
        let transition = st.target.map(|a| a.0) != Some(target);
        let fresh = transition
            && st.target.is_some()
            && st.last_bt.is_some_and(|l| self.consecutive(key, tf, l, bt));
        if !transition || !fresh {
            // No transition (still waiting after a refused entry) or a transition we did not
            // see happen: never chase.
            plan.missed = true;
            return plan;
        }
        plan.entry = Some(self.check_entry(cfg, key, tf, target, bt, m));
        plan.check_margin = matches!(plan.entry, Some(Ok(_)));
        plan
    }

    fn check_entry(
        &self,
        cfg: &ExecutorConfig,
        key: &StreamKey,
        tf: Timeframe,
        target: Action,
        bt: i64,
        m: &Market<'_>,
    ) -> Result<OpenOrder, Refusal> {
        let Some(sc) = cfg.symbols.get(key.symbol.as_str()) else {
            return Err(Refusal::UnknownSymbol);
        };
        if !sc.enabled {
            return Err(Refusal::SymbolDisabled);
        }
        if let Some(why) = self.unreconciled.get(key.symbol.as_str()) {
            return Err(Refusal::Unreconciled(why.clone()));
        }
        if let Some(h) = m.halt {
            return Err(Refusal::Halted(h));
        }
        if let Some(c) = m.closed {
            return Err(Refusal::MarketClosed {
                until_ms: c.until_ms,
            });
        }
        let age = m.now - (bt + tf.seconds());
        if age > cfg.risk.stale_after_secs {
            return Err(Refusal::Stale {
                age,
                limit: cfg.risk.stale_after_secs,
            });
        }
        if !m.connected {
            return Err(Refusal::BrokerDown);
        }
        let Some(spec) = m.spec else {
            return Err(Refusal::UnknownSymbol);
        };
        if !spec.trading_mode.allows_entries() {
            return Err(Refusal::TradingMode(spec.trading_mode));
        }
        let Some((bid, ask)) = m.quote else {
            return Err(Refusal::NoPrice);
        };
        let points = (ask - bid) / spec.point();
        if let Some(limit) = sc.max_spread_points.or(cfg.risk.max_spread_points)
            && points > limit + 1e-9
        {
            return Err(Refusal::Spread { points, limit });
        }
        // An entry targets a position (1..=3); a flat target, were one checked, reads the weak
        // lots as before.
        let lots = sc.lots[target.intensity().lot_index().unwrap_or(0)];
        let volume = lots_to_volume(lots, spec).map_err(Refusal::Volume)?;
        let base_price = if target.direction() > 0 { ask } else { bid };
        Ok(OpenOrder {
            action: target,
            volume,
            lots,
            base_price,
            slippage_points: sc.slippage_points.unwrap_or(cfg.risk.slippage_points),
        })
    }

    /// Margin check for a planned entry: `need` is the broker's expected margin for the order.
    pub fn margin_check(cfg: &ExecutorConfig, need: f64, free: f64) -> Result<(), Refusal> {
        let pct = cfg.risk.max_margin_use_pct;
        if need > free * pct / 100.0 {
            return Err(Refusal::Margin { need, free, pct });
        }
        Ok(())
    }

    /// Applies the outcome of a plan and returns the ACK. `close` / `open` are the broker
    /// outcomes of the plan's steps (`None` when the step was not attempted).
    pub fn complete(&mut self, plan: &Plan, close: Option<Exec>, open: Option<Exec>) -> AckKind {
        let st = self.models.entry(plan.key).or_default();
        let transition = st.target.map(|a| a.0) != Some(plan.target);
        st.target = Some(ActionName(plan.target));
        st.last_bt = Some(plan.bar_time);
        if transition {
            st.missed = false;
        }
        // Exit first.
        let mut closed: Option<(u64, f64)> = None;
        match close {
            Some(Exec::Filled { price, .. }) => {
                closed = st.real.take().map(|r| (r.position_id, price));
            }
            Some(Exec::Refused(r)) => {
                // The exit failed: the real position stays, the entry (if any) was not tried.
                if plan.target != Action::Wait {
                    st.missed = true;
                }
                return AckKind::Fail(r.code());
            }
            None => {}
        }
        if plan.target == Action::Wait {
            st.missed = false;
            return match closed {
                Some((ticket, price)) => AckKind::Ok { ticket, price },
                // Real differs from virtual until the held exit goes at the open.
                None if plan.held.is_some() => AckKind::WaitSync("MARKET_CLOSED".into()),
                None => AckKind::Hold,
            };
        }
        if st.real.as_ref().is_some_and(|r| r.action.0 == plan.target) {
            return AckKind::Hold;
        }
        if plan.missed {
            st.missed = true;
            return AckKind::WaitSync("MISSED_ENTRY".into());
        }
        match (&plan.entry, &open) {
            (Some(Err(r)), _) | (Some(Ok(_)), Some(Exec::Refused(r))) => {
                st.missed = true;
                AckKind::Fail(r.code())
            }
            (
                Some(Ok(o)),
                Some(Exec::Filled {
                    position_id,
                    price,
                    volume,
                }),
            ) => {
                let (position_id, price, volume) = (*position_id, *price, *volume);
                st.real = Some(RealPos {
                    position_id,
                    action: ActionName(o.action),
                    volume,
                    price,
                });
                st.missed = false;
                AckKind::Ok {
                    ticket: position_id,
                    price,
                }
            }
            _ => {
                st.missed = true;
                AckKind::WaitSync("MISSED_ENTRY".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SymbolConfig, from_value};
    use crate::volume::tests::eurusd;

    const M15: i64 = 900;

    fn cfg() -> ExecutorConfig {
        let mut c = from_value(&serde_json::json!({})).unwrap();
        c.symbols.insert(
            "EURUSD".into(),
            SymbolConfig {
                enabled: true,
                lots: [0.01, 0.03, 0.05],
                max_spread_points: Some(20.0),
                slippage_points: None,
                broker_symbol: "EURUSD".into(),
            },
        );
        c
    }

    struct H {
        p: Policy,
        c: ExecutorConfig,
        spec: SymbolSpec,
        k: StreamKey,
        next_id: u64,
        halt: Option<Halt>,
        spread: f64,
    }

    impl H {
        fn new() -> Self {
            H {
                p: Policy::new(),
                c: cfg(),
                spec: eurusd(),
                k: crate::key::key_of("EURUSD", Timeframe::M15).unwrap(),
                next_id: 100,
                halt: None,
                spread: 0.00010,
            }
        }
        /// Signal for bar index `i` (bar time i*900), executed with a broker that fills all.
        fn sig(&mut self, i: i64, a: Action) -> (Plan, AckKind) {
            let bt = i * M15;
            self.p.handle_bar(&self.k, bt);
            let m = Market {
                now: bt + M15 + 1,
                spec: Some(&self.spec),
                quote: Some((1.1, 1.1 + self.spread)),
                free_margin: Some(1e6),
                halt: self.halt,
                connected: true,
                closed: None,
            };
            let plan = self.p.decide(&self.c, &self.k, Timeframe::M15, a, bt, &m);
            let close = plan.close.as_ref().map(|_| Exec::Filled {
                position_id: 0,
                price: 1.2,
                volume: 0,
            });
            let open = match &plan.entry {
                Some(Ok(o)) => {
                    self.next_id += 1;
                    Some(Exec::Filled {
                        position_id: self.next_id,
                        price: o.base_price,
                        volume: o.volume,
                    })
                }
                _ => None,
            };
            let ack = self.p.complete(&plan, close, open);
            (plan, ack)
        }
        fn real(&self) -> Option<Action> {
            self.p
                .models
                .get(&self.k)
                .and_then(|s| s.real.as_ref().map(|r| r.action.0))
        }
    }

    #[test]
    fn an_entry_on_a_symbol_not_enabled_by_the_broker_is_refused_naming_the_mode_and_exits_go_on() {
        for mode in [
            TradingMode::CloseOnly,
            TradingMode::DisabledWithPendingsExecution,
            TradingMode::DisabledWithoutPendingsExecution,
        ] {
            let mut h = H::new();
            h.sig(1, Action::Wait);
            assert!(matches!(h.sig(2, Action::LongWeak).1, AckKind::Ok { .. }));
            h.spec.trading_mode = mode;
            // The exit goes on; the new entry is refused with the mode in its reason.
            let (p, a) = h.sig(3, Action::ShortWeak);
            assert!(p.close.is_some(), "{mode}: the exit must go on");
            assert_eq!(p.entry, Some(Err(Refusal::TradingMode(mode))));
            let code = format!("TRADING_MODE_{}", mode.name());
            assert!(oracle_ipc::valid_reason(&code), "{code}");
            assert_eq!(a, AckKind::Fail(code));
            assert!(Refusal::TradingMode(mode).to_string().contains(mode.name()));
            assert_eq!(h.real(), None);
            // Enabled again: the missed entry is not chased, the next transition trades.
            h.spec.trading_mode = TradingMode::Enabled;
            assert_eq!(
                h.sig(4, Action::ShortWeak).1,
                AckKind::WaitSync("MISSED_ENTRY".into())
            );
            assert_eq!(h.real(), None);
            assert!(matches!(h.sig(5, Action::LongWeak).1, AckKind::Ok { .. }));
        }
    }

    #[test]
    fn follows_only_at_transitions() {
        let mut h = H::new();
        assert_eq!(h.sig(1, Action::Wait).1, AckKind::Hold);
        let (p, a) = h.sig(2, Action::LongWeak);
        assert_eq!(p.entry.unwrap().unwrap().volume, 100_000);
        assert!(matches!(a, AckKind::Ok { ticket: 101, .. }));
        assert_eq!(h.sig(3, Action::LongWeak).1, AckKind::Hold);
        // Intensity change: close + reopen.
        let (p, a) = h.sig(4, Action::LongStrong);
        assert!(p.close.is_some());
        assert_eq!(p.entry.unwrap().unwrap().volume, 500_000);
        assert!(matches!(a, AckKind::Ok { ticket: 102, .. }));
        // Exit.
        let (p, a) = h.sig(5, Action::Wait);
        assert!(p.close.is_some() && p.entry.is_none());
        assert_eq!(
            a,
            AckKind::Ok {
                ticket: 102,
                price: 1.2
            }
        );
        assert_eq!(h.real(), None);
    }

    #[test]
    fn refused_entry_is_not_chased() {
        let mut h = H::new();
        h.sig(1, Action::Wait);
        h.spread = 0.00050; // 50 points > 20
        let (p, a) = h.sig(2, Action::ShortModerate);
        assert!(matches!(p.entry, Some(Err(Refusal::Spread { .. }))));
        assert_eq!(a, AckKind::Fail("SPREAD".into()));
        h.spread = 0.00001;
        for i in 3..6 {
            let (p, a) = h.sig(i, Action::ShortModerate);
            assert!(p.entry.is_none() && p.close.is_none());
            assert_eq!(a, AckKind::WaitSync("MISSED_ENTRY".into()));
        }
        assert_eq!(h.real(), None);
        // The next transition trades again.
        assert_eq!(h.sig(6, Action::Wait).1, AckKind::Hold);
        assert!(matches!(h.sig(7, Action::LongWeak).1, AckKind::Ok { .. }));
    }

    #[test]
    fn first_signal_and_gaps_are_missed_entries() {
        let mut h = H::new();
        // First signal ever is LONG: we did not see the transition.
        assert_eq!(
            h.sig(1, Action::LongWeak).1,
            AckKind::WaitSync("MISSED_ENTRY".into())
        );
        h.sig(2, Action::Wait);
        // Bars 3 and 4 were streamed but their signals never arrived: the transition may have
        // happened earlier.
        h.p.handle_bar(&h.k, 3 * M15);
        h.p.handle_bar(&h.k, 4 * M15);
        assert_eq!(
            h.sig(5, Action::ShortWeak).1,
            AckKind::WaitSync("MISSED_ENTRY".into())
        );
    }

    #[test]
    fn halted_refuses_entries_but_exits_run() {
        let mut h = H::new();
        h.sig(1, Action::Wait);
        assert!(matches!(h.sig(2, Action::LongWeak).1, AckKind::Ok { .. }));
        h.halt = Some(Halt::DailyLoss {
            equity: 1.0,
            floor: 2.0,
            day_start: 0,
        });
        // Intensity change while halted: the exit runs, the entry is refused.
        let (p, a) = h.sig(3, Action::LongModerate);
        assert!(p.close.is_some());
        assert_eq!(a, AckKind::Fail("HALTED_DAILY_LOSS".into()));
        assert_eq!(h.real(), None);
        let (_, a) = h.sig(4, Action::LongModerate);
        assert_eq!(a, AckKind::WaitSync("MISSED_ENTRY".into()));
    }

    #[test]
    fn disabled_stale_volume_refusals() {
        let mut h = H::new();
        h.sig(1, Action::Wait);
        h.c.symbols.get_mut("EURUSD").unwrap().enabled = false;
        assert_eq!(
            h.sig(2, Action::LongWeak).1,
            AckKind::Fail("SYMBOL_DISABLED".into())
        );
        h.c.symbols.get_mut("EURUSD").unwrap().enabled = true;
        h.sig(3, Action::Wait);
        h.c.symbols.get_mut("EURUSD").unwrap().lots = [0.001, 0.03, 0.05];
        assert_eq!(
            h.sig(4, Action::LongWeak).1,
            AckKind::Fail("VOLUME_BELOW_MIN".into())
        );
        // Stale: decided 10 minutes after the bar closed.
        h.sig(5, Action::Wait);
        h.p.handle_bar(&h.k, 6 * M15);
        let m = Market {
            now: 7 * M15 + 600,
            spec: Some(&h.spec),
            quote: Some((1.1, 1.1001)),
            free_margin: None,
            halt: None,
            connected: true,
            closed: None,
        };
        let p =
            h.p.decide(&h.c, &h.k, Timeframe::M15, Action::LongStrong, 6 * M15, &m);
        assert!(matches!(
            p.entry,
            Some(Err(Refusal::Stale { age: 600, .. }))
        ));
    }

    /// A signal for a bar that was never streamed is not a seen transition, even exactly one
    /// period after the model's last bar: no entry (the old fallback guessed "consecutive").
    #[test]
    fn a_bar_not_streamed_is_never_a_fresh_transition() {
        let mut h = H::new();
        h.sig(1, Action::Wait);
        let bt = 2 * M15;
        let m = Market {
            now: bt + M15 + 1,
            spec: Some(&h.spec),
            quote: Some((1.1, 1.1001)),
            free_margin: None,
            halt: None,
            connected: true,
            closed: None,
        };
        let p =
            h.p.decide(&h.c, &h.k, Timeframe::M15, Action::LongWeak, bt, &m);
        assert!(p.entry.is_none() && p.missed, "{p:?}");
        // Once streamed, the same signal is a fresh transition.
        h.p.handle_bar(&h.k, bt);
        let p =
            h.p.decide(&h.c, &h.k, Timeframe::M15, Action::LongWeak, bt, &m);
        assert!(matches!(p.entry, Some(Ok(_))), "{p:?}");
    }

    #[test]
    fn margin_check() {
        let c = cfg();
        assert!(Policy::margin_check(&c, 80.0, 100.0).is_ok());
        let e = Policy::margin_check(&c, 95.0, 100.0).unwrap_err();
        assert_eq!(e.code(), "MARGIN");
        assert!(e.to_string().contains("needs 95.00"));
    }

    #[test]
    fn failed_exit_is_retried() {
        let mut h = H::new();
        h.sig(1, Action::Wait);
        h.sig(2, Action::LongWeak);
        let bt = 3 * M15;
        h.p.handle_bar(&h.k, bt);
        let m = Market {
            now: bt + M15 + 1,
            spec: Some(&h.spec),
            quote: Some((1.1, 1.1001)),
            free_margin: None,
            halt: None,
            connected: true,
            closed: None,
        };
        let plan = h.p.decide(&h.c, &h.k, Timeframe::M15, Action::Wait, bt, &m);
        let a =
            h.p.complete(&plan, Some(Exec::Refused(Refusal::BrokerDown)), None);
        assert_eq!(a, AckKind::Fail("BROKER_DOWN".into()));
        assert_eq!(h.real(), Some(Action::LongWeak));
        // Next bar, still WAIT: the exit is tried again.
        let (p, a) = h.sig(4, Action::Wait);
        assert!(p.close.is_some());
        assert!(matches!(a, AckKind::Ok { .. }));
    }

    proptest::proptest! {
        /// Over any sequence of targets, spreads, broker refusals and lost bars: at most one entry
        /// per run of the same target, an entry only right at its transition, and the real
        /// position is always FLAT or the current target once the exit succeeded.
        #[test]
        fn never_chases_never_doubles(steps in proptest::collection::vec((0usize..7, proptest::bool::ANY, proptest::bool::ANY, 0u8..10), 1..80)) {
            let mut h = H::new();
            let mut i = 0i64;
            let mut prev: Option<Action> = None;
            let mut entries_in_run = 0;
            for (a, wide, reject, gap) in steps {
                let a = Action::ALL[a];
                i += 1;
                if gap == 0 {
                    // A bar whose signal was lost.
                    h.p.handle_bar(&h.k, i * M15);
                    i += 1;
                    prev = None;
                }
                h.spread = if wide { 0.0005 } else { 0.0001 };
                let bt = i * M15;
                h.p.handle_bar(&h.k, bt);
                let m = Market { now: bt + M15 + 1, spec: Some(&h.spec), quote: Some((1.1, 1.1 + h.spread)), free_margin: None, halt: None, connected: true, closed: None };
                let plan = h.p.decide(&h.c, &h.k, Timeframe::M15, a, bt, &m);
                let close = plan.close.as_ref().map(|_| Exec::Filled { position_id: 0, price: 1.2, volume: 0 });
                let open = match &plan.entry {
                    Some(Ok(o)) if reject => { let _ = o; Some(Exec::Refused(Refusal::BrokerDown)) }
                    Some(Ok(o)) => { h.next_id += 1; Some(Exec::Filled { position_id: h.next_id, price: o.base_price, volume: o.volume }) }
                    _ => None,
                };
                let transition = prev != Some(a);
                if !transition { proptest::prop_assert!(plan.entry.is_none(), "entry without a transition"); }
                if prev.is_none() && a != Action::Wait { proptest::prop_assert!(plan.entry.is_none(), "entry after a lost bar"); }
                if transition { entries_in_run = 0; }
                if plan.entry.is_some() { entries_in_run += 1; }
                proptest::prop_assert!(entries_in_run <= 1);
                h.p.complete(&plan, close, open);
                let real = h.real();
                proptest::prop_assert!(real.is_none() || real == Some(a), "real {real:?} vs target {a:?}");
                prev = Some(a);
            }
        }
    }
}
