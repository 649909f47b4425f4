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
use serde_json::{Value, json};

use crate::config::ExecutorConfig;
use crate::exec::{ExecutorCore, SideId};
use crate::journal::Record;
use crate::key::StreamKey;
use crate::policy::{ModelState, Policy};
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

// ---------------------------------------------------------------------------------------------
// The operator channel's requests and the `oracle status` view (the socket is the shell's).

/// One operator request (the `cmd` field names it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// The status snapshot ([`Status`]).
    Status,
    /// Halt new entries (exits still run); with `flatten`, close every position too.
    Halt {
        /// Close every position as well.
        #[serde(default)]
        flatten: bool,
    },
    /// Close the positions of one symbol, or of every symbol (`"all"`).
    Flatten {
        /// A configured symbol, or `all`.
        symbol: String,
    },
    /// Lift an operator halt.
    Resume,
    /// Trade a symbol again (`enabled: true`, written to executor_config.json).
    Enable {
        /// A configured symbol.
        symbol: String,
    },
    /// Take no new entry for a symbol (`enabled: false`, written to executor_config.json);
    /// exits still run.
    Disable {
        /// A configured symbol.
        symbol: String,
    },
}

impl Request {
    /// The request's line (what the client sends).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Parses one request line; the error quotes the line (cut at 200 characters) and says why.
pub fn parse_request(line: &str) -> Result<Request, String> {
    serde_json::from_str(line.trim()).map_err(|e| {
        let shown: String = line.trim_end().chars().take(200).collect();
        format!(
            "malformed operator request {shown:?}: {e} (one JSON object per line: {{\"cmd\":\"status\"}}, {{\"cmd\":\"halt\",\"flatten\":true}}, {{\"cmd\":\"flatten\",\"symbol\":\"EURUSD\"|\"all\"}}, {{\"cmd\":\"resume\"}}, {{\"cmd\":\"enable\"|\"disable\",\"symbol\":\"EURUSD\"}})"
        )
    })
}

/// The "authenticated local" rule: a peer is served only when its uid is the executor's own.
pub fn check_peer(peer_uid: u32, own_uid: u32) -> Result<(), String> {
    if peer_uid == own_uid {
        Ok(())
    } else {
        Err(format!(
            "operator connection from uid {peer_uid} refused: only the executor's own uid ({own_uid}) may command it"
        ))
    }
}

/// The answer line: `{"ok":true,…}` or `{"ok":false,"error":…}`.
pub fn answer_err(error: &str) -> Value {
    json!({"ok": false, "error": error})
}

/// One model's row of the status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRow {
    /// `SYMBOL_TF`.
    pub model: String,
    /// The last virtual target the predictor signalled (`LONG_WEAK`…), if any.
    pub virtual_position: Option<String>,
    /// Its unrealised P&L, as the predictor's last SIGNAL said (since this executor started).
    pub virtual_pnl: Option<f64>,
    /// The live position (`FLAT` when none; absent without a live side).
    pub real_position: Option<String>,
    /// Its unrealised P&L (account currency, as the drift ledger reads it).
    pub real_pnl: Option<f64>,
    /// The paper book's position (absent without a paper side).
    pub paper_position: Option<String>,
    /// Its unrealised P&L.
    pub paper_pnl: Option<f64>,
    /// The open time of the last bar signalled (ISO UTC).
    pub last_bar: Option<String>,
    /// `in_sync`, `out_of_sync`, `missed_entry` (waits for the next transition),
    /// `unreconciled: …`, `disabled`, `no_signal_yet`.
    pub state: String,
}

/// One side's account and broker connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SideStatus {
    /// `live` or `paper`.
    pub side: String,
    /// Balance (absent when the broker did not answer).
    pub balance: Option<f64>,
    /// Equity.
    pub equity: Option<f64>,
    /// Free margin.
    pub free_margin: Option<f64>,
    /// Margin in use (equity − free margin).
    pub margin_used: Option<f64>,
    /// The broker connection is up.
    pub connected: bool,
}

