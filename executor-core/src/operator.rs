//! A person's commands to the running executor (`oracle halt [--flatten]`, `oracle flatten
//! SYMBOL|all`, `oracle resume`) and the guard's status (`oracle status`), sans-IO.
//!
//! The shell's operator channel parses a command into an [`OperatorCommand`] and hands it to
//! [`ExecutorCore::handle_operator`] with its origin (who asked, over what): the answer is one line
//! saying what was done (`Ok`) or why it was refused (`Err`). Every command, done or refused, is
//! journaled on each side present ([`Record::Operator`], synced) with its origin, so a restart
//! sees a halt in force. The closes a command asks for come out of each side's
//! [`SideCore::poll_action`] like a batch's orders (intents journaled and synced before the
//! wire): the shell drives each side after the command as it does after a batch.
//!
//! - `Halt { flatten }`: entries are refused on every side (reason `HALTED_OPERATOR`), exits go
//!   on; with `flatten`, every position is closed too. Ends only by `Resume`.
//! - `Flatten { symbol }`: closes every position (of `symbol`, or all), never refused by a halt;
//!   each model then waits for its next transition (never chased). Does not halt.
//! - `Resume`: lifts a person's halt and the prop-firm guard's (a maximum-loss halt ends only
//!   so; a daily one also ends by itself at the next midnight).
//!
//! [`ExecutorCore::guard_status`] is the read-only view for `oracle status`: the halt and its
//! reason, the headroom to each limit in money and percent (the prop-firm guard's, or the plain
//! risk guard's by [`risk_headroom`] at the last account read), trading days, best-day share.

use serde::{Deserialize, Serialize};

use crate::exec::{ExecutorCore, SideId};
use crate::journal::Record;
use crate::propfirm::Headroom;
use crate::risk::RiskGuard;
use crate::side::{SideAction, SideCore};

/// A person's command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum OperatorCommand {
    /// Refuse every entry until `Resume`; with `flatten`, close every position too.
    Halt {
        /// Close every position as well.
        flatten: bool,
    },
    /// Close every position of `symbol` (`None`: all); exits are never refused.
    Flatten {
        /// The symbol (as in `executor_config.json`), or all.
        symbol: Option<String>,
    },
    /// Lift a halt (a person's, or the guard's).
    Resume,
}

impl std::fmt::Display for OperatorCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OperatorCommand::Halt { flatten: false } => write!(f, "halt"),
            OperatorCommand::Halt { flatten: true } => write!(f, "halt --flatten"),
            OperatorCommand::Flatten { symbol: Some(s) } => write!(f, "flatten {s}"),
            OperatorCommand::Flatten { symbol: None } => write!(f, "flatten all"),
            OperatorCommand::Resume => write!(f, "resume"),
        }
    }
}

/// A person's halt in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorHalt {
    /// When (UTC ms).
    pub at_ms: i64,
    /// Who halted (the command's origin).
    pub origin: String,
}

/// The halt in force on a side, as `oracle status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HaltStatus {
    /// The ACK reason entries are refused with (`HALTED_DAILY_LOSS`, `HALTED_MAX_DRAWDOWN`,
    /// `HALTED_OPERATOR`).
    pub reason: String,
    /// Since (UTC ms).
    pub since_ms: i64,
    /// Who: `guard`, `risk`, or the operator command's origin.
    pub by: String,
    /// When it ends by itself (UTC ms: the next midnight for a daily halt), `None`: only by
    /// `oracle resume`.
    pub ends_ms: Option<i64>,
}

