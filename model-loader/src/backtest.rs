//! `oracle backtest`: one model over one bar file through the twin (the training environment's
//! position rule, prices and costs, contract §6), summarised by the statistics of
//! `docs/backtest.md`, with the list of closed trades as CSV.
//!
//! `python -m oracle_training backtest` prints the same text and the same trade list byte for
//! byte: every statistic below is computed from the same per-bar stream in the same order of
//! operations (plain left-to-right sums, `sqrt`, no library reductions), and printed with fixed
//! decimals. Keep `training/oracle_training/backtest.py` in step with this file.

use std::fmt::Write as _;
use std::io::{BufReader, Write};
use std::path::Path;

use oracle_core::position::{close_price, lots};
use oracle_core::{Action, CostParams, Position, Step, Timeframe, Twin, TwinError};

use crate::bars::{BarReader, CsvError, write_time};
use crate::error::LoadError;
use crate::load::load_model;

/// The account the figures are relative to, in the account currency of `pip_value`, unless
/// `--capital` says otherwise.
pub const DEFAULT_CAPITAL: f64 = 10_000.0;

/// The trade list's header (`docs/backtest.md`).
pub const TRADES_HEADER: &str =
    "entry_time,exit_time,side,intensity,lots,entry_price,exit_price,bars,pnl";

/// Trading costs (money, positive = paid), as the training environment charges them (contract
/// §6): the spread and the slippage in the fill prices, measured against the bar's close (bars
/// are bid: a long pays the spread when it opens, a short when it closes; every fill pays the
/// slippage), and the commission charged at each close.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Costs {
    /// `spread_points × money_per_point × lots` of the fills that cross the spread.
    pub spread: f64,
    /// `slippage_points × money_per_point × lots` of every fill.
    pub slippage: f64,
    /// `commission_per_lot × lots` of every close (the amount `realized_pnl` subtracts).
    pub commission: f64,
}

impl Costs {
    /// The costs of one fill: opening (`opening`) or closing a position of `direction` and
    /// `intensity`.
    pub fn of_fill(
        costs: &CostParams,
        money_per_point: f64,
        direction: i8,
        intensity: u8,
        opening: bool,
    ) -> Costs {
        let lots = lots(costs, intensity);
        Costs {
            spread: if (direction > 0) == opening {
                costs.spread_points * money_per_point * lots
            } else {
                0.0
            },
            slippage: costs.slippage_points * money_per_point * lots,
            commission: if opening {
                0.0
            } else {
                costs.commission_per_lot * lots
            },
        }
    }

    /// Spread + slippage + commission.
    pub fn total(&self) -> f64 {
        self.spread + self.slippage + self.commission
    }

    /// The sum of two, field by field.
    pub fn plus(&self, other: &Costs) -> Costs {
        Costs {
            spread: self.spread + other.spread,
            slippage: self.slippage + other.slippage,
            commission: self.commission + other.commission,
        }
    }
}

/// Bars a year for a timeframe: a market open 24 hours on 260 weekdays a year, so
/// `260 × (1440 / minutes of a bar)`; `W1` is 52. `None` for a timeframe the loader does not
/// accept (`MN1`).
pub fn bars_per_year(timeframe: Timeframe) -> Option<f64> {
    match timeframe {
        Timeframe::W1 => Some(52.0),
        Timeframe::MN1 => None,
        tf => {
            // Every other timeframe is a whole number of minutes that divides a day.
            let minutes = u32::try_from(tf.seconds() / 60).ok()?;
            Some(f64::from(260 * (1440 / minutes)))
        }
    }
}

/// One closed trade: a position from the bar it opened on to the bar it closed on. A reversal
/// or a resize closes one trade and opens another on the same bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trade {
    /// Time of the bar whose close opened it.
    pub entry_time: i64,
    /// Time of the bar whose close closed it.
    pub exit_time: i64,
    /// 1 long, −1 short.
    pub direction: i8,
    /// 1..=3.
    pub intensity: u8,
    /// `lot_sizes[intensity]`.
    pub lots: f64,
    /// Fill price of the open (§6: spread and slippage included).
    pub entry_price: f64,
    /// Fill price of the close.
    pub exit_price: f64,
    /// Decided bars from the open to the close (1 = closed on the next bar).
    pub bars: usize,
    /// Realised P&L, commission included (money).
    pub pnl: f64,
    /// The costs of its two fills (the commission is in `pnl` too, the spread and slippage in
    /// its prices).
    pub costs: Costs,
}

/// The position open after the last bar (not a closed trade: its unrealised P&L is in the
/// equity, not in the trade statistics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenTrade {
    /// Time of the bar whose close opened it.
    pub entry_time: i64,
    /// 1 long, −1 short.
    pub direction: i8,
    /// 1..=3.
    pub intensity: u8,
    /// `lot_sizes[intensity]`.
    pub lots: f64,
    /// Fill price of the open.
    pub entry_price: f64,
    /// Index of the opening bar among the decided bars.
    pub entry_index: usize,
    /// The costs of its opening fill.
    pub open_costs: Costs,
}

