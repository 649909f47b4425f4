//! The prop-firm guard: a firm's loss limits computed exactly, on every equity update (sans-IO).
//!
//! Presets ([`Preset`]): `ftmo-2step` (daily loss 5% of the initial balance below the balance at
//! the previous midnight Europe/Prague; maximum loss 10% of it, static; 4 minimum trading days),
//! `ftmo-1step` (daily loss 3%; maximum loss 10% trailing the highest end-of-day balance, no longer
//! once its floor reaches the initial balance; best-day share reported, at most 50%) and `custom`
//! (the numbers are the user's). Both limits are measured on **equity** (floating P&L, commissions
//! and swaps included: the broker's equity as given); the day starts at midnight of an IANA zone
//! ([`DayStart`], Europe/Prague by default, DST included). `docs/propfirm.md` has each rule, its
//! source, what is computed and its units.
//!
//! The shell feeds the guard:
//! - [`Guard::on_equity`] on every account or spot update (balance and equity as the broker has
//!   them now): the [`Verdict`] has the headroom to each limit, a breach, the limit whose share of
//!   use reached the action threshold ([`Rules::act_at_share`], 80% by default), the halt, and the
//!   day closed by this update if it crossed midnight. O(1) and no allocation per update: the day's
//!   boundaries are computed once per day and compared as integers;
//! - [`Guard::on_day_end`] at midnight (its deadline is [`Guard::next_day_start`]) with the balance
//!   at that instant, when the shell has it; otherwise the first update after midnight closes the
//!   day with the balance of the last update before it (exact when the shell feeds every balance
//!   change, which it must);
//! - [`Guard::on_open`] when a position is opened (a trading day);
//! - [`Guard::state`] to the journal after each update that changed it, [`Guard::restore`] at a
//!   restart: the day's anchor comes back, so a restart never gives a second daily allowance.
//!
//! Where a rule is ambiguous the guard takes the stricter reading:
//! - equity **at** a floor is a breach (the firm's "must stay above");
//! - a restart that crosses midnight does not know the balance at midnight: the new day's anchor
//!   (and the closed day's end-of-day balance) is the higher of the last balance before the
//!   restart and the first one after it (a higher anchor is a higher floor);
//! - the best-day share divides by the net total profit (balance − initial), not by the sum of the
//!   winning days (the net total is never larger, so the share is never smaller).
//!
//! Time is UTC milliseconds, given by the caller; an update older than the guard's day counts in
//! the guard's day (time does not go back).

use serde::{Deserialize, Serialize};

use crate::risk::{DayStart, RiskConfig};

/// A firm's rule set by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preset {
    /// FTMO 2-Step: daily 5%, max 10% static, 4 minimum trading days.
    #[serde(rename = "ftmo-2step")]
    Ftmo2Step,
    /// FTMO 1-Step: daily 3%, max 10% trailing the highest end-of-day balance up to the initial
    /// balance, best day at most 50% of the total profit (reported).
    #[serde(rename = "ftmo-1step")]
    Ftmo1Step,
    /// The user's numbers (starting from the 2-Step's).
    #[serde(rename = "custom")]
    Custom,
}

/// The preset names, as written in the config.
pub const PRESET_NAMES: [&str; 3] = ["ftmo-2step", "ftmo-1step", "custom"];

impl Preset {
    /// `ftmo-2step`, `ftmo-1step` or `custom`; the error names the text and the known names.
    pub fn parse(s: &str) -> Result<Preset, String> {
        match s {
            "ftmo-2step" => Ok(Preset::Ftmo2Step),
            "ftmo-1step" => Ok(Preset::Ftmo1Step),
            "custom" => Ok(Preset::Custom),
            _ => Err(format!(
                "{s:?} is not a prop-firm preset (known: {})",
                PRESET_NAMES.join(", ")
            )),
        }
    }

    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Ftmo2Step => PRESET_NAMES[0],
            Preset::Ftmo1Step => PRESET_NAMES[1],
            Preset::Custom => PRESET_NAMES[2],
        }
    }
}

/// How the maximum-loss floor moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaxLoss {
    /// initial × (1 − max%): never moves (FTMO 2-Step).
    Static,
    /// highest end-of-day balance − initial × max%, rising with it until it reaches the initial
    /// balance, then fixed there (FTMO 1-Step as issue 18 and PROPFIRM.md state it).
    TrailingEodToInitial,
    /// highest end-of-day balance − initial × max%, rising with it without end (FTMO's 1-Step page
    /// states the formula with no lock; the stricter reading, for a `custom` rule set).
    TrailingEod,
}