/// The guard as `oracle status` shows it (the answering side: live, else paper).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardStatus {
    /// `live` or `paper`.
    pub side: String,
    /// The `risk.preset` (`None`: the plain risk guard).
    pub preset: Option<String>,
    /// The halt in force (entries refused, exits go on).
    pub halted: Option<HaltStatus>,
    /// The last balance the guard saw.
    pub balance: Option<f64>,
    /// The last equity the guard saw (the broker's, or estimated from quotes since).
    pub equity: Option<f64>,
    /// Headroom to the daily loss limit (money, percent of the initial balance, share used).
    pub daily: Option<Headroom>,
    /// Headroom to the maximum loss limit.
    pub max_loss: Option<Headroom>,
    /// The share of a limit at which the guard closes everything and halts (0.8).
    pub act_at_share: Option<f64>,
    /// When the guard's day ends (UTC ms, the next midnight Europe/Prague).
    pub next_day_start_ms: Option<i64>,
    /// Trading days counted (days with a position opened).
    pub trading_days: Option<u32>,
    /// Trading days needed (0: no minimum).
    pub min_trading_days: Option<u32>,
    /// Best day's profit / total profit (`None` while the total is not positive).
    pub best_day_share: Option<f64>,
    /// The preset's largest best-day share.
    pub best_day_max_share: Option<f64>,
    /// Open positions on this side.
    pub open_positions: usize,
    /// The account's deposit currency (the broker's; `None`: not read, as on paper).
    #[serde(default)]
    pub currency: Option<String>,
    /// Traded symbols quoted in another currency than the deposit currency with no conversion
    /// symbol quoted: the equity between two account reads moves by their P&L as quoted
    /// (approximate; the next read corrects it).
    #[serde(default)]
    pub approximate: Vec<String>,
}

/// A held symbol's flat-before-the-weekend instant, as `oracle status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeekendStatus {
    /// The symbol (as in `executor_config.json`).
    pub symbol: String,
    /// When its positions are closed (UTC ms: `minutes` before `close_ms`); `None`: its
    /// calendar states no weekend (asked again a minute later).
    pub flat_at_ms: Option<i64>,
    /// Its week's last close (UTC ms).
    pub close_ms: Option<i64>,
    /// Its market's next open after it (UTC ms): entries are refused until then.
    pub open_ms: Option<i64>,
}

/// A symbol's news window, active or next, as `oracle status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewsStatus {
    /// The symbol (as in `executor_config.json`).
    pub symbol: String,
    /// The window's first instant (UTC ms).
    pub start_ms: i64,
    /// Its last instant (UTC ms, included): exits held by it go one second later.
    pub end_ms: i64,
    /// The event's title.
    pub title: String,
    /// Whether the window is in force now (else it is the next one).
    pub active: bool,
}

/// The funded account's optional rules (`risk.flat_before_weekend`, `risk.news`) as `oracle
/// status` shows them, on the answering side (live, else paper).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestrictionsStatus {
    /// `risk.flat_before_weekend.minutes` (`None`: the rule is off).
    pub flat_before_weekend_minutes: Option<u32>,
    /// Each symbol with an open position (either side): when it is flattened.
    pub weekend: Vec<WeekendStatus>,
    /// `risk.news.minutes` (`None`: the rule is off).
    pub news_minutes: Option<u32>,
    /// Each configured symbol's news window in force now, else its next one.
    pub news: Vec<NewsStatus>,
}

fn side_name(id: SideId) -> &'static str {
    match id {
        SideId::Live => "live",
        SideId::Paper => "paper",
    }
}