/// What one decided bar did, as the ledger needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BarRecord {
    /// The bar's time.
    pub time: i64,
    /// The position before this bar's action.
    pub previous: Position,
    /// The position after it.
    pub position: Position,
    /// `lot_sizes[position.intensity]`.
    pub lots: f64,
    /// When the previous position was closed on this bar: its exit price and realised P&L.
    pub closed: Option<(f64, f64)>,
    /// Whether a position was opened on this bar.
    pub opened: bool,
    /// The costs of this bar's closing fill (zero without one).
    pub close_costs: Costs,
    /// The costs of this bar's opening fill (zero without one).
    pub open_costs: Costs,
    /// Equity after the action: realised P&L so far plus the open position's unrealised P&L
    /// marked at this bar's close (money, from 0).
    pub equity: f64,
    /// The open position's unrealised P&L at this bar's close (0 when flat).
    pub unrealized: f64,
}

/// The per-bar equity curve and the trades of a run, fed one decided bar at a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    /// Equity after each decided bar (`E_1 … E_N`; `E_0 = 0` is implied).
    pub equity: Vec<f64>,
    /// The time of each decided bar (beside `equity`).
    pub times: Vec<i64>,
    /// The costs of each decided bar's fills (beside `equity`).
    pub costs: Vec<Costs>,
    /// Decided bars after whose action a position was open.
    pub exposed: usize,
    /// Closed trades, in the order they closed.
    pub trades: Vec<Trade>,
    /// The position open after the last bar.
    pub open: Option<OpenTrade>,
    /// Its unrealised P&L at the last bar's close.
    pub open_unrealized: f64,
    /// Time of the first and the last decided bar.
    pub span: Option<(i64, i64)>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// Records one decided bar.
    pub fn record(&mut self, bar: &BarRecord) {
        let index = self.equity.len();
        if let (Some((exit_price, pnl)), Some(open)) = (bar.closed, self.open) {
            self.open = None;
            self.trades.push(Trade {
                entry_time: open.entry_time,
                exit_time: bar.time,
                direction: open.direction,
                intensity: open.intensity,
                lots: open.lots,
                entry_price: open.entry_price,
                exit_price,
                bars: index - open.entry_index,
                pnl,
                costs: open.open_costs.plus(&bar.close_costs),
            });
        }
        if bar.opened {
            self.open = Some(OpenTrade {
                entry_time: bar.time,
                direction: bar.position.direction,
                intensity: bar.position.intensity,
                lots: bar.lots,
                entry_price: bar.position.entry_price,
                entry_index: index,
                open_costs: bar.open_costs,
            });
        }
        if !bar.position.is_flat() {
            self.exposed += 1;
        }
        self.open_unrealized = bar.unrealized;
        self.equity.push(bar.equity);
        self.times.push(bar.time);
        self.costs.push(bar.close_costs.plus(&bar.open_costs));
        self.span = Some(match self.span {
            None => (bar.time, bar.time),
            Some((first, _)) => (first, bar.time),
        });
    }

    /// The costs of all fills, summed in bar order.
    pub fn total_costs(&self) -> Costs {
        let mut sum = Costs::default();
        for c in &self.costs {
            sum = sum.plus(c);
        }
        sum
    }

    /// The statistics of this ledger (`docs/backtest.md`).
    pub fn statistics(&self, capital: f64, bars_per_year: f64) -> Stats {
        statistics(
            &self.equity,
            self.exposed,
            &self.trades,
            capital,
            bars_per_year,
        )
    }
}

/// The backtest statistics (`docs/backtest.md` defines each). `None` is "n/a".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Decided bars `N`.
    pub decisions: usize,
    /// The initial capital `C`.
    pub capital: f64,
    /// Bars a year used to annualise.
    pub bars_per_year: f64,
    /// `E_N` (0 when no bar was decided).
    pub net_profit: f64,
    /// `E_N / C × 100`.
    pub total_return_pct: f64,
    /// Annualised Sharpe ratio of the per-bar returns.
    pub sharpe: Option<f64>,
    /// Annualised Sortino ratio of the per-bar returns.
    pub sortino: Option<f64>,
    /// Largest fall of the equity from its running peak (money).
    pub max_drawdown: f64,
    /// Largest fall from the running peak as a share of the account at that peak (`C + peak`).
    pub max_drawdown_pct: f64,
    /// Sum of the P&L of the winning closed trades.
    pub gross_profit: f64,
    /// Sum of the losses of the losing closed trades (positive).
    pub gross_loss: f64,
    /// Gross profit / gross loss of closed trades (`f64::INFINITY` with no loss).
    pub profit_factor: Option<f64>,
    /// Winning closed trades (P&L > 0), percent.
    pub win_rate_pct: Option<f64>,
    /// Winning closed trades.
    pub wins: usize,
    /// Closed trades.
    pub trades: usize,
    /// Mean bars a closed trade was held.
    pub avg_trade_bars: Option<f64>,
    /// Share of decided bars with a position open after the action, percent.
    pub exposure_pct: Option<f64>,
}