/// A limit the guard measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Limit {
    /// Equity below the day's anchor − daily allowance; ends at the next midnight.
    DailyLoss,
    /// Equity below the maximum-loss floor; fails the account (a person resumes).
    MaxLoss,
}

impl Limit {
    /// The ACK reason code: the same as [`crate::risk::Halt::code`]'s (`HALTED_DAILY_LOSS`,
    /// `HALTED_MAX_DRAWDOWN`), so switching guards changes no reason on the wire.
    pub fn code(self) -> &'static str {
        match self {
            Limit::DailyLoss => "HALTED_DAILY_LOSS",
            Limit::MaxLoss => "HALTED_MAX_DRAWDOWN",
        }
    }
}

/// The rules a guard computes.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// Where the numbers came from.
    pub preset: Preset,
    /// Daily loss allowance, percent of the initial balance.
    pub daily_loss_pct: f64,
    /// Maximum loss allowance, percent of the initial balance.
    pub max_loss_pct: f64,
    /// Static or trailing maximum loss.
    pub max_loss: MaxLoss,
    /// Days (in the day zone) with a position opened needed to pass (0 = no minimum).
    pub min_trading_days: u32,
    /// The best day's profit may be at most this share of the total profit (`Some(0.5)`): reported,
    /// never a halt.
    pub best_day_max_share: Option<f64>,
    /// Share of a limit's allowance used at which the guard acts (halt, flatten): 0.8.
    pub act_at_share: f64,
    /// Where the day starts (midnight Europe/Prague).
    pub day_start: DayStart,
}

impl Rules {
    /// The rules of a preset (`custom` starts from the 2-Step's numbers).
    pub fn preset(p: Preset) -> Rules {
        let two = Rules {
            preset: p,
            daily_loss_pct: 5.0,
            max_loss_pct: 10.0,
            max_loss: MaxLoss::Static,
            min_trading_days: 4,
            best_day_max_share: None,
            act_at_share: 0.8,
            day_start: DayStart::default(),
        };
        match p {
            Preset::Ftmo2Step | Preset::Custom => two,
            Preset::Ftmo1Step => Rules {
                daily_loss_pct: 3.0,
                max_loss: MaxLoss::TrailingEodToInitial,
                min_trading_days: 0,
                best_day_max_share: Some(0.5),
                ..two
            },
        }
    }

    /// The rules of a config's `risk` block: `None` without `risk.preset` (then the
    /// [`crate::risk::RiskGuard`]'s limits apply, as before presets). The percents and the day's
    /// zone are the block's (which a firm's preset has fixed to its own when parsed).
    pub fn from_risk(cfg: &RiskConfig) -> Option<Rules> {
        let p = cfg.preset?;
        Some(Rules {
            daily_loss_pct: cfg.daily_loss_pct,
            max_loss_pct: cfg.max_drawdown_pct,
            day_start: cfg.day_start.clone(),
            ..Rules::preset(p)
        })
    }

    /// Checks the numbers; the error names the field at fault.
    pub fn validate(&self) -> Result<(), GuardError> {
        let pct = |key, x: f64| {
            if x.is_finite() && x > 0.0 && x <= 100.0 {
                Ok(())
            } else {
                Err(GuardError::BadRule {
                    key,
                    value: x,
                    why: "must be a percent in (0, 100]",
                })
            }
        };
        pct("daily_loss_pct", self.daily_loss_pct)?;
        pct("max_loss_pct", self.max_loss_pct)?;
        let share = |key, x: f64| {
            if x.is_finite() && x > 0.0 && x <= 1.0 {
                Ok(())
            } else {
                Err(GuardError::BadRule {
                    key,
                    value: x,
                    why: "must be a share in (0, 1]",
                })
            }
        };
        share("act_at_share", self.act_at_share)?;
        if let Some(s) = self.best_day_max_share {
            share("best_day_max_share", s)?;
        }
        Ok(())
    }
}