/// A configured symbol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SymbolRow {
    /// Name.
    pub name: String,
    /// `enabled` in executor_config.json (as running).
    pub enabled: bool,
}

/// The token pair's expiry (live only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenStatus {
    /// When the access token expires (ISO UTC).
    pub expires_at: String,
    /// Seconds left (negative: expired).
    pub seconds_left: i64,
    /// Where the expiry comes from: `session` (the running session's current token, refreshed
    /// or not) or `token file` (no live session, or it does not know).
    #[serde(default)]
    pub source: String,
}

impl TokenStatus {
    /// The token expiring at `expires_at_ms`, seen at `now` (Unix s), known from `source`.
    pub fn at(expires_at_ms: i64, now: i64, source: &str) -> TokenStatus {
        TokenStatus {
            expires_at: oracle_ipc::Iso(expires_at_ms.div_euclid(1000)).to_string(),
            seconds_left: expires_at_ms
                .saturating_sub(now.saturating_mul(1000))
                .div_euclid(1000),
            source: source.to_string(),
        }
    }
}

/// `oracle status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The executor's clock (ISO UTC).
    pub at: String,
    /// Per model.
    pub models: Vec<ModelRow>,
    /// Per side: account and connection.
    pub sides: Vec<SideStatus>,
    /// The guard of the answering side (live, else paper): its halt and the headroom to each
    /// limit.
    pub guard: Option<GuardStatus>,
    /// The configuration as running.
    pub symbols: Vec<SymbolRow>,
    /// The access token's expiry (live: the session's current token, else the token file's),
    /// if known.
    pub token: Option<TokenStatus>,
    /// The funded account's optional rules (`risk.flat_before_weekend`: each held symbol's
    /// flat instant; `risk.news`: each symbol's news window in force or next); `None` with
    /// both off.
    #[serde(default)]
    pub restrictions: Option<RestrictionsStatus>,
}

fn iso_ms(ms: i64) -> String {
    oracle_ipc::Iso(ms.div_euclid(1000)).to_string()
}

fn money(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.2}"))
}

impl Status {
    /// The readable table `oracle status` prints.
    pub fn table(&self) -> String {
        let mut out = format!("executor status at {}\n\nMODELS\n", self.at);
        out.push_str(&format!(
            "{:<14} {:<14} {:>10} {:<14} {:>10} {:<14} {:>10} {:<21} {}\n",
            "model",
            "virtual",
            "virt P&L",
            "real",
            "real P&L",
            "paper",
            "paper P&L",
            "last bar",
            "state"
        ));
        for m in &self.models {
            out.push_str(&format!(
                "{:<14} {:<14} {:>10} {:<14} {:>10} {:<14} {:>10} {:<21} {}\n",
                m.model,
                m.virtual_position.as_deref().unwrap_or("-"),
                money(m.virtual_pnl),
                m.real_position.as_deref().unwrap_or("-"),
                money(m.real_pnl),
                m.paper_position.as_deref().unwrap_or("-"),
                money(m.paper_pnl),
                m.last_bar.as_deref().unwrap_or("-"),
                m.state
            ));
        }
        let cur = self
            .guard
            .as_ref()
            .and_then(|g| g.currency.as_deref())
            .map_or(String::new(), |c| format!(" ({c})"));
        out.push_str(&format!("\nACCOUNTS{cur}\n"));
        for s in &self.sides {
            out.push_str(&format!(
                "  {:<6} balance {} equity {} margin used {} free margin {} | broker {}\n",
                s.side,
                money(s.balance),
                money(s.equity),
                money(s.margin_used),
                money(s.free_margin),
                if s.connected {
                    "connected"
                } else {
                    "DISCONNECTED"
                },
            ));
        }
        out.push_str("\nGUARD\n");
        match &self.guard {
            None => out.push_str("  no side runs\n"),
            Some(g) => {
                out.push_str(&format!(
                    "  {} side, {}: {}\n",
                    g.side,
                    g.preset.as_deref().unwrap_or("risk guard"),
                    match &g.halted {
                        None => "trading".to_string(),
                        Some(h) => format!(
                            "HALTED {} by {} since {}{}",
                            h.reason,
                            h.by,
                            iso_ms(h.since_ms),
                            h.ends_ms.map_or_else(
                                || " (until oracle resume)".to_string(),
                                |e| format!(" (ends {})", iso_ms(e))
                            )
                        ),
                    }
                ));
                for (name, h) in [("daily loss", &g.daily), ("max loss", &g.max_loss)] {
                    match h {
                        Some(h) => out.push_str(&format!(
                            "  {name:<10} headroom {:>12.2} ({:.2}% of initial, {:.0}% of the allowance used), floor {:.2}\n",
                            h.money,
                            h.pct_of_initial,
                            h.share_used * 100.0,
                            h.floor
                        )),
                        None => out.push_str(&format!(
                            "  {name:<10} headroom not known yet (no account answer)\n"
                        )),
                    }
                }
                out.push_str(&format!("  open positions {}\n", g.open_positions));
                if !g.approximate.is_empty() {
                    out.push_str(&format!(
                        "  equity between account reads is approximate for {}: quoted in another currency than the deposit currency{}, with no conversion symbol quoted (the next account read corrects it)\n",
                        g.approximate.join(", "),
                        g.currency.as_deref().map_or(String::new(), |c| format!(" {c}"))
                    ));
                }
            }
        }
        if let Some(r) = &self.restrictions {
            out.push_str(&restrictions_table(r));
        }
        out.push_str("\nSYMBOLS\n");
        for s in &self.symbols {
            out.push_str(&format!(
                "  {:<12} {}\n",
                s.name,
                if s.enabled { "enabled" } else { "disabled" }
            ));
        }
        out.push_str(&match &self.token {
            Some(t) => format!(
                "\nTOKEN\n  access token expires {} ({} s left{})\n",
                t.expires_at,
                t.seconds_left,
                if t.source.is_empty() {
                    String::new()
                } else {
                    format!(", from the {}", t.source)
                }
            ),
            None => "\nTOKEN\n  none (paper, or no token file in the state folder)\n".to_string(),
        });
        out
    }
}