/// The statistics of an equity curve `E_1 … E_N` (money, `E_0 = 0`), the count of decided bars
/// in a position, and the closed trades, for an account of `capital` (`docs/backtest.md`).
pub fn statistics(
    equity: &[f64],
    exposed: usize,
    trades: &[Trade],
    capital: f64,
    bars_per_year: f64,
) -> Stats {
    let n = equity.len();
    let nf = n as f64;
    // Per-bar returns r_j = (E_j − E_{j−1}) / C.
    let mut returns = Vec::with_capacity(n);
    let mut prev = 0.0;
    for &e in equity {
        returns.push((e - prev) / capital);
        prev = e;
    }
    let (mut sharpe, mut sortino) = (None, None);
    if n >= 2 {
        let mut sum = 0.0;
        for &r in &returns {
            sum += r;
        }
        let mean = sum / nf;
        let mut squares = 0.0;
        let mut downside = 0.0;
        for &r in &returns {
            let d = r - mean;
            squares += d * d;
            if r < 0.0 {
                downside += r * r;
            }
        }
        let sd = (squares / (nf - 1.0)).sqrt();
        let dd = (downside / nf).sqrt();
        let annual = bars_per_year.sqrt();
        if sd > 0.0 {
            sharpe = Some(mean / sd * annual);
        }
        if dd > 0.0 {
            sortino = Some(mean / dd * annual);
        }
    }
    let net_profit = equity.last().copied().unwrap_or(0.0);
    let (mut max_dd, mut max_dd_pct) = (0.0_f64, 0.0_f64);
    for (dd, pct) in drawdowns(equity, capital) {
        if dd > max_dd {
            max_dd = dd;
        }
        if pct > max_dd_pct {
            max_dd_pct = pct;
        }
    }
    let (mut gross_profit, mut gross_loss, mut wins, mut held) = (0.0_f64, 0.0_f64, 0_usize, 0);
    for t in trades {
        if t.pnl > 0.0 {
            gross_profit += t.pnl;
            wins += 1;
        } else if t.pnl < 0.0 {
            gross_loss -= t.pnl;
        }
        held += t.bars;
    }
    let count = trades.len();
    let profit_factor = if gross_loss > 0.0 {
        Some(gross_profit / gross_loss)
    } else if gross_profit > 0.0 {
        Some(f64::INFINITY)
    } else {
        None
    };
    let per_trade = |x: f64| (count > 0).then(|| x / count as f64);
    Stats {
        decisions: n,
        capital,
        bars_per_year,
        net_profit,
        total_return_pct: net_profit / capital * 100.0,
        sharpe,
        sortino,
        max_drawdown: max_dd,
        max_drawdown_pct: max_dd_pct,
        gross_profit,
        gross_loss,
        profit_factor,
        win_rate_pct: per_trade(wins as f64 * 100.0),
        wins,
        trades: count,
        avg_trade_bars: per_trade(held as f64),
        exposure_pct: (n > 0).then(|| exposed as f64 * 100.0 / nf),
    }
}

/// The drawdown after each bar of an equity curve `E_1 … E_N` (money, `E_0 = 0`) for an account
/// of `capital`: `(P_j − E_j, (P_j − E_j) / (C + P_j) × 100)`, money and percent, with the running
/// peak `P_j = max(E_0 … E_j)` (`docs/backtest.md`; the maximum of each is the max drawdown, the
/// series is the tearsheet's underwater chart).
pub fn drawdowns(equity: &[f64], capital: f64) -> impl Iterator<Item = (f64, f64)> + '_ {
    let mut peak = 0.0_f64;
    equity.iter().map(move |&e| {
        if e > peak {
            peak = e;
        }
        let dd = peak - e;
        (dd, dd / (capital + peak) * 100.0)
    })
}

/// One calendar month (UTC) of a run's decided bars (`docs/backtest.md` "Months").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Month {
    /// Year (UTC).
    pub year: i16,
    /// Month 1–12 (UTC).
    pub month: i8,
    /// Decided bars in it.
    pub bars: usize,
    /// The change of the equity over it: its last `E_j` minus the last one before it (`E_0 = 0`
    /// before the first), money.
    pub net_profit: f64,
    /// `net_profit / C × 100`: the month's return on the initial capital, percent (not
    /// compounded, like the per-bar returns).
    pub return_pct: f64,
    /// Trades closed in it.
    pub trades: usize,
    /// The costs of its fills.
    pub costs: Costs,
}

fn year_month(t: i64) -> (i16, i8) {
    let d = oracle_ipc::time::date(t);
    (d.year(), d.month())
}

/// The decided bars of `ledger` by calendar month (UTC), in time order: only months with a
/// decided bar.
pub fn months(ledger: &Ledger, capital: f64) -> Vec<Month> {
    let mut out: Vec<Month> = Vec::new();
    let (mut before, mut previous) = (0.0, 0.0);
    for (j, (&t, &e)) in ledger.times.iter().zip(&ledger.equity).enumerate() {
        let (year, month) = year_month(t);
        let fresh = out
            .last()
            .is_none_or(|m| (m.year, m.month) != (year, month));
        if fresh {
            before = previous;
            out.push(Month {
                year,
                month,
                bars: 0,
                net_profit: 0.0,
                return_pct: 0.0,
                trades: 0,
                costs: Costs::default(),
            });
        }
        let m = out.last_mut().expect("pushed above");
        m.bars += 1;
        m.net_profit = e - before;
        m.return_pct = m.net_profit / capital * 100.0;
        if let Some(c) = ledger.costs.get(j) {
            m.costs = m.costs.plus(c);
        }
        previous = e;
    }
    for t in &ledger.trades {
        let ym = year_month(t.exit_time);
        if let Some(m) = out.iter_mut().find(|m| (m.year, m.month) == ym) {
            m.trades += 1;
        }
    }
    out
}

/// `x` with `decimals`, `-0.0` as `0.0`; `n/a` for `None`, `inf` for +∞ (the summary's
/// number format).
pub fn fixed(x: Option<f64>, decimals: usize) -> String {
    match x {
        None => "n/a".to_owned(),
        Some(v) if v == f64::INFINITY => "inf".to_owned(),
        Some(v) => format!("{:.*}", decimals, v + 0.0),
    }
}