impl<L: AsRef<SideCore> + AsMut<SideCore>, P: AsRef<SideCore> + AsMut<SideCore>>
    ExecutorCore<L, P>
{
    /// A person's command at `now_ms` (UTC ms) from `origin`: `Ok` = what was done, `Err` = why
    /// it was refused. Journaled on each side with its origin; the closes it asks for come out
    /// of each side's [`SideCore::poll_action`] (drive every side after this).
    pub fn handle_operator(
        &mut self,
        now_ms: i64,
        cmd: &OperatorCommand,
        origin: &str,
    ) -> Result<String, String> {
        let sides = self.sides();
        let res = if sides.is_empty() {
            Err(format!(
                "{cmd}: refused: no side (neither live nor paper) is running"
            ))
        } else {
            self.apply_operator(now_ms, cmd, origin, &sides)
        };
        let (ok, result) = match &res {
            Ok(s) => (true, s.clone()),
            Err(s) => (false, s.clone()),
        };
        for id in sides {
            if let Some(s) = self.side_mut(id) {
                s.journal_now(Record::Operator {
                    ts_ms: now_ms,
                    origin: origin.to_string(),
                    command: cmd.clone(),
                    ok,
                    result: result.clone(),
                });
            }
        }
        res
    }

    fn apply_operator(
        &mut self,
        now_ms: i64,
        cmd: &OperatorCommand,
        origin: &str,
        sides: &[SideId],
    ) -> Result<String, String> {
        let cfg = self.cfg.clone();
        let now = now_ms.div_euclid(1000);
        match cmd {
            OperatorCommand::Halt { flatten } => {
                let mut parts = Vec::new();
                for &id in sides {
                    let Some(s) = self.side_mut(id) else { continue };
                    if s.operator_halt.is_none() {
                        s.operator_halt = Some(OperatorHalt {
                            at_ms: now_ms,
                            origin: origin.to_string(),
                        });
                    }
                    let closing = if *flatten {
                        s.start_flatten(now, None, &format!("{cmd} by {origin}"))
                    } else {
                        0
                    };
                    parts.push(if *flatten {
                        format!("{}: halted, closing {closing} position(s)", side_name(id))
                    } else {
                        format!(
                            "{}: halted ({} position(s) left open)",
                            side_name(id),
                            s.open_positions(None)
                        )
                    });
                }
                Ok(format!(
                    "halted: entries refused (HALTED_OPERATOR) until oracle resume, exits go on; {}",
                    parts.join("; ")
                ))
            }
            OperatorCommand::Flatten { symbol } => {
                if let Some(sym) = symbol {
                    let held = sides.iter().any(|&id| {
                        self.side(id)
                            .is_some_and(|s| s.open_positions(Some(sym.as_str())) > 0)
                    });
                    if !cfg.symbols.contains_key(sym) && !held {
                        return Err(format!(
                            "{cmd}: refused: symbol {sym:?} is not in executor_config.json and no position is open on it"
                        ));
                    }
                }
                let mut parts = Vec::new();
                for &id in sides {
                    let Some(s) = self.side_mut(id) else { continue };
                    let n = s.start_flatten(now, symbol.as_deref(), &format!("{cmd} by {origin}"));
                    parts.push(format!("{}: closing {n} position(s)", side_name(id)));
                }
                Ok(format!("{cmd}: {}", parts.join("; ")))
            }
            OperatorCommand::Resume => {
                let mut parts = Vec::new();
                for &id in sides {
                    let Some(s) = self.side_mut(id) else { continue };
                    let lifted = s.resume(now_ms);
                    if !lifted.is_empty() {
                        parts.push(format!("{}: lifted {}", side_name(id), lifted.join(", ")));
                    }
                }
                if parts.is_empty() {
                    Err(format!("{cmd}: refused: nothing is halted"))
                } else {
                    Ok(format!(
                        "resumed: entries allowed again; {}",
                        parts.join("; ")
                    ))
                }
            }
        }
    }

    /// A quote (spot event) of `symbol` at `now_ms` (UTC ms), fed to each side: with a
    /// `risk.preset`, a side with an open position on the symbol evaluates its guard, which may
    /// halt and close every position (drive every side after this).
    pub fn handle_quote(&mut self, now_ms: i64, symbol: &str, bid: f64, ask: f64) {
        for id in self.sides() {
            if let Some(s) = self.side_mut(id) {
                s.handle_quote(now_ms, symbol, bid, ask);
            }
        }
    }

    /// The earliest end of a guard's day (UTC ms, the next midnight Europe/Prague): the shell
    /// calls [`ExecutorCore::handle_guard_day_end`] then (converting to its timers' clock).
    pub fn guard_day_deadline(&self) -> Option<i64> {
        [SideId::Live, SideId::Paper]
            .into_iter()
            .filter_map(|id| self.side(id)?.guard.as_ref().map(|g| g.next_day_start()))
            .min()
    }

    /// Arms [`crate::gather::Timer::GuardDay`] for [`ExecutorCore::guard_day_deadline`]:
    /// `now_utc_ms` the executor's clock and `now_ms` the timers' clock, both now (disarmed
    /// without a guard). When it fires: [`ExecutorCore::handle_guard_day_end`].
    pub fn arm_guard_day(&mut self, now_utc_ms: i64, now_ms: i64) {
        let at = self
            .guard_day_deadline()
            .map(|d| now_ms.saturating_add(d.saturating_sub(now_utc_ms).max(0)));
        self.gather.set_guard_day(at);
    }

    /// Midnight of the guards' day at `now_ms` (UTC ms): each side's guard closes its day (a
    /// daily halt ends); journaled.
    pub fn handle_guard_day_end(&mut self, now_ms: i64) {
        for id in self.sides() {
            if let Some(s) = self.side_mut(id) {
                s.handle_guard_day_end(now_ms);
            }
        }
    }

    /// The funded account's optional rules at `now_ms` (UTC ms) as `oracle status` shows them:
    /// the flat instant of each symbol with an open position on either side, each configured
    /// symbol's news window in force or next. `None` with both rules off (or no side).
    pub fn restrictions_status(&self, now_ms: i64) -> Option<RestrictionsStatus> {
        let r = &self.answering()?.restrict;
        if !r.any() {
            return None;
        }
        let held: std::collections::BTreeSet<&str> = self
            .sides()
            .into_iter()
            .filter_map(|id| self.side(id))
            .flat_map(|s| {
                s.policy
                    .models
                    .iter()
                    .filter(|(_, st)| st.real.is_some())
                    .map(|(k, _)| k.symbol.as_str())
            })
            .collect();
        let weekend = if r.weekend_minutes.is_some() {
            held.into_iter()
                .map(|sym| {
                    let flat = r.flat_at(sym);
                    WeekendStatus {
                        symbol: sym.to_string(),
                        flat_at_ms: flat.map(|(at, _)| at),
                        close_ms: flat.map(|(_, we)| we.close_ms),
                        open_ms: flat.map(|(_, we)| we.open_ms),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let now = now_ms.div_euclid(1000);
        let news = self
            .cfg
            .symbols
            .keys()
            .filter_map(|sym| {
                let w = r.current_or_next_news_window(sym, now)?;
                Some(NewsStatus {
                    symbol: sym.clone(),
                    start_ms: w.start.saturating_mul(1000),
                    end_ms: w.end.saturating_mul(1000),
                    active: w.start <= now && now <= w.end,
                    title: w.title,
                })
            })
            .collect();
        Some(RestrictionsStatus {
            flat_before_weekend_minutes: r.weekend_minutes,
            weekend,
            news_minutes: r.news_minutes,
            news,
        })
    }

    /// The guard as `oracle status` shows it, for the answering side (live, else paper);
    /// `None` with no side.
    pub fn guard_status(&self) -> Option<GuardStatus> {
        let id = self.answering_id()?;
        let s = self.side(id)?;
        Some(s.guard_status(side_name(id)))
    }
}

/// Headroom to the plain risk guard's two limits (no `risk.preset`) at `equity`, by the guard's
/// own floors ([`RiskGuard::update`]): daily, below the day's anchor, and the static drawdown,
/// both sized on the initial balance. `None` for one the guard cannot size yet (no initial
/// balance, no day begun).
pub fn risk_headroom(risk: &RiskGuard, equity: f64) -> (Option<Headroom>, Option<Headroom>) {
    let Some(initial) = risk.initial().filter(|i| *i > 0.0) else {
        return (None, None);
    };
    let cfg = risk.config();
    let head = |floor: f64, allowance: f64| Headroom {
        floor,
        money: equity - floor,
        pct_of_initial: (equity - floor) / initial * 100.0,
        share_used: if allowance > 0.0 {
            ((floor + allowance - equity) / allowance).max(0.0)
        } else {
            0.0
        },
    };
    let daily = risk.day().map(|(_, anchor)| {
        let allowance = initial * cfg.daily_loss_pct / 100.0;
        head(anchor - allowance, allowance)
    });
    let allowance = initial * cfg.max_drawdown_pct / 100.0;
    (daily, Some(head(initial - allowance, allowance)))
}

impl SideCore {
    /// Queues a synced journal write of `record` (no answer; a failed write is logged by the
    /// shell).
    pub fn journal_now(&mut self, record: Record) {
        self.push_action(SideAction::Journal { record, sync: true });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Replayed;
    use crate::risk::{Account, RiskConfig};

    const NOW: i64 = 1_736_899_200;

    fn acc(balance: f64, equity: f64) -> Account {
        Account {
            balance,
            equity,
            free_margin: equity,
        }
    }

    #[test]
    fn the_restrictions_status_shows_each_held_symbols_flat_instant_and_the_news_window_in_force_or_next()
     {
        use crate::exec::ExecutorCore;
        use crate::policy::{ActionName, ModelState, RealPos};
        use crate::restrictions::{Restrictions, WeekEnd, parse_news};
        use oracle_ipc::{Action, Timeframe};
        let cfg = crate::config::from_value(&serde_json::json!({
            "EURUSD": {"lot_weak": 1.0, "lot_moderate": 1.0, "lot_strong": 1.0},
            "GBPUSD": {"lot_weak": 1.0, "lot_moderate": 1.0, "lot_strong": 1.0}
        }))
        .expect("valid config");
        // EURUSD holds a position, GBPUSD's model is flat.
        let mut rep = Replayed::default();
        let state = |real: bool| ModelState {
            target: Some(ActionName(Action::LongWeak)),
            last_bt: Some(NOW - 900),
            real: real.then_some(RealPos {
                position_id: 7,
                action: ActionName(Action::LongWeak),
                volume: 100_000,
                price: 1.1,
            }),
            missed: false,
        };
        rep.models.insert(
            crate::key::key_of("EURUSD", Timeframe::M15).unwrap(),
            state(true),
        );
        rep.models.insert(
            crate::key::key_of("GBPUSD", Timeframe::M15).unwrap(),
            state(false),
        );
        let side = SideCore::new("live", &cfg, &rep);
        let mut ex: ExecutorCore =
            ExecutorCore::new(cfg, Some(side), None, std::collections::HashMap::new());
        let now_ms = NOW * 1000;
        // Both rules off: nothing to show.
        ex.set_restrictions(&Restrictions::default());
        assert_eq!(ex.restrictions_status(now_ms), None);
        // Flat 15 minutes before the weekend; news windows +-2 minutes: one USD event in force
        // (1 minute ago), one EUR event in an hour.
        let at = |s: i64| {
            jiff::Timestamp::from_second(NOW + s)
                .expect("a time")
                .to_string()
        };
        let news = format!("{},USD,NFP\n{},EUR,ECB\n", at(-60), at(3_600));
        ex.set_restrictions(&Restrictions {
            weekend_minutes: Some(15),
            news_minutes: Some(2),
            news: parse_news("news.csv", &news).expect("news"),
            ..Restrictions::default()
        });
        let we = WeekEnd {
            close_ms: now_ms + 7_200_000,
            open_ms: now_ms + 180_000_000,
        };
        ex.set_week_end("EURUSD", now_ms, Some(we));
        ex.set_week_end("GBPUSD", now_ms, Some(we));
        let st = ex.restrictions_status(now_ms).expect("the rules are on");
        assert_eq!(st.flat_before_weekend_minutes, Some(15));
        assert_eq!(st.news_minutes, Some(2));
        // Only the held symbol, flat 15 minutes before its close.
        assert_eq!(st.weekend.len(), 1, "{st:?}");
        assert_eq!(st.weekend[0].symbol, "EURUSD");
        assert_eq!(st.weekend[0].flat_at_ms, Some(we.close_ms - 900_000));
        assert_eq!(
            (st.weekend[0].close_ms, st.weekend[0].open_ms),
            (Some(we.close_ms), Some(we.open_ms))
        );
        // EURUSD: the USD window in force; GBPUSD: the same (USD), in force too.
        let eur = st
            .news
            .iter()
            .find(|n| n.symbol == "EURUSD")
            .expect("EURUSD");
        assert!(eur.active, "{eur:?}");
        assert_eq!(eur.title, "NFP");
        assert_eq!(
            (eur.start_ms, eur.end_ms),
            ((NOW - 180) * 1000, (NOW + 60) * 1000)
        );
        // Two minutes on, the USD window is over: EURUSD shows the next (EUR), not in force.
        let later = ex
            .restrictions_status(now_ms + 120_000)
            .expect("the rules are on");
        let eur = later
            .news
            .iter()
            .find(|n| n.symbol == "EURUSD")
            .expect("EURUSD");
        assert!(!eur.active, "{eur:?}");
        assert_eq!(eur.title, "ECB");
        assert_eq!(eur.start_ms, (NOW + 3_480) * 1000);
        // The weekend rule alone: no news shown.
        ex.set_restrictions(&Restrictions {
            weekend_minutes: Some(15),
            ..Restrictions::default()
        });
        let st = ex
            .restrictions_status(now_ms)
            .expect("the weekend rule is on");
        assert!(st.news.is_empty(), "{st:?}");
        assert_eq!(st.news_minutes, None);
    }

    #[test]
    fn the_plain_guards_headroom_is_money_and_percent_above_each_floor() {
        let mut r = RiskGuard::new(
            RiskConfig {
                daily_loss_pct: 5.0,
                max_drawdown_pct: 10.0,
                ..RiskConfig::default()
            },
            Some(100_000.0),
        );
        // Before the day begins only the drawdown is sized.
        let (d, m) = risk_headroom(&r, 100_000.0);
        assert!(d.is_none());
        assert_eq!(m.map(|m| m.floor), Some(90_000.0));
        r.update(NOW, acc(100_000.0, 100_000.0));
        let (d, m) = risk_headroom(&r, 98_000.0);
        let (d, m) = (d.expect("daily"), m.expect("max"));
        assert_eq!((d.floor, d.money), (95_000.0, 3_000.0));
        assert!((d.pct_of_initial - 3.0).abs() < 1e-9, "{d:?}");
        assert!((d.share_used - 0.4).abs() < 1e-9, "{d:?}");
        assert_eq!((m.floor, m.money), (90_000.0, 8_000.0));
        assert!((m.pct_of_initial - 8.0).abs() < 1e-9, "{m:?}");
        assert!((m.share_used - 0.2).abs() < 1e-9, "{m:?}");
        // Above the anchor nothing of the allowance is used.
        let (d, _) = risk_headroom(&r, 101_000.0);
        assert_eq!(d.map(|d| d.share_used), Some(0.0));
    }

    #[test]
    fn the_plain_guard_without_an_initial_balance_sizes_no_limit() {
        let r = RiskGuard::new(RiskConfig::default(), None);
        assert_eq!(risk_headroom(&r, 100_000.0), (None, None));
        // An empty account's first read (balance 0) sizes no limit either: no percent of 0.
        let r = RiskGuard::new(RiskConfig::default(), Some(0.0));
        assert_eq!(risk_headroom(&r, 100_000.0), (None, None));
    }

    #[test]
    fn the_plain_guards_status_has_the_headroom_and_account_of_the_last_read() {
        let cfg = crate::config::from_value(&serde_json::json!({
            "EURUSD": {"lot_weak": 1.0, "lot_moderate": 1.0, "lot_strong": 1.0},
            "risk": {"daily_loss_pct": 4, "max_drawdown_pct": 8, "initial_balance": 50000.0}
        }))
        .expect("valid config");
        let mut core = SideCore::new("live", &cfg, &Replayed::default());
        let st = core.guard_status("live");
        assert_eq!(st.preset, None);
        assert_eq!((st.balance, st.equity), (None, None), "nothing read yet");
        assert!(st.daily.is_none(), "no day begun: {st:?}");
        // The day's anchor 50 000 (daily floor 48 000), the drawdown's floor 46 000.
        let first = acc(50_000.0, 50_000.0);
        core.store_account(NOW, first);
        core.apply_risk(NOW, first);
        let later = acc(50_000.0, 49_000.0);
        core.store_account(NOW + 60, later);
        core.apply_risk(NOW + 60, later);
        let st = core.guard_status("live");
        assert_eq!((st.balance, st.equity), (Some(50_000.0), Some(49_000.0)));
        let d = st.daily.expect("the daily limit is sized");
        assert_eq!((d.floor, d.money), (48_000.0, 1_000.0));
        assert!((d.pct_of_initial - 2.0).abs() < 1e-9, "{d:?}");
        assert!((d.share_used - 0.5).abs() < 1e-9, "{d:?}");
        let m = st.max_loss.expect("the drawdown is sized");
        assert_eq!((m.floor, m.money), (46_000.0, 3_000.0));
        assert!((m.share_used - 0.25).abs() < 1e-9, "{m:?}");
        assert!(st.halted.is_none());
    }
}