/// The RESTRICTIONS section of the status table.
pub fn restrictions_table(r: &RestrictionsStatus) -> String {
    let mut out = "\nRESTRICTIONS\n".to_string();
    match r.flat_before_weekend_minutes {
        None => out.push_str("  flat before the weekend: off\n"),
        Some(m) => {
            out.push_str(&format!(
                "  flat before the weekend: {m} minutes before each market's last close of the week\n"
            ));
            if r.weekend.is_empty() {
                out.push_str("    no position held\n");
            }
            for w in &r.weekend {
                match (w.flat_at_ms, w.close_ms, w.open_ms) {
                    (Some(at), Some(close), Some(open)) => out.push_str(&format!(
                        "    {:<12} flat at {} (closes {}, entries refused until {})\n",
                        w.symbol,
                        iso_ms(at),
                        iso_ms(close),
                        iso_ms(open)
                    )),
                    _ => out.push_str(&format!(
                        "    {:<12} no weekend known from the broker's calendar\n",
                        w.symbol
                    )),
                }
            }
        }
    }
    match r.news_minutes {
        None => out.push_str("  news windows: off\n"),
        Some(m) => {
            out.push_str(&format!(
                "  news windows: no order within {m} minutes of an event\n"
            ));
            if r.news.is_empty() {
                out.push_str("    no event to come\n");
            }
            for n in &r.news {
                out.push_str(&format!(
                    "    {:<12} {} {} - {} {}\n",
                    n.symbol,
                    if n.active { "ACTIVE" } else { "next  " },
                    iso_ms(n.start_ms),
                    iso_ms(n.end_ms),
                    n.title
                ));
            }
        }
    }
    out
}