/// Bad input to the guard, naming the thing at fault.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GuardError {
    /// A balance or equity that is NaN or infinite.
    #[error("prop-firm guard: {what} is {value}, not a finite amount")]
    NotFinite {
        /// `balance` or `equity`.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// An initial balance that is not a positive amount.
    #[error("prop-firm guard: the initial balance {0} is not a positive amount")]
    BadInitial(f64),
    /// A rule out of its range.
    #[error("prop-firm guard: rule {key} = {value} {why}")]
    BadRule {
        /// The field.
        key: &'static str,
        /// The value given.
        value: f64,
        /// Its range.
        why: &'static str,
    },
}

/// The guard's halt: set when a limit's used share reaches [`Rules::act_at_share`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Halt {
    /// Which limit.
    pub limit: Limit,
    /// When (UTC ms).
    pub at_ms: i64,
    /// Equity then.
    pub equity: f64,
}

/// Headroom to one limit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Headroom {
    /// The equity at or below which the limit is breached (account currency).
    pub floor: f64,
    /// equity − floor (account currency; ≤ 0 = breached).
    pub money: f64,
    /// `money` in percent of the initial balance (the firm's unit).
    pub pct_of_initial: f64,
    /// Share of the limit's allowance used: 0 at or above the level the allowance is measured
    /// from (the day's anchor; the floor + allowance), 1 at the floor, above 1 past it.
    pub share_used: f64,
}

impl Headroom {
    fn new(equity: f64, floor: f64, allowance: f64, initial: f64) -> Headroom {
        let money = equity - floor;
        Headroom {
            floor,
            money,
            pct_of_initial: money / initial * 100.0,
            share_used: (1.0 - money / allowance).max(0.0),
        }
    }
}

/// A day closed by a midnight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DayClosed {
    /// Its start (UTC ms).
    pub day_start_ms: i64,
    /// The balance at its end (the next day's anchor).
    pub eod_balance: f64,
    /// Its profit: end-of-day balance − its anchor (closed P&L, commissions and swaps).
    pub profit: f64,
}

/// What one update gives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// Daily loss.
    pub daily: Headroom,
    /// Maximum loss.
    pub max_loss: Headroom,
    /// A limit at or past its floor now (the maximum loss first).
    pub breach: Option<Limit>,
    /// A limit whose used share is at or above [`Rules::act_at_share`] now (the maximum loss
    /// first): close every position, refuse entries.
    pub act: Option<Limit>,
    /// The halt in force after this update (set by `act`; a daily one ends at the next midnight,
    /// a maximum-loss one by [`Guard::resume`]).
    pub halted: Option<Halt>,
    /// The day this update closed, when it is the first past a midnight.
    pub day_closed: Option<DayClosed>,
}

/// Pass conditions that are reported, not enforced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Days (in the day zone) on which a position was opened.
    pub trading_days: u32,
    /// Days needed (0 = no minimum).
    pub min_trading_days: u32,
    /// The best day's profit so far (closed days and today's), 0 when no day made a profit.
    pub best_day_profit: f64,
    /// Net total profit: last balance − initial.
    pub total_profit: f64,
    /// best day / total profit; `None` while the total is not positive.
    pub best_day_share: Option<f64>,
    /// The rule's largest share, when the preset has one.
    pub best_day_max_share: Option<f64>,
}

impl Progress {
    /// The minimum trading days are reached.
    pub fn min_days_met(&self) -> bool {
        self.trading_days >= self.min_trading_days
    }

    /// The best-day rule holds (`None` without one; `false` while there is no profit).
    pub fn best_day_ok(&self) -> Option<bool> {
        let max = self.best_day_max_share?;
        Some(self.best_day_share.is_some_and(|s| s <= max))
    }
}

/// What the journal keeps of a guard (its rules come from the config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardState {
    /// Initial balance.
    pub initial: f64,
    /// Start of the guard's day (UTC ms).
    pub day_start_ms: i64,
    /// The day's anchor: the balance at its midnight (`None` until the first balance seen).
    pub day_anchor: Option<f64>,
    /// Balance of the last update.
    pub last_balance: Option<f64>,
    /// Highest end-of-day balance (from the initial balance).
    pub highest_eod_balance: f64,
    /// Best closed day's profit.
    pub best_day_profit: f64,
    /// Trading days counted.
    pub trading_days: u32,
    /// The last day counted as a trading day (its start, UTC ms).
    pub last_trading_day_ms: Option<i64>,
    /// The halt in force.
    pub halted: Option<Halt>,
}