/// The action name of a position (`LONG_WEAK`, …; `WAIT` when flat).
pub fn position_name(direction: i8, intensity: u8) -> &'static str {
    Action::ALL
        .iter()
        .find(|a| a.direction() == direction && a.intensity().get() == intensity)
        .map_or("?", |a| a.name())
}

fn time_text(t: i64) -> String {
    let mut s = String::with_capacity(20);
    write_time(&mut s, t);
    s
}

/// The printed summary (`docs/backtest.md` "Output"): one `label value` line per figure.
pub fn summary_text(name: &str, accepted: usize, ledger: &Ledger, stats: &Stats) -> String {
    let mut s = String::with_capacity(1024);
    let n = stats.decisions;
    let line = |s: &mut String, label: &str, value: &str| {
        let _ = writeln!(s, "{label:<17}{value}");
    };
    line(&mut s, "backtest", name);
    line(
        &mut s,
        "bars",
        &format!(
            "{accepted} ({} warm-up, {n} decided)",
            accepted.saturating_sub(n)
        ),
    );
    let span = ledger.span.map_or("none".to_owned(), |(a, b)| {
        format!("{} to {}", time_text(a), time_text(b))
    });
    line(&mut s, "decided", &span);
    line(
        &mut s,
        "initial capital",
        &format!("{} (account currency)", fixed(Some(stats.capital), 2)),
    );
    line(&mut s, "net profit", &fixed(Some(stats.net_profit), 2));
    line(
        &mut s,
        "total return",
        &format!("{}%", fixed(Some(stats.total_return_pct), 4)),
    );
    line(
        &mut s,
        "sharpe",
        &format!(
            "{} (annualised, {} bars a year)",
            fixed(stats.sharpe, 4),
            fixed(Some(stats.bars_per_year), 0)
        ),
    );
    line(&mut s, "sortino", &fixed(stats.sortino, 4));
    line(
        &mut s,
        "max drawdown",
        &format!(
            "{} ({}%)",
            fixed(Some(stats.max_drawdown), 2),
            fixed(Some(stats.max_drawdown_pct), 4)
        ),
    );
    line(
        &mut s,
        "profit factor",
        &format!(
            "{} (gross profit {}, gross loss {})",
            fixed(stats.profit_factor, 4),
            fixed(Some(stats.gross_profit), 2),
            fixed(Some(stats.gross_loss), 2)
        ),
    );
    let pct = |x: Option<f64>| match x {
        None => "n/a".to_owned(),
        v => format!("{}%", fixed(v, 2)),
    };
    line(
        &mut s,
        "win rate",
        &format!(
            "{} ({} of {})",
            pct(stats.win_rate_pct),
            stats.wins,
            stats.trades
        ),
    );
    line(&mut s, "trades", &format!("{} closed", stats.trades));
    let or_na = |x: Option<f64>, text: String| x.map_or("n/a".to_owned(), |_| text);
    line(
        &mut s,
        "avg trade",
        &or_na(
            stats.avg_trade_bars,
            format!("{} bars", fixed(stats.avg_trade_bars, 2)),
        ),
    );
    line(
        &mut s,
        "exposure",
        &or_na(
            stats.exposure_pct,
            format!("{} of decided bars", pct(stats.exposure_pct)),
        ),
    );
    let open = ledger.open.map_or("none".to_owned(), |o| {
        format!(
            "{} since {} at {}, unrealised {}",
            position_name(o.direction, o.intensity),
            time_text(o.entry_time),
            fixed(Some(o.entry_price), 10),
            fixed(Some(ledger.open_unrealized), 2)
        )
    });
    line(&mut s, "open at end", &open);
    s
}

/// The trade list as CSV (`TRADES_HEADER`, one line per closed trade).
pub fn trades_csv(trades: &[Trade]) -> String {
    let mut s = String::with_capacity(64 + trades.len() * 96);
    s.push_str(TRADES_HEADER);
    s.push('\n');
    for t in trades {
        write_time(&mut s, t.entry_time);
        s.push(',');
        write_time(&mut s, t.exit_time);
        let side = if t.direction > 0 { "LONG" } else { "SHORT" };
        let _ = writeln!(
            s,
            ",{side},{},{},{},{},{},{}",
            t.intensity,
            fixed(Some(t.lots), 2),
            fixed(Some(t.entry_price), 10),
            fixed(Some(t.exit_price), 10),
            t.bars,
            fixed(Some(t.pnl), 6)
        );
    }
    s
}