/// A model's `state` in the status (see [`ModelRow::state`]): its side's reconciliation, the
/// configuration, then the virtual target against the real position.
pub fn model_state(
    cfg: &ExecutorConfig,
    key: &StreamKey,
    virt: Option<&ModelState>,
    side: Option<&Policy>,
) -> String {
    if let Some(why) = side.and_then(|p| p.unreconciled.get(key.symbol.as_str())) {
        return format!("unreconciled: {why}");
    }
    if cfg
        .symbols
        .get(key.symbol.as_str())
        .is_some_and(|s| !s.enabled)
    {
        return "disabled".into();
    }
    let Some(m) = virt else {
        return "no_signal_yet".into();
    };
    if m.missed {
        return "missed_entry".into();
    }
    let want = m.target.map_or(0, |t| t.0.direction());
    let have = m.real.as_ref().map_or(0, |r| r.action.0.direction());
    if want == have {
        "in_sync".into()
    } else {
        "out_of_sync".into()
    }
}

/// `enable`/`disable` of `symbol` against the running configuration (`shown`: the file's name):
/// an unknown symbol is an error naming it and the configured ones; `Ok(Some(answer))` when it
/// already is so (nothing to write); `Ok(None)` when the file is to be rewritten
/// ([`enabled_file`]).
pub fn enable_check(
    cfg: &ExecutorConfig,
    shown: &str,
    symbol: &str,
    enabled: bool,
) -> Result<Option<String>, String> {
    let Some(sc) = cfg.symbols.get(symbol) else {
        let known: Vec<&str> = cfg.symbols.keys().map(String::as_str).collect();
        return Err(format!(
            "unknown symbol {symbol:?}: {shown} configures {}",
            if known.is_empty() {
                "no symbol".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    if sc.enabled == enabled {
        let word = if enabled { "enabled" } else { "disabled" };
        return Ok(Some(format!(
            "{symbol} was already {word}; nothing changed"
        )));
    }
    Ok(None)
}

/// The configuration file's new bytes with `symbol`'s `enabled` set, every other key as it was
/// (in its order); refused, naming the file (`shown`), when it is not JSON, the symbol is not
/// an object in it, or it would not validate after the change.
pub fn enabled_file(
    bytes: &[u8],
    shown: &str,
    symbol: &str,
    enabled: bool,
) -> Result<Vec<u8>, String> {
    let mut doc: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("{shown}: not valid JSON: {e}"))?;
    let Some(entry) = doc.get_mut(symbol).and_then(Value::as_object_mut) else {
        return Err(format!(
            "{shown}: {symbol} is not an object in the file (edited by hand since the start?); nothing changed"
        ));
    };
    entry.insert("enabled".into(), Value::Bool(enabled));
    crate::config::from_value(&doc).map_err(|errs| {
        format!(
            "{shown}: would not validate after the change ({}); nothing changed",
            errs.iter()
                .map(|e| format!("{}: {}", e.key, e.msg))
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let mut text = serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())?;
    text.push(b'\n');
    Ok(text)
}

/// The answer once `symbol`'s `enabled` is running and written to the file `shown`.
pub fn enabled_message(symbol: &str, enabled: bool, shown: &str) -> String {
    let word = if enabled { "enabled" } else { "disabled" };
    format!("{symbol} {word} (running now, and written to {shown})")
}

/// The core's command for a halt, flatten or resume request (`flatten all`, any case: every
/// symbol).
pub fn command(req: &Request) -> OperatorCommand {
    match req {
        Request::Halt { flatten } => OperatorCommand::Halt { flatten: *flatten },
        Request::Flatten { symbol } => OperatorCommand::Flatten {
            symbol: (!symbol.eq_ignore_ascii_case("all")).then(|| symbol.clone()),
        },
        _ => OperatorCommand::Resume,
    }
}

/// Without a live side (`--paper`, `--dry-run`), the answer to an operator command that would
/// trade (flatten, halt with flatten) says that it acted on the paper book only.
pub fn paper_only_note(req: &Request, answer: &mut Value) {
    if !matches!(
        req,
        Request::Flatten { .. } | Request::Halt { flatten: true }
    ) {
        return;
    }
    if let Some(m) = answer.get_mut("message")
        && let Some(text) = m.as_str()
    {
        *m = Value::from(format!(
            "{text} (paper book only: this executor sends no order to the broker)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Replayed;
    use crate::risk::{Account, RiskConfig};

    #[test]
    fn without_a_live_side_a_flatten_answer_says_paper_book_only() {
        let answer = || serde_json::json!({"ok": true, "message": "flattened 1 position"});
        for req in [
            Request::Flatten {
                symbol: "all".into(),
            },
            Request::Halt { flatten: true },
        ] {
            let mut a = answer();
            paper_only_note(&req, &mut a);
            let m = a["message"].as_str().unwrap_or_default();
            assert!(
                m.starts_with("flattened 1 position (paper book only"),
                "{m}"
            );
        }
        for req in [Request::Halt { flatten: false }, Request::Resume] {
            let mut a = answer();
            paper_only_note(&req, &mut a);
            assert_eq!(a, answer(), "{req:?}");
        }
    }

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

#[cfg(test)]
mod view_tests {
    use super::*;

    #[test]
    fn a_peer_of_another_uid_is_refused_naming_both_uids() {
        assert_eq!(
            answer_err("operator connection refused"),
            json!({"ok": false, "error": "operator connection refused"})
        );
        assert_eq!(check_peer(1000, 1000), Ok(()));
        let e = check_peer(1001, 1000).expect_err("another uid");
        assert!(e.contains("uid 1001") && e.contains("(1000)"), "{e}");
        assert!(check_peer(0, 1000).is_err(), "root is another uid too");
    }

    #[test]
    fn the_status_table_names_the_deposit_currency_and_the_symbols_approximate_between_reads() {
        let guard = |currency: Option<&str>, approximate: Vec<String>| GuardStatus {
            side: "live".into(),
            preset: Some("ftmo-2step".into()),
            halted: None,
            balance: Some(100_000.0),
            equity: Some(99_000.0),
            daily: None,
            max_loss: None,
            act_at_share: Some(0.8),
            next_day_start_ms: None,
            trading_days: None,
            min_trading_days: None,
            best_day_share: None,
            best_day_max_share: None,
            open_positions: 1,
            currency: currency.map(String::from),
            approximate,
        };
        let mut st = Status {
            at: "2026-12-07T00:00:00Z".into(),
            models: Vec::new(),
            sides: vec![SideStatus {
                side: "live".into(),
                balance: Some(100_000.0),
                equity: Some(99_000.0),
                free_margin: Some(98_000.0),
                margin_used: Some(1_000.0),
                connected: true,
            }],
            guard: Some(guard(Some("EUR"), vec!["USDJPY".into()])),
            symbols: Vec::new(),
            token: None,
            restrictions: None,
        };
        let t = st.table();
        assert!(t.contains("\nACCOUNTS (EUR)\n"), "{t}");
        assert!(
            t.contains("equity between account reads is approximate for USDJPY")
                && t.contains("deposit currency EUR"),
            "{t}"
        );
        // Every symbol converted (or none to convert), the currency not read: neither is said.
        st.guard = Some(guard(None, Vec::new()));
        let t = st.table();
        assert!(t.contains("\nACCOUNTS\n"), "{t}");
        assert!(!t.contains("approximate"), "{t}");
    }

    #[test]
    fn requests_parse_and_a_malformed_line_is_named() {
        assert_eq!(parse_request(r#"{"cmd":"status"}"#), Ok(Request::Status));
        assert_eq!(
            parse_request(r#"{"cmd":"halt"}"#),
            Ok(Request::Halt { flatten: false })
        );
        assert_eq!(
            parse_request(r#"{"cmd":"halt","flatten":true}"#),
            Ok(Request::Halt { flatten: true })
        );
        assert_eq!(
            parse_request(r#"{"cmd":"disable","symbol":"EURUSD"}"#),
            Ok(Request::Disable {
                symbol: "EURUSD".into()
            })
        );
        for bad in ["status", r#"{"cmd":"explode"}"#, r#"{"cmd":"enable"}"#] {
            let e = parse_request(bad).expect_err(bad);
            assert!(e.starts_with("malformed operator request"), "{e}");
            assert!(e.contains(&format!("{bad:?}")), "names the line: {e}");
        }
        for r in [
            Request::Status,
            Request::Halt { flatten: true },
            Request::Flatten {
                symbol: "all".into(),
            },
            Request::Resume,
            Request::Enable { symbol: "X".into() },
        ] {
            assert_eq!(parse_request(&r.to_line()), Ok(r));
        }
    }

    const TWO: &str = r#"{"risk": {"daily_loss_pct": 4}, "US500": {"enabled": true, "lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5, "max_spread_points": 80}, "EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#;

    #[test]
    fn enabling_edits_only_the_symbols_key_and_an_edit_that_would_not_validate_is_refused() {
        let cfg = crate::config::from_value(&serde_json::from_str(TWO).unwrap()).unwrap();
        assert_eq!(
            enable_check(&cfg, "cfg.json", "EURUSD", true),
            Ok(Some("EURUSD was already enabled; nothing changed".into()))
        );
        assert_eq!(enable_check(&cfg, "cfg.json", "EURUSD", false), Ok(None));
        let e = enable_check(&cfg, "cfg.json", "GBPUSD", false).expect_err("unknown");
        assert!(
            e.contains("\"GBPUSD\"") && e.contains("cfg.json configures EURUSD, US500"),
            "{e}"
        );
        let text = enabled_file(TWO.as_bytes(), "cfg.json", "EURUSD", false).expect("edited");
        let again = crate::config::from_value(&serde_json::from_slice(&text).unwrap()).unwrap();
        assert!(!again.symbols["EURUSD"].enabled && again.symbols["US500"].enabled);
        assert_eq!(again.symbols["US500"].max_spread_points, Some(80.0));
        let t = String::from_utf8(text).unwrap();
        assert!(t.find("risk").unwrap() < t.find("US500").unwrap(), "{t}");
        assert!(t.find("US500").unwrap() < t.find("EURUSD").unwrap(), "{t}");
        // Not an object, not JSON, or a file the change would make invalid: refused, named.
        let e = enabled_file(br#"{"EURUSD": 1}"#, "cfg.json", "EURUSD", false).expect_err("x");
        assert!(e.starts_with("cfg.json: EURUSD is not an object"), "{e}");
        let e = enabled_file(b"nope", "cfg.json", "EURUSD", false).expect_err("x");
        assert!(e.starts_with("cfg.json: not valid JSON"), "{e}");
        let bad = br#"{"EURUSD": {"enabled": true, "lot_weak": -1}}"#;
        let e = enabled_file(bad, "cfg.json", "EURUSD", false).expect_err("x");
        assert!(e.contains("would not validate after the change"), "{e}");
        assert_eq!(
            enabled_message("EURUSD", false, "cfg.json"),
            "EURUSD disabled (running now, and written to cfg.json)"
        );
    }

    #[test]
    fn a_halt_flatten_or_resume_request_is_the_cores_command_flatten_all_in_any_case_is_every_symbol()
     {
        assert_eq!(
            command(&Request::Halt { flatten: true }),
            OperatorCommand::Halt { flatten: true }
        );
        assert_eq!(
            command(&Request::Halt { flatten: false }),
            OperatorCommand::Halt { flatten: false }
        );
        assert_eq!(
            command(&Request::Flatten {
                symbol: "EURUSD".into()
            }),
            OperatorCommand::Flatten {
                symbol: Some("EURUSD".into())
            }
        );
        for all in ["all", "ALL", "All"] {
            assert_eq!(
                command(&Request::Flatten { symbol: all.into() }),
                OperatorCommand::Flatten { symbol: None },
                "{all}"
            );
        }
        assert_eq!(command(&Request::Resume), OperatorCommand::Resume);
    }

    #[test]
    fn a_models_state_is_its_sides_reconciliation_then_its_configuration_then_target_against_real()
    {
        let mut cfg = crate::config::from_value(&serde_json::from_str(TWO).unwrap()).unwrap();
        let key = crate::key::key_of("EURUSD", crate::key::Timeframe::M15).unwrap();
        let act =
            |name: &str| crate::policy::ActionName(oracle_ipc::Action::from_name(name).unwrap());
        let real = |name: &str| crate::policy::RealPos {
            position_id: 7,
            action: act(name),
            volume: 1000,
            price: 1.1,
        };
        let st = |target: Option<&str>, real_pos: Option<&str>, missed: bool| ModelState {
            target: target.map(act),
            last_bt: Some(0),
            real: real_pos.map(real),
            missed,
        };
        let long = st(Some("LONG_WEAK"), Some("LONG_STRONG"), false);
        assert_eq!(model_state(&cfg, &key, Some(&long), None), "in_sync");
        let flat = st(Some("WAIT"), None, false);
        assert_eq!(model_state(&cfg, &key, Some(&flat), None), "in_sync");
        let out = st(Some("SHORT_WEAK"), Some("LONG_WEAK"), false);
        assert_eq!(model_state(&cfg, &key, Some(&out), None), "out_of_sync");
        let open = st(Some("LONG_WEAK"), None, false);
        assert_eq!(model_state(&cfg, &key, Some(&open), None), "out_of_sync");
        let missed = st(Some("LONG_WEAK"), None, true);
        assert_eq!(model_state(&cfg, &key, Some(&missed), None), "missed_entry");
        assert_eq!(model_state(&cfg, &key, None, None), "no_signal_yet");
        let mut policy = Policy::new();
        assert_eq!(
            model_state(&cfg, &key, Some(&long), Some(&policy)),
            "in_sync"
        );
        cfg.symbols.get_mut("EURUSD").unwrap().enabled = false;
        assert_eq!(
            model_state(&cfg, &key, Some(&long), Some(&policy)),
            "disabled"
        );
        policy
            .unreconciled
            .insert("EURUSD".into(), "a position of 3 lots nobody opened".into());
        assert_eq!(
            model_state(&cfg, &key, Some(&long), Some(&policy)),
            "unreconciled: a position of 3 lots nobody opened"
        );
    }

    fn status_of(restrictions: Option<RestrictionsStatus>) -> Status {
        let room = |money: f64| Headroom {
            floor: 95_000.0,
            money,
            pct_of_initial: money / 1_000.0,
            share_used: 0.25,
        };
        Status {
            at: "2026-12-07T10:00:00Z".into(),
            models: vec![ModelRow {
                model: "EURUSD_M15".into(),
                virtual_position: Some("LONG_WEAK".into()),
                virtual_pnl: Some(12.345),
                real_position: Some("LONG_WEAK".into()),
                real_pnl: Some(-3.0),
                paper_position: None,
                paper_pnl: None,
                last_bar: Some("2026-12-07T09:45:00Z".into()),
                state: "in_sync".into(),
            }],
            sides: vec![SideStatus {
                side: "live".into(),
                balance: Some(100_000.0),
                equity: None,
                free_margin: Some(98_000.5),
                margin_used: Some(1_000.0),
                connected: false,
            }],
            guard: Some(GuardStatus {
                side: "live".into(),
                preset: Some("ftmo-2step".into()),
                halted: Some(HaltStatus {
                    reason: "HALTED_DAILY_LOSS".into(),
                    since_ms: 1_796_635_200_000,
                    by: "guard".into(),
                    ends_ms: Some(1_796_682_000_000),
                }),
                balance: Some(100_000.0),
                equity: Some(99_000.0),
                daily: Some(room(4_000.0)),
                max_loss: None,
                act_at_share: Some(0.8),
                next_day_start_ms: None,
                trading_days: None,
                min_trading_days: None,
                best_day_share: None,
                best_day_max_share: None,
                open_positions: 2,
                currency: None,
                approximate: Vec::new(),
            }),
            symbols: vec![
                SymbolRow {
                    name: "EURUSD".into(),
                    enabled: true,
                },
                SymbolRow {
                    name: "US500".into(),
                    enabled: false,
                },
            ],
            token: Some(TokenStatus::at(1_796_638_800_000, 1_796_637_600, "session")),
            restrictions,
        }
    }

    #[test]
    fn the_status_table_shows_money_to_the_cent_the_halt_with_its_iso_instants_and_the_token() {
        let t = status_of(None).table();
        assert!(
            t.starts_with("executor status at 2026-12-07T10:00:00Z\n"),
            "{t}"
        );
        let row = t.lines().find(|l| l.starts_with("EURUSD_M15")).expect(&t);
        assert!(row.contains(" 12.35 ") && row.contains(" -3.00 "), "{row}");
        assert!(
            row.contains("2026-12-07T09:45:00Z") && row.ends_with("in_sync"),
            "{row}"
        );
        assert!(
            t.contains("live   balance 100000.00 equity - margin used 1000.00 free margin 98000.50 | broker DISCONNECTED"),
            "{t}"
        );
        assert!(
            t.contains("live side, ftmo-2step: HALTED HALTED_DAILY_LOSS by guard since 2026-12-07T09:20:00Z (ends 2026-12-07T22:20:00Z)"),
            "{t}"
        );
        assert!(t.contains("daily loss headroom      4000.00 (4.00% of initial, 25% of the allowance used), floor 95000.00"), "{t}");
        assert!(t.contains("max loss   headroom not known yet"), "{t}");
        assert!(t.contains("open positions 2"), "{t}");
        assert!(
            t.contains("EURUSD       enabled\n") && t.contains("US500        disabled\n"),
            "{t}"
        );
        assert!(
            t.contains("access token expires 2026-12-07T10:20:00Z (1200 s left, from the session)"),
            "{t}"
        );
        assert!(!t.contains("RESTRICTIONS"), "{t}");
        let mut st = status_of(None);
        st.guard.as_mut().unwrap().halted.as_mut().unwrap().ends_ms = None;
        st.token = None;
        let t = st.table();
        assert!(
            t.contains("since 2026-12-07T09:20:00Z (until oracle resume)"),
            "{t}"
        );
        assert!(t.contains("TOKEN\n  none (paper"), "{t}");
    }

    #[test]
    fn the_restrictions_section_gives_each_held_symbols_flat_instant_and_each_news_window() {
        let r = RestrictionsStatus {
            flat_before_weekend_minutes: Some(30),
            weekend: vec![
                WeekendStatus {
                    symbol: "EURUSD".into(),
                    flat_at_ms: Some(1_796_419_800_000),
                    close_ms: Some(1_796_421_600_000),
                    open_ms: Some(1_796_594_400_000),
                },
                WeekendStatus {
                    symbol: "US500".into(),
                    flat_at_ms: None,
                    close_ms: None,
                    open_ms: None,
                },
            ],
            news_minutes: Some(5),
            news: vec![NewsStatus {
                symbol: "EURUSD".into(),
                start_ms: 1_796_635_200_000,
                end_ms: 1_796_635_800_000,
                title: "NFP".into(),
                active: true,
            }],
        };
        let t = status_of(Some(r.clone())).table();
        assert!(t.contains("\nRESTRICTIONS\n"), "{t}");
        assert!(
            t.contains("    EURUSD       flat at 2026-12-04T21:30:00Z (closes 2026-12-04T22:00:00Z, entries refused until 2026-12-06T22:00:00Z)\n"),
            "{t}"
        );
        assert!(
            t.contains("    US500        no weekend known from the broker's calendar\n"),
            "{t}"
        );
        assert!(
            t.contains("news windows: no order within 5 minutes of an event"),
            "{t}"
        );
        assert!(
            t.contains("    EURUSD       ACTIVE 2026-12-07T09:20:00Z - 2026-12-07T09:30:00Z NFP\n"),
            "{t}"
        );
        let off = restrictions_table(&RestrictionsStatus::default());
        assert_eq!(
            off,
            "\nRESTRICTIONS\n  flat before the weekend: off\n  news windows: off\n"
        );
        let empty = restrictions_table(&RestrictionsStatus {
            flat_before_weekend_minutes: Some(30),
            news_minutes: Some(5),
            ..RestrictionsStatus::default()
        });
        assert!(empty.contains("    no position held\n"), "{empty}");
        assert!(empty.contains("    no event to come\n"), "{empty}");
    }
}