/// The guard. See the module docs.
#[derive(Clone, Debug)]
pub struct Guard {
    rules: Rules,
    daily_allowance: f64,
    max_allowance: f64,
    next_day_ms: i64,
    /// Restored and not yet updated: the balance at a midnight crossed meanwhile is unknown.
    resumed: bool,
    st: GuardState,
}

/// Start (UTC ms) of the day containing `ms`.
fn day_of(z: &DayStart, ms: i64) -> i64 {
    z.day_start(ms.div_euclid(1000)).saturating_mul(1000)
}

/// Start (UTC ms) of the day after the one starting at `start_ms` (days last 23–25 h here; 26 h
/// after a start is always inside the next day of a zone whose days are 13–26 h long).
fn next_day_of(z: &DayStart, start_ms: i64) -> i64 {
    day_of(z, start_ms.saturating_add(26 * 3_600_000))
}

fn finite(what: &'static str, value: f64) -> Result<f64, GuardError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(GuardError::NotFinite { what, value })
    }
}

impl Guard {
    /// A fresh guard for an account with `initial` balance, its day the one containing `now_ms`.
    /// The day's anchor is the first balance given (start the guard before the day's first trade,
    /// or [`Guard::restore`] it).
    pub fn new(rules: Rules, initial: f64, now_ms: i64) -> Result<Guard, GuardError> {
        let day_start_ms = day_of(&rules.day_start, now_ms);
        Guard::build(
            rules,
            GuardState {
                initial,
                day_start_ms,
                day_anchor: None,
                last_balance: None,
                highest_eod_balance: initial,
                best_day_profit: 0.0,
                trading_days: 0,
                last_trading_day_ms: None,
                halted: None,
            },
            false,
        )
    }

    /// The guard of a journal's state: the same day, anchor and halt. If midnight passed since,
    /// the first update closes the day with the higher of the two balances (the stricter reading).
    pub fn restore(rules: Rules, state: GuardState) -> Result<Guard, GuardError> {
        for (what, v) in [
            ("day_anchor", state.day_anchor),
            ("last_balance", state.last_balance),
            ("highest_eod_balance", Some(state.highest_eod_balance)),
            ("best_day_profit", Some(state.best_day_profit)),
        ] {
            if let Some(v) = v {
                finite(what, v)?;
            }
        }
        Guard::build(rules, state, true)
    }

    fn build(rules: Rules, st: GuardState, resumed: bool) -> Result<Guard, GuardError> {
        rules.validate()?;
        if !(st.initial.is_finite() && st.initial > 0.0) {
            return Err(GuardError::BadInitial(st.initial));
        }
        Ok(Guard {
            daily_allowance: st.initial * rules.daily_loss_pct / 100.0,
            max_allowance: st.initial * rules.max_loss_pct / 100.0,
            next_day_ms: next_day_of(&rules.day_start, st.day_start_ms),
            resumed,
            rules,
            st,
        })
    }

    /// The rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The state to journal.
    pub fn state(&self) -> &GuardState {
        &self.st
    }

    /// When the current day ends (UTC ms): the deadline for [`Guard::on_day_end`].
    pub fn next_day_start(&self) -> i64 {
        self.next_day_ms
    }

    /// The halt in force.
    pub fn halted(&self) -> Option<Halt> {
        self.st.halted
    }

    /// A person lifts a halt (the maximum loss's only way out). Returns the one lifted.
    pub fn resume(&mut self) -> Option<Halt> {
        self.st.halted.take()
    }

    /// The maximum-loss floor now.
    pub fn max_loss_floor(&self) -> f64 {
        let initial = self.st.initial;
        match self.rules.max_loss {
            MaxLoss::Static => initial - self.max_allowance,
            MaxLoss::TrailingEodToInitial => {
                (self.st.highest_eod_balance - self.max_allowance).min(initial)
            }
            MaxLoss::TrailingEod => self.st.highest_eod_balance - self.max_allowance,
        }
    }

    /// The daily floor now (`None` before the day's anchor is known).
    pub fn daily_floor(&self) -> Option<f64> {
        self.st.day_anchor.map(|a| a - self.daily_allowance)
    }