/// Why a backtest could not run (a bad bar line is not one: it is reported and skipped).
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// The model zip was refused.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The model's window does not fit the twin.
    #[error("{0}")]
    Twin(#[from] TwinError),
    /// The capital is not a positive number.
    #[error("--capital {0}: the initial capital must be a positive amount of account currency")]
    Capital(f64),
    /// The model's timeframe has no bars-a-year figure.
    #[error("timeframe {0}: no bars-a-year figure to annualise with (docs/backtest.md)")]
    Timeframe(Timeframe),
    /// The bar file could not be opened.
    #[error("{path}: cannot open: {io}")]
    OpenBars {
        /// The bar file.
        path: String,
        /// The I/O error.
        io: std::io::Error,
    },
    /// The bar file's header is wrong, or reading it failed.
    #[error("{path}:{}: {csv}", csv.line())]
    Bars {
        /// The bar file.
        path: String,
        /// The CSV error.
        csv: CsvError,
    },
    /// Reporting a rejected line failed.
    #[error("cannot write the backtest output: {0}")]
    Output(#[from] std::io::Error),
}

/// A finished backtest.
#[derive(Debug, Clone, PartialEq)]
pub struct Backtest {
    /// `SYM_TF`.
    pub name: String,
    /// Bars accepted (warm-up included).
    pub bars: usize,
    /// Lines rejected (reported on `err`).
    pub rejected: usize,
    /// The equity curve and the trades.
    pub ledger: Ledger,
    /// The statistics.
    pub stats: Stats,
}

impl Backtest {
    /// The printed summary.
    pub fn summary(&self) -> String {
        summary_text(&self.name, self.bars, &self.ledger, &self.stats)
    }

    /// The trade list as CSV.
    pub fn trades_csv(&self) -> String {
        trades_csv(&self.ledger.trades)
    }

    /// The figures as JSON (`oracle backtest --json`, docs/backtest.md): full precision, `null`
    /// for "n/a" (and for an infinite profit factor: `gross_loss` is then 0).
    pub fn to_json(&self) -> serde_json::Value {
        let s = &self.stats;
        let (first, last) = match self.ledger.span {
            Some((a, b)) => (Some(time_text(a)), Some(time_text(b))),
            None => (None, None),
        };
        let open = self.ledger.open.map(|o| {
            serde_json::json!({
                "position": position_name(o.direction, o.intensity),
                "since": time_text(o.entry_time),
                "entry_price": o.entry_price,
                "unrealized_pnl": self.ledger.open_unrealized,
            })
        });
        serde_json::json!({
            "model": self.name,
            "bars": self.bars,
            "warmup_bars": self.bars.saturating_sub(s.decisions),
            "decided_bars": s.decisions,
            "first_decided": first,
            "last_decided": last,
            "capital": s.capital,
            "bars_per_year": s.bars_per_year,
            "net_profit": s.net_profit,
            "total_return_pct": s.total_return_pct,
            "sharpe": s.sharpe,
            "sortino": s.sortino,
            "max_drawdown": s.max_drawdown,
            "max_drawdown_pct": s.max_drawdown_pct,
            "gross_profit": s.gross_profit,
            "gross_loss": s.gross_loss,
            "profit_factor": s.profit_factor.filter(|x| x.is_finite()),
            "win_rate_pct": s.win_rate_pct,
            "wins": s.wins,
            "trades": s.trades,
            "avg_trade_bars": s.avg_trade_bars,
            "exposure_pct": s.exposure_pct,
            "open_at_end": open,
        })
    }
}

/// Runs `bars_csv` through a fresh twin of `model_zip` for an account of `capital`, reporting
/// each rejected line (`PATH:LINE: bar rejected: REASON`) on `err`, as `oracle replay` does.
pub fn backtest(
    model_zip: &Path,
    bars_csv: &Path,
    capital: f64,
    err: &mut dyn Write,
) -> Result<Backtest, BacktestError> {
    if !(capital.is_finite() && capital > 0.0) {
        return Err(BacktestError::Capital(capital));
    }
    let loaded = load_model(model_zip)?;
    let timeframe = loaded.metadata.timeframe;
    let per_year = bars_per_year(timeframe).ok_or(BacktestError::Timeframe(timeframe))?;
    let costs = *loaded.model.costs();
    let money_per_point = loaded.model.money_per_point();
    let mut twin: Twin<'_> = Twin::new(&loaded.model)?;
    let shown = bars_csv.display().to_string();
    let file = std::fs::File::open(bars_csv).map_err(|io| BacktestError::OpenBars {
        path: shown.clone(),
        io,
    })?;
    let reader = BarReader::new(BufReader::new(file)).map_err(|csv| BacktestError::Bars {
        path: shown.clone(),
        csv,
    })?;
    let mut ledger = Ledger::new();
    let (mut bars, mut rejected) = (0, 0);
    for item in reader {
        let bar_line = match item {
            Ok(b) => b,
            Err(e @ CsvError::Io { .. }) => {
                return Err(BacktestError::Bars {
                    path: shown,
                    csv: e,
                });
            }
            Err(e) => {
                rejected += 1;
                writeln!(err, "{shown}:{}: bar rejected: {e}", e.line())?;
                continue;
            }
        };
        let step = match twin.handle_bar(bar_line.bar) {
            Ok(step) => step,
            Err(e) => {
                rejected += 1;
                writeln!(err, "{shown}:{}: bar rejected: {e}", bar_line.line)?;
                continue;
            }
        };
        bars += 1;
        if let Step::Decision(d) = step {
            let closed = d.closed_pnl.map(|pnl| {
                (
                    close_price(&costs, d.previous.direction, bar_line.bar.close),
                    pnl,
                )
            });
            let fill = |p: &Position, opening: bool| {
                Costs::of_fill(&costs, money_per_point, p.direction, p.intensity, opening)
            };
            ledger.record(&BarRecord {
                time: d.time,
                previous: d.previous,
                position: d.position,
                lots: lots(&costs, d.position.intensity),
                closed,
                opened: d.opened,
                close_costs: if closed.is_some() {
                    fill(&d.previous, false)
                } else {
                    Costs::default()
                },
                open_costs: if d.opened {
                    fill(&d.position, true)
                } else {
                    Costs::default()
                },
                equity: d.realized_pnl + d.unrealized_pnl,
                unrealized: d.unrealized_pnl,
            });
        }
    }
    let stats = ledger.statistics(capital, per_year);
    Ok(Backtest {
        name: loaded.name,
        bars,
        rejected,
        ledger,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(pnl: f64, bars: usize) -> Trade {
        Trade {
            entry_time: 0,
            exit_time: 0,
            direction: 1,
            intensity: 1,
            lots: 0.01,
            entry_price: 1.0,
            exit_price: 1.0,
            bars,
            pnl,
            costs: Costs::default(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    /// Equity 0 → 100 → 50 → 150 → 120 on C = 1000: returns 0.1, −0.05, 0.1, −0.03.
    /// mean = 0.12 / 4 = 0.03; deviations 0.07, −0.08, 0.07, −0.06 → squares 0.0049, 0.0064,
    /// 0.0049, 0.0036 = 0.0198; / 3 = 0.0066; sd = 0.081240384…; Sharpe × sqrt(260) (D1):
    /// 0.03 / 0.081240384 × 16.1245155 = 5.954372…; downside (0.0025 + 0.0009) / 4 = 0.00085,
    /// dd = 0.029154759…; Sortino = 0.03 / 0.029154759 × 16.1245155 = 16.59199…
    #[test]
    fn sharpe_and_sortino_of_a_hand_made_curve() {
        let s = statistics(&[100.0, 50.0, 150.0, 120.0], 0, &[], 1000.0, 260.0);
        let sd = (0.0198_f64 / 3.0).sqrt();
        let want_sharpe = 0.03 / sd * 260.0_f64.sqrt();
        assert!(close(s.sharpe.unwrap(), want_sharpe), "{:?}", s.sharpe);
        assert!(
            (s.sharpe.unwrap() - 5.954_372).abs() < 1e-6,
            "{:?}",
            s.sharpe
        );
        let want_sortino = 0.03 / (0.00085_f64).sqrt() * 260.0_f64.sqrt();
        assert!(close(s.sortino.unwrap(), want_sortino), "{:?}", s.sortino);
        assert!(
            (s.sortino.unwrap() - 16.591_99).abs() < 1e-4,
            "{:?}",
            s.sortino
        );
        assert_eq!(s.net_profit, 120.0);
        assert!(close(s.total_return_pct, 12.0));
    }

    /// Peak 100 → 50 is a fall of 50 = 50/1100 = 4.545…% of the account at the peak; the later
    /// fall 150 → 120 is 30 = 30/1150 = 2.61%: the largest of each is kept.
    #[test]
    fn max_drawdown_is_the_largest_fall_from_the_running_peak() {
        let s = statistics(&[100.0, 50.0, 150.0, 120.0], 0, &[], 1000.0, 260.0);
        assert_eq!(s.max_drawdown, 50.0);
        assert!(close(s.max_drawdown_pct, 50.0 / 1100.0 * 100.0));
        // A curve that only falls: the peak is E_0 = 0 (the initial capital).
        let s = statistics(&[-10.0, -30.0, -20.0], 0, &[], 1000.0, 260.0);
        assert_eq!(s.max_drawdown, 30.0);
        assert!(close(s.max_drawdown_pct, 3.0));
    }

    /// Trades +30, −10, 0, +20, −20 over 2, 1, 1, 4, 2 bars: gross profit 50, gross loss 30,
    /// PF 5/3; 2 wins of 5 = 40%; 10 bars / 5 = 2 bars a trade.
    #[test]
    fn profit_factor_win_rate_and_length_of_closed_trades() {
        let trades = [
            trade(30.0, 2),
            trade(-10.0, 1),
            trade(0.0, 1),
            trade(20.0, 4),
            trade(-20.0, 2),
        ];
        let s = statistics(&[0.0; 10], 6, &trades, 1000.0, 260.0);
        assert!(close(s.profit_factor.unwrap(), 50.0 / 30.0));
        assert_eq!((s.gross_profit, s.gross_loss), (50.0, 30.0));
        assert_eq!((s.wins, s.trades), (2, 5));
        assert_eq!(s.win_rate_pct, Some(40.0));
        assert_eq!(s.avg_trade_bars, Some(2.0));
        assert_eq!(s.exposure_pct, Some(60.0));
        // A flat equity has no spread: no Sharpe, no Sortino.
        assert_eq!((s.sharpe, s.sortino), (None, None));
    }

    #[test]
    fn undefined_figures_are_none_and_print_as_n_a() {
        let s = statistics(&[], 0, &[], 1000.0, 6240.0);
        assert_eq!(s.profit_factor, None);
        assert_eq!(
            (s.win_rate_pct, s.avg_trade_bars, s.exposure_pct),
            (None, None, None)
        );
        let only_wins = statistics(&[5.0, 5.0], 1, &[trade(5.0, 1)], 1000.0, 6240.0);
        assert_eq!(only_wins.profit_factor, Some(f64::INFINITY));
        // Never a loss: no downside deviation.
        assert_eq!(only_wins.sortino, None);
        let text = summary_text("X_H1", 0, &Ledger::new(), &s);
        assert!(text.contains("\nsharpe           n/a (annualised, 6240 bars a year)\n"));
        assert!(
            text.contains("\nprofit factor    n/a (gross profit 0.00, gross loss 0.00)\n"),
            "{text}"
        );
        assert!(text.contains("\nwin rate         n/a (0 of 0)\n"), "{text}");
        assert!(
            text.contains("\navg trade        n/a\nexposure         n/a\n"),
            "{text}"
        );
        assert_eq!(fixed(only_wins.profit_factor, 4), "inf");
        assert_eq!(fixed(Some(-0.0), 2), "0.00");
    }

    fn pos(direction: i8, intensity: u8, entry_price: f64) -> Position {
        Position {
            direction,
            intensity,
            entry_price,
        }
    }

    /// FLAT → LONG_WEAK (bar 0) → hold → SHORT_STRONG (bar 2, a reversal: one trade closes,
    /// another opens) → FLAT (bar 4): two trades of 2 bars each; in a position after bars
    /// 0, 1, 2, 3: exposure 4/5.
    #[test]
    fn a_reversal_closes_one_trade_and_opens_another() {
        let flat = Position::FLAT;
        let long = pos(1, 1, 1.1);
        let short = pos(-1, 3, 1.2);
        let bars = [
            (flat, long, None, true, -0.1),
            (long, long, None, false, 0.5),
            (long, short, Some((1.19, 0.8)), true, 0.7),
            (short, short, None, false, 0.2),
            (short, flat, Some((1.25, -2.0)), false, -1.2),
        ];
        let mut ledger = Ledger::new();
        for (i, &(previous, position, closed, opened, equity)) in bars.iter().enumerate() {
            ledger.record(&BarRecord {
                time: 3600 * i as i64,
                previous,
                position,
                lots: [0.0, 0.01, 0.03, 0.05][usize::from(position.intensity)],
                closed,
                opened,
                close_costs: Costs::default(),
                open_costs: Costs::default(),
                equity,
                unrealized: 0.0,
            });
        }
        assert_eq!(ledger.trades.len(), 2);
        let (a, b) = (ledger.trades[0], ledger.trades[1]);
        assert_eq!(
            (a.entry_time, a.exit_time, a.bars, a.pnl),
            (0, 7200, 2, 0.8)
        );
        assert_eq!(
            (a.direction, a.intensity, a.lots, a.exit_price),
            (1, 1, 0.01, 1.19)
        );
        assert_eq!(
            (b.entry_time, b.exit_time, b.bars, b.pnl),
            (7200, 14400, 2, -2.0)
        );
        assert_eq!(
            (b.direction, b.intensity, b.lots, b.entry_price),
            (-1, 3, 0.05, 1.2)
        );
        assert_eq!(ledger.open, None);
        let s = ledger.statistics(1000.0, 6240.0);
        assert_eq!(s.exposure_pct, Some(80.0));
        assert!(close(s.profit_factor.unwrap(), 0.4));
        assert_eq!(s.win_rate_pct, Some(50.0));
        assert_eq!(
            trades_csv(&ledger.trades),
            "entry_time,exit_time,side,intensity,lots,entry_price,exit_price,bars,pnl\n\
             1970-01-01T00:00:00Z,1970-01-01T02:00:00Z,LONG,1,0.01,1.1000000000,1.1900000000,2,0.800000\n\
             1970-01-01T02:00:00Z,1970-01-01T04:00:00Z,SHORT,3,0.05,1.2000000000,1.2500000000,2,-2.000000\n"
        );
    }

    /// The contract's worked example (EURUSD, spread 7, slippage 2, commission 7.0 a lot, money
    /// per point 1.0) at 0.01 lots: a long opens 9 points above the close (spread 0.07 +
    /// slippage 0.02) and closes 2 below it (slippage 0.02) with commission 0.07; a short pays
    /// the spread when it closes. A round turn costs 0.18 either way.
    #[test]
    fn a_fill_pays_the_spread_on_the_ask_side_slippage_always_and_commission_at_the_close() {
        let c = CostParams {
            point: 0.00001,
            pip_value: 10.0,
            spread_points: 7.0,
            slippage_points: 2.0,
            commission_per_lot: 7.0,
            digits: 5,
            lot_sizes: [0.0, 0.01, 0.03, 0.05],
        };
        let of = |dir, opening| Costs::of_fill(&c, 1.0, dir, 1, opening);
        let near = |a: Costs, (s, l, k): (f64, f64, f64)| {
            close(a.spread, s) && close(a.slippage, l) && close(a.commission, k)
        };
        assert!(near(of(1, true), (0.07, 0.02, 0.0)), "{:?}", of(1, true));
        assert!(near(of(1, false), (0.0, 0.02, 0.07)), "{:?}", of(1, false));
        assert!(near(of(-1, true), (0.0, 0.02, 0.0)), "{:?}", of(-1, true));
        assert!(
            near(of(-1, false), (0.07, 0.02, 0.07)),
            "{:?}",
            of(-1, false)
        );
        for dir in [1, -1] {
            assert!(close(of(dir, true).plus(&of(dir, false)).total(), 0.18));
        }
        // The commission is the amount realized_pnl subtracts.
        let long = pos(1, 2, 1.0);
        let gross = oracle_core::position::gross_pnl(&c, 1.0, &long, 1.001);
        let realized = oracle_core::position::realized_pnl(&c, 1.0, &long, 1.001);
        assert_eq!(
            gross - Costs::of_fill(&c, 1.0, 1, 2, false).commission,
            realized
        );
    }

    /// A trade carries the costs of its opening and closing fills; the ledger keeps each bar's.
    #[test]
    fn a_trade_carries_the_costs_of_its_two_fills_and_each_bar_its_own() {
        let open = Costs {
            spread: 0.7,
            slippage: 0.2,
            commission: 0.0,
        };
        let shut = Costs {
            spread: 0.0,
            slippage: 0.2,
            commission: 0.7,
        };
        let long = pos(1, 1, 1.1);
        let mut ledger = Ledger::new();
        let bars = [
            (Position::FLAT, long, None, true, Costs::default(), open),
            (long, long, None, false, Costs::default(), Costs::default()),
            (
                long,
                Position::FLAT,
                Some((1.2, 5.0)),
                false,
                shut,
                Costs::default(),
            ),
        ];
        for (i, &(previous, position, closed, opened, close_costs, open_costs)) in
            bars.iter().enumerate()
        {
            ledger.record(&BarRecord {
                time: 60 * i as i64,
                previous,
                position,
                lots: 0.1,
                closed,
                opened,
                close_costs,
                open_costs,
                equity: 0.0,
                unrealized: 0.0,
            });
        }
        assert_eq!(ledger.trades.len(), 1);
        assert_eq!(ledger.trades[0].costs, open.plus(&shut));
        assert_eq!(ledger.costs, vec![open, Costs::default(), shut]);
        assert_eq!(ledger.times, vec![0, 60, 120]);
    }

    /// Peak 100 → 50 → 150 → 120 on C = 1000: under water by 0, 50 (4.545…%), 0, 30 (2.61%);
    /// the largest of each is the statistics' max drawdown.
    #[test]
    fn the_underwater_series_is_the_fall_from_the_running_peak_after_each_bar() {
        let equity = [100.0, 50.0, 150.0, 120.0];
        let got: Vec<(f64, f64)> = drawdowns(&equity, 1000.0).collect();
        assert_eq!(got[0], (0.0, 0.0));
        assert_eq!(got[1].0, 50.0);
        assert!(close(got[1].1, 50.0 / 1100.0 * 100.0));
        assert_eq!(got[2], (0.0, 0.0));
        assert_eq!(got[3].0, 30.0);
        assert!(close(got[3].1, 30.0 / 1150.0 * 100.0));
        let s = statistics(&equity, 0, &[], 1000.0, 260.0);
        assert_eq!(s.max_drawdown, got[1].0);
        assert_eq!(s.max_drawdown_pct, got[1].1);
    }

    /// Bars on 30 and 31 Jan, 1 and 2 Feb and 5 Mar 2024 with equity 10, −5, 20, 15, 40 on
    /// C = 1000: January −5 (−0.5%), February +20 (2%), March +25 (2.5%); a trade closed on
    /// 2 Feb counts in February; each bar's costs in its month.
    #[test]
    fn months_split_the_equity_change_trades_and_costs_by_calendar_month() {
        let day = |d: i64| 1_706_572_800 + (d - 30) * 86_400; // 2024-01-30T00:00:00Z + …
        let times = [day(30), day(31), day(32), day(33), day(65)];
        let equity = [10.0, -5.0, 20.0, 15.0, 40.0];
        let cost = |x: f64| Costs {
            spread: x,
            slippage: x / 2.0,
            commission: x / 4.0,
        };
        let ledger = Ledger {
            equity: equity.to_vec(),
            times: times.to_vec(),
            costs: vec![cost(4.0), cost(0.0), cost(8.0), cost(4.0), cost(0.0)],
            trades: vec![Trade {
                entry_time: day(31),
                exit_time: day(33),
                ..trade(1.0, 2)
            }],
            ..Ledger::default()
        };
        let m = months(&ledger, 1000.0);
        let ym: Vec<(i16, i8, usize, usize)> = m
            .iter()
            .map(|m| (m.year, m.month, m.bars, m.trades))
            .collect();
        assert_eq!(ym, vec![(2024, 1, 2, 0), (2024, 2, 2, 1), (2024, 3, 1, 0)]);
        let profit: Vec<f64> = m.iter().map(|m| m.net_profit).collect();
        assert_eq!(profit, vec![-5.0, 20.0, 25.0]);
        assert!(close(m[0].return_pct, -0.5));
        assert!(close(m[1].return_pct, 2.0));
        assert!(close(m[2].return_pct, 2.5));
        assert_eq!(m[0].costs, cost(4.0));
        assert_eq!(m[1].costs, cost(12.0));
        assert_eq!(m[2].costs, cost(0.0));
        assert!(months(&Ledger::new(), 1000.0).is_empty());
    }

    #[test]
    fn bars_a_year_per_timeframe() {
        assert_eq!(bars_per_year(Timeframe::M1), Some(374400.0));
        assert_eq!(bars_per_year(Timeframe::H1), Some(6240.0));
        assert_eq!(bars_per_year(Timeframe::M15), Some(24960.0));
        assert_eq!(bars_per_year(Timeframe::H12), Some(520.0));
        assert_eq!(bars_per_year(Timeframe::D1), Some(260.0));
        assert_eq!(bars_per_year(Timeframe::W1), Some(52.0));
        assert_eq!(bars_per_year(Timeframe::MN1), None);
        for tf in Timeframe::STREAMED {
            assert!(bars_per_year(tf).is_some(), "{tf}");
        }
    }
}