    /// Closes the day(s) up to the one containing `now_ms`, the last closed one ending with `eod`.
    fn roll(&mut self, now_ms: i64, eod: Option<f64>) -> Option<DayClosed> {
        let closed = eod.map(|eod| {
            let profit = self.st.day_anchor.map_or(0.0, |a| eod - a);
            self.st.best_day_profit = self.st.best_day_profit.max(profit);
            self.st.highest_eod_balance = self.st.highest_eod_balance.max(eod);
            DayClosed {
                day_start_ms: self.st.day_start_ms,
                eod_balance: eod,
                profit,
            }
        });
        self.st.day_anchor = eod;
        self.st.day_start_ms = day_of(&self.rules.day_start, now_ms);
        self.next_day_ms = next_day_of(&self.rules.day_start, self.st.day_start_ms);
        if self.st.halted.is_some_and(|h| h.limit == Limit::DailyLoss) {
            self.st.halted = None;
        }
        closed
    }

    /// Midnight: closes the day with the balance at that instant (exact). Nothing before the
    /// guard's [`Guard::next_day_start`].
    pub fn on_day_end(
        &mut self,
        now_ms: i64,
        balance: f64,
    ) -> Result<Option<DayClosed>, GuardError> {
        let balance = finite("balance", balance)?;
        if now_ms < self.next_day_ms {
            return Ok(None);
        }
        self.resumed = false;
        self.st.last_balance = Some(balance);
        Ok(self.roll(now_ms, Some(balance)))
    }

    /// A position was opened at `now_ms`: its day (in the day zone) is a trading day.
    pub fn on_open(&mut self, now_ms: i64) {
        let day = if now_ms >= self.next_day_ms {
            day_of(&self.rules.day_start, now_ms)
        } else {
            self.st.day_start_ms
        };
        if self.st.last_trading_day_ms.is_none_or(|d| day > d) {
            self.st.trading_days += 1;
            self.st.last_trading_day_ms = Some(day);
        }
    }

    /// The account now: balance and equity (floating P&L, commissions and swaps included).
    pub fn on_equity(
        &mut self,
        now_ms: i64,
        balance: f64,
        equity: f64,
    ) -> Result<Verdict, GuardError> {
        let balance = finite("balance", balance)?;
        let equity = finite("equity", equity)?;
        let mut day_closed = None;
        if now_ms >= self.next_day_ms {
            let eod = match self.st.last_balance {
                Some(last) if self.resumed => Some(last.max(balance)),
                Some(last) => Some(last),
                None => Some(balance),
            };
            day_closed = self.roll(now_ms, eod);
        }
        self.resumed = false;
        self.st.last_balance = Some(balance);
        let anchor = *self.st.day_anchor.get_or_insert(balance);
        let initial = self.st.initial;
        let daily = Headroom::new(
            equity,
            anchor - self.daily_allowance,
            self.daily_allowance,
            initial,
        );
        let max_loss = Headroom::new(equity, self.max_loss_floor(), self.max_allowance, initial);
        let pick = |max: bool, daily: bool| {
            if max {
                Some(Limit::MaxLoss)
            } else if daily {
                Some(Limit::DailyLoss)
            } else {
                None
            }
        };
        let breach = pick(max_loss.money <= 0.0, daily.money <= 0.0);
        let share = self.rules.act_at_share;
        let act = pick(max_loss.share_used >= share, daily.share_used >= share);
        if let Some(limit) = act {
            let escalate = match self.st.halted {
                None => true,
                Some(h) => h.limit == Limit::DailyLoss && limit == Limit::MaxLoss,
            };
            if escalate {
                self.st.halted = Some(Halt {
                    limit,
                    at_ms: now_ms,
                    equity,
                });
            }
        }
        Ok(Verdict {
            daily,
            max_loss,
            breach,
            act,
            halted: self.st.halted,
            day_closed,
        })
    }

    /// Minimum trading days and the best-day share, as of the last update.
    pub fn progress(&self) -> Progress {
        let balance = self.st.last_balance.unwrap_or(self.st.initial);
        let today = self.st.day_anchor.map_or(0.0, |a| balance - a);
        let best = self.st.best_day_profit.max(today).max(0.0);
        let total = balance - self.st.initial;
        Progress {
            trading_days: self.st.trading_days,
            min_trading_days: self.rules.min_trading_days,
            best_day_profit: best,
            total_profit: total,
            best_day_share: (total > 0.0).then(|| best / total),
            best_day_max_share: self.rules.best_day_max_share,
        }
    }
}
