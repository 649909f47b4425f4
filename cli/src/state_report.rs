//! `oracle report --state DIR`: the self-contained HTML report of a live or paper executor's
//! state folder (docs/report.md "A state folder"): the account equity and its drawdown from the
//! drift ledger (`drift.jsonl`), per-model statistics and the fills from the journals
//! (`journal.jsonl`: the live side, `paper-journal.jsonl`: the paper book; either or both),
//! monthly returns, and the prop-firm guard's day-by-day headroom from its journal records.
//!
//! Every money figure is in the account currency as the broker (or the paper book) gives it; a
//! closed trade's P&L is (exit − entry) × units in the symbol's quote currency, as the guard
//! computes a position's floating P&L. Nothing here writes to the folder.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use oracle_executor_core::config::ExecutorConfig;
use oracle_executor_core::journal::{Op, Record};
use oracle_executor_core::key::KeyText as _;
use oracle_executor_core::propfirm::GuardState;
use oracle_executor_core::risk::DayStart;
use oracle_model::{Costs, Month, fixed, format_time};
use oracle_report::{Curve, STYLE, esc};

/// `oracle report`.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The executor's state folder (`--state` of `oracle executor`: journal.jsonl and/or
    /// paper-journal.jsonl, drift.jsonl).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    /// Where to write the report [default: DIR/report.html].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The executor's config, for the guard's daily allowance and day zone [default:
    /// executor_config.json in DIR, else beside DIR].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The account currency's name on the report [default: the deposit currency the live
    /// executor read from the broker (DIR/deposit-currency), else "account currency"].
    #[arg(long, value_name = "CODE")]
    pub currency: Option<String>,
}

/// One filled order of a journal.
#[derive(Clone, Debug, PartialEq)]
pub struct Fill {
    /// Wall time of the intent (UTC seconds).
    pub ts: i64,
    /// The signal's bar time (UTC seconds).
    pub bt: i64,
    /// Model (`EURUSD_M15`).
    pub model: String,
    /// Symbol.
    pub symbol: String,
    /// Entry (`true`) or exit.
    pub open: bool,
    /// Buy side.
    pub buy: bool,
    /// Volume (cents).
    pub volume: i64,
    /// Fill price.
    pub price: f64,
    /// The broker's position.
    pub position_id: Option<u64>,
}

/// An entry and the exit that closed its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Closed {
    /// Model.
    pub model: String,
    /// Long (`true`) or short.
    pub long: bool,
    /// Entry and exit wall times (UTC seconds).
    pub entry_ts: i64,
    /// Exit wall time.
    pub exit_ts: i64,
    /// Entry price.
    pub entry_price: f64,
    /// Exit price.
    pub exit_price: f64,
    /// Volume (cents).
    pub volume: i64,
    /// (exit − entry) × units × direction, quote currency.
    pub pnl: f64,
}

/// A person's command as the report lists it: when, who, the command, done, the result.
pub type Command = (i64, String, String, bool, String);

/// One book's journal.
#[derive(Clone, Debug, Default)]
pub struct Side {
    /// `live` or `paper`.
    pub name: &'static str,
    /// The journal file.
    pub journal: PathBuf,
    /// Its filled orders, in journal order.
    pub fills: Vec<Fill>,
    /// Its guard records, in journal order.
    pub guards: Vec<GuardState>,
    /// Its closed guard days (`guard_day` records), in journal order.
    pub days: Vec<DayRecord>,
    /// A person's commands (`operator` records): when (UTC ms), who, what, done, the result.
    pub operator: Vec<Command>,
    /// A torn last line (no newline, not a record: a crash mid-write) was skipped.
    pub torn_tail: bool,
}

/// A `guard_day` record: a closed day of the guard as the executor saw it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DayRecord {
    /// The day's start (UTC ms).
    pub start_ms: i64,
    /// Its anchor.
    pub anchor: Option<f64>,
    /// Its daily floor.
    pub floor: Option<f64>,
    /// The lowest equity the guard saw in it.
    pub low: Option<f64>,
    /// The balance at its end.
    pub eod_balance: f64,
}

/// One row of the drift ledger, as the report uses it.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerRow {
    /// Bar open time (UTC seconds).
    pub t: i64,
    /// Model.
    pub model: String,
    /// The answering side's equity after the bar.
    pub equity: Option<f64>,
    /// The paper book's equity after the bar.
    pub paper_equity: Option<f64>,
    /// The ACK (`OK`, `HOLD`, `FAIL|SPREAD`…).
    pub ack: String,
}

/// What a state folder holds.
#[derive(Clone, Debug)]
pub struct StateFolder {
    /// The folder.
    pub dir: PathBuf,
    /// The sides found (live first).
    pub sides: Vec<Side>,
    /// The drift ledger's rows.
    pub ledger: Vec<LedgerRow>,
    /// The config, when found.
    pub config: Option<(PathBuf, ExecutorConfig)>,
    /// The operator journal's `enable`/`disable` requests (the side journals hold the halts,
    /// flattens and resumes): when (UTC seconds), who, the command, done, the result.
    pub switches: Vec<Command>,
}

/// Numbered lines (from 1) and a last line without its newline.
type Lines = (Vec<(usize, String)>, Option<String>);

/// The lines of `path` (1-based numbers), a torn last line (no newline) apart.
fn lines(path: &Path) -> anyhow::Result<Lines> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let complete = text.ends_with('\n');
    let mut all: Vec<(usize, String)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect();
    let tail = if complete {
        None
    } else {
        all.pop().map(|(_, l)| l)
    };
    all.retain(|(_, l)| !l.trim().is_empty());
    Ok((all, tail))
}

/// The side of one journal: its fills (an intent and its `filled` outcome) and guard records.
/// A line that is not a record is an error naming the file and the line; a last line without
/// its newline that is not a record is a torn write (skipped, noted on the report).
pub fn read_side(name: &'static str, path: &Path) -> anyhow::Result<Side> {
    let (rows, tail) = lines(path)?;
    let mut side = Side {
        name,
        journal: path.to_path_buf(),
        ..Side::default()
    };
    let mut intents: BTreeMap<String, Record> = BTreeMap::new();
    let mut records = Vec::with_capacity(rows.len() + 1);
    for (n, l) in &rows {
        let r = Record::from_line(l)
            .map_err(|e| anyhow!("{}: line {n}: not a journal record ({e})", path.display()))?;
        records.push(r);
    }
    if let Some(t) = tail.filter(|t| !t.trim().is_empty()) {
        match Record::from_line(&t) {
            Ok(r) => records.push(r),
            Err(_) => side.torn_tail = true,
        }
    }
    for r in records {
        match r {
            Record::Intent { ref coid, .. } => {
                intents.insert(coid.clone(), r);
            }
            Record::Outcome {
                coid,
                result,
                position_id,
                price,
                volume,
                ..
            } if result == "filled" => {
                let Some(Record::Intent {
                    ts,
                    bt,
                    model,
                    op,
                    symbol,
                    buy,
                    volume: asked,
                    position_id: closed,
                    ..
                }) = intents.remove(&coid)
                else {
                    continue;
                };
                side.fills.push(Fill {
                    ts,
                    bt,
                    model: model.model_name().to_string(),
                    symbol,
                    open: op == Op::Open,
                    buy,
                    volume: volume.unwrap_or(asked),
                    price: price.unwrap_or(f64::NAN),
                    position_id: position_id.or(closed),
                });
            }
            Record::Guard { state } => side.guards.push(state),
            Record::Operator {
                ts_ms,
                origin,
                command,
                ok,
                result,
            } => side
                .operator
                .push((ts_ms, origin, command.to_string(), ok, result)),
            Record::GuardDay {
                day_start_ms,
                anchor,
                floor,
                low_equity,
                eod_balance,
            } => side.days.push(DayRecord {
                start_ms: day_start_ms,
                anchor,
                floor,
                low: low_equity,
                eod_balance,
            }),
            _ => {}
        }
    }
    Ok(side)
}

/// The drift ledger's rows (`drift.jsonl`); a line that is not a row names the file and line.
pub fn read_ledger(path: &Path) -> anyhow::Result<Vec<LedgerRow>> {
    let (rows, tail) = lines(path)?;
    let parse = |l: &str| -> Option<LedgerRow> {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        Some(LedgerRow {
            t: oracle_ipc::time::parse_iso(v["bar_time"].as_str()?)?,
            model: v["model"].as_str()?.to_owned(),
            equity: v["equity"].as_f64(),
            paper_equity: v["paper_equity"].as_f64(),
            ack: v["ack"].as_str().unwrap_or("").to_owned(),
        })
    };
    let mut out = Vec::with_capacity(rows.len());
    for (n, l) in &rows {
        out.push(parse(l).ok_or_else(|| {
            anyhow!(
                "{}: line {n}: not a ledger row (bar_time, model, equity…)",
                path.display()
            )
        })?);
    }
    if let Some(r) = tail.as_deref().and_then(parse) {
        out.push(r);
    }
    Ok(out)
}

/// The `enable`/`disable` requests of the operator journal (`operator-journal.jsonl`); a line
/// that is not a record names the file and line.
pub fn read_switches(path: &Path) -> anyhow::Result<Vec<Command>> {
    let (rows, _torn) = lines(path)?;
    let mut out = Vec::new();
    for (n, l) in &rows {
        let v: serde_json::Value = serde_json::from_str(l)
            .ok()
            .filter(|v: &serde_json::Value| v["request"]["cmd"].is_string())
            .ok_or_else(|| {
                anyhow!(
                    "{}: line {n}: not an operator record (ts, origin, request…)",
                    path.display()
                )
            })?;
        let cmd = v["request"]["cmd"].as_str().unwrap_or("");
        if cmd == "enable" || cmd == "disable" {
            out.push((
                v["ts"].as_i64().unwrap_or(0),
                v["origin"].as_str().unwrap_or("").to_owned(),
                format!("{cmd} {}", v["request"]["symbol"].as_str().unwrap_or("?")),
                v["ok"].as_bool().unwrap_or(false),
                v["result"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    Ok(out)
}

/// Reads a state folder: the journals present, the ledger, the config (`config`, else
/// `executor_config.json` in the folder or beside it).
pub fn load(dir: &Path, config: Option<&Path>) -> anyhow::Result<StateFolder> {
    if !dir.is_dir() {
        bail!(
            "{}: no such folder (the executor's --state folder)",
            dir.display()
        );
    }
    let mut sides = Vec::new();
    for (name, file) in [("live", "journal.jsonl"), ("paper", "paper-journal.jsonl")] {
        let p = dir.join(file);
        if p.is_file() {
            sides.push(read_side(name, &p)?);
        }
    }
    let op = dir.join("operator-journal.jsonl");
    let switches = if op.is_file() {
        read_switches(&op)?
    } else {
        Vec::new()
    };
    let lp = dir.join("drift.jsonl");
    let ledger = if lp.is_file() {
        read_ledger(&lp)?
    } else {
        Vec::new()
    };
    let cp = match config {
        Some(p) => Some(p.to_path_buf()),
        None => [
            dir.join("executor_config.json"),
            dir.join("..").join("executor_config.json"),
        ]
        .into_iter()
        .find(|p| p.is_file()),
    };
    let config = match cp {
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("{}: cannot read", p.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", p.display()))?;
            let c = oracle_executor_core::config::from_value(&v).map_err(|errs| {
                let keys: Vec<String> = errs
                    .iter()
                    .map(|e| format!("{}: {}", e.key, e.msg))
                    .collect();
                anyhow!("{}: invalid config: {}", p.display(), keys.join("; "))
            })?;
            Some((p, c))
        }
        None => None,
    };
    Ok(StateFolder {
        dir: dir.to_path_buf(),
        sides,
        ledger,
        config,
        switches,
    })
}

/// Entries paired with the exit of their position (by position id), in exit order.
pub fn closed_trades(fills: &[Fill]) -> Vec<Closed> {
    let mut open: BTreeMap<u64, &Fill> = BTreeMap::new();
    let mut out = Vec::new();
    for f in fills {
        let Some(id) = f.position_id else { continue };
        if f.open {
            open.insert(id, f);
        } else if let Some(e) = open.remove(&id) {
            let units = e.volume.min(f.volume) as f64 / 100.0;
            let dir = if e.buy { 1.0 } else { -1.0 };
            out.push(Closed {
                model: e.model.clone(),
                long: e.buy,
                entry_ts: e.ts,
                exit_ts: f.ts,
                entry_price: e.price,
                exit_price: f.price,
                volume: e.volume.min(f.volume),
                pnl: (f.price - e.price) * units * dir,
            });
        }
    }
    out
}

/// One day of the guard (the zone's midnight to midnight).
#[derive(Clone, Debug, PartialEq)]
pub struct GuardDay {
    /// Its start (UTC seconds).
    pub start: i64,
    /// The balance at its midnight (the guard's anchor).
    pub anchor: Option<f64>,
    /// The daily floor: anchor − daily allowance (`None` without the config or the anchor).
    pub floor: Option<f64>,
    /// The lowest equity seen: the ledger's rows in the day and the equity at a halt.
    pub low: Option<f64>,
    /// The last equity of the day (ledger).
    pub end: Option<f64>,
    /// The balance at its end (its `guard_day` record; `None` while the day is open).
    pub eod_balance: Option<f64>,
    /// low − floor (money).
    pub headroom: Option<f64>,
    /// headroom / initial balance × 100.
    pub headroom_pct: Option<f64>,
    /// The halts that started in the day (`HALTED_DAILY_LOSS`…).
    pub halts: Vec<&'static str>,
}

/// The guard's days from its records (`guard` states and closed `guard_day`s) and an equity
/// series (UTC seconds, equity): one row per day the guard recorded, in time order. A closed
/// day's floor is its record's; an open day's is its anchor − `daily_pct` % of the initial
/// balance. The lowest equity is the lowest of the record's, the ledger's in the day and a
/// halt's.
pub fn guard_days(
    guards: &[GuardState],
    closed: &[DayRecord],
    equity: &[(i64, f64)],
    daily_pct: Option<f64>,
    zone: &DayStart,
) -> Vec<GuardDay> {
    let mut days: BTreeMap<i64, GuardDay> = BTreeMap::new();
    let initial = guards.last().map_or(0.0, |g| g.initial);
    let empty = |start| GuardDay {
        start,
        anchor: None,
        floor: None,
        low: None,
        end: None,
        eod_balance: None,
        headroom: None,
        headroom_pct: None,
        halts: Vec::new(),
    };
    for r in closed {
        let start = r.start_ms.div_euclid(1000);
        days.entry(start).or_insert_with(|| empty(start));
    }
    for g in guards {
        let start = g.day_start_ms.div_euclid(1000);
        let d = days.entry(start).or_insert_with(|| empty(start));
        if d.anchor.is_none() {
            d.anchor = g.day_anchor;
        }
        if let Some(h) = g.halted {
            let at = zone.day_start(h.at_ms.div_euclid(1000));
            if at == start && !d.halts.contains(&h.limit.code()) {
                d.halts.push(h.limit.code());
                d.low = Some(d.low.map_or(h.equity, |l: f64| l.min(h.equity)));
            }
        }
    }
    let lower = |l: Option<f64>, e: Option<f64>| match (l, e) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    for &(t, e) in equity {
        if let Some(d) = days.get_mut(&zone.day_start(t)) {
            d.low = Some(d.low.map_or(e, |l| l.min(e)));
            d.end = Some(e);
        }
    }
    for d in days.values_mut() {
        d.floor = daily_pct
            .zip(d.anchor)
            .map(|(p, a)| a - p / 100.0 * initial);
        if let Some(r) = closed
            .iter()
            .rev()
            .find(|r| r.start_ms.div_euclid(1000) == d.start)
        {
            d.anchor = r.anchor.or(d.anchor);
            d.floor = r.floor.or(d.floor);
            d.low = lower(d.low, r.low);
            d.eod_balance = Some(r.eod_balance);
        }
        d.headroom = d.floor.zip(d.low).map(|(f, l)| l - f);
        d.headroom_pct = d
            .headroom
            .filter(|_| initial > 0.0)
            .map(|h| h / initial * 100.0);
    }
    days.into_values().collect()
}

fn money(x: f64) -> String {
    fixed(Some(x), 2)
}

fn opt_money(x: Option<f64>) -> String {
    x.map_or("n/a".to_owned(), money)
}

fn class(x: f64) -> &'static str {
    if x > 0.0 {
        "pos"
    } else if x < 0.0 {
        "neg"
    } else {
        ""
    }
}

/// The equity of one side by bar time (the latest ledger row at each time): the live side's is
/// the ledger's `equity` (the answering side), the paper book's its `paper_equity` (or `equity`
/// when there is no live side).
pub fn side_equity(s: &StateFolder, side: &str) -> Vec<(i64, f64)> {
    let live = s.sides.iter().any(|x| x.name == "live");
    let mut at: BTreeMap<i64, f64> = BTreeMap::new();
    for r in &s.ledger {
        let e = if side == "paper" && live {
            r.paper_equity
        } else {
            r.equity.or(r.paper_equity)
        };
        if let Some(e) = e {
            at.insert(r.t, e);
        }
    }
    at.into_iter().collect()
}

/// The months (UTC) of an equity series: the change of the equity over each month, its return
/// on the first equity, and the trades closed in it.
fn months_of(eq: &[(i64, f64)], trades: &[Closed]) -> Vec<Month> {
    let capital = eq.first().map_or(0.0, |p| p.1);
    let mut out: Vec<Month> = Vec::new();
    let mut before = capital;
    let mut last = capital;
    let ym = |t: i64| {
        let d = oracle_ipc::time::date(t);
        (d.year(), d.month())
    };
    for &(t, e) in eq {
        let (y, m) = ym(t);
        if out.last().is_none_or(|x| (x.year, x.month) != (y, m)) {
            before = last;
            out.push(Month {
                year: y,
                month: m,
                bars: 0,
                net_profit: 0.0,
                return_pct: 0.0,
                trades: trades.iter().filter(|c| ym(c.exit_ts) == (y, m)).count(),
                costs: Costs::default(),
            });
        }
        if let Some(cur) = out.last_mut() {
            cur.bars += 1;
            cur.net_profit = e - before;
            cur.return_pct = if capital > 0.0 {
                cur.net_profit / capital * 100.0
            } else {
                0.0
            };
        }
        last = e;
    }
    out
}

fn account_charts(title: &str, eq: &[(i64, f64)], currency: &str) -> String {
    let Some(&(_, first)) = eq.first() else {
        return "<p class=\"muted\">no equity in the ledger yet</p>".to_owned();
    };
    let labels: Vec<String> = eq.iter().map(|p| format_time(p.0)).collect();
    let values: Vec<f64> = eq.iter().map(|p| p.1).collect();
    let from_first: Vec<f64> = values.iter().map(|e| e - first).collect();
    let under = Curve::new(
        labels.clone(),
        oracle_model::drawdowns(&from_first, first)
            .map(|(_, pct)| pct)
            .collect(),
    );
    let (dd, dd_pct) = oracle_model::drawdowns(&from_first, first)
        .fold((0.0_f64, 0.0_f64), |(a, b), (m, p)| (a.max(m), b.max(p)));
    let last = values.last().copied().unwrap_or(first);
    format!(
        "{}{}<table class=\"figs\"><tr><th>figure</th><th>value</th><th>unit</th></tr>\
<tr><td>first equity</td><td>{}</td><td>{cur}</td></tr>\
<tr><td>last equity</td><td>{}</td><td>{cur}</td></tr>\
<tr><td>net change</td><td class=\"{}\">{}</td><td>{cur}</td></tr>\
<tr><td>max drawdown</td><td>{}</td><td>{cur}</td></tr>\
<tr><td>max drawdown %</td><td>{}</td><td>% of the account at its peak</td></tr></table>",
        oracle_report::equity_chart(title, currency, &Curve::new(labels, values), first),
        oracle_report::underwater_chart(&format!("{title}: drawdown (underwater)"), &under),
        money(first),
        money(last),
        class(last - first),
        money(last - first),
        money(dd),
        fixed(Some(dd_pct), 4),
        cur = esc(currency),
    )
}

fn models_table(side: &Side, trades: &[Closed], ledger: &[LedgerRow]) -> String {
    let mut names: Vec<&str> = side.fills.iter().map(|f| f.model.as_str()).collect();
    names.extend(ledger.iter().map(|r| r.model.as_str()));
    names.sort_unstable();
    names.dedup();
    let mut s = String::from(
        "<table class=\"stats\"><tr><th>model</th><th>fills</th><th>closed trades</th><th>wins</th>\
<th>win rate, %</th><th title=\"(exit − entry) × units, in the symbol's quote currency\">closed P&amp;L, quote currency</th><th>ledger bars</th><th>refusals</th></tr>",
    );
    for n in names {
        let fills = side.fills.iter().filter(|f| f.model == n).count();
        let closed: Vec<&Closed> = trades.iter().filter(|c| c.model == n).collect();
        let wins = closed.iter().filter(|c| c.pnl > 0.0).count();
        let pnl: f64 = closed.iter().map(|c| c.pnl).sum();
        let rows: Vec<&LedgerRow> = ledger.iter().filter(|r| r.model == n).collect();
        let refusals = rows
            .iter()
            .filter(|r| r.ack.starts_with("FAIL") || r.ack.starts_with("WAIT_SYNC"))
            .count();
        let rate = (!closed.is_empty()).then(|| wins as f64 / closed.len() as f64 * 100.0);
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{fills}</td><td>{}</td><td>{wins}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{refusals}</td></tr>",
            esc(n),
            closed.len(),
            fixed(rate, 2),
            class(pnl),
            money(pnl),
            rows.len()
        );
    }
    s.push_str("</table>");
    s
}

fn fills_table(side: &Side) -> String {
    let mut s = String::from(
        "<table class=\"trades\"><tr><th>#</th><th>time (UTC)</th><th>bar (UTC)</th><th>model</th><th>symbol</th>\
<th>op</th><th>side</th><th>units</th><th>price</th><th>position</th></tr>",
    );
    for (i, f) in side.fills.iter().enumerate() {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            format_time(f.ts),
            format_time(f.bt),
            esc(&f.model),
            esc(&f.symbol),
            if f.open { "entry" } else { "exit" },
            if f.buy { "BUY" } else { "SELL" },
            fixed(Some(f.volume as f64 / 100.0), 2),
            fixed(Some(f.price), 5),
            f.position_id.map_or("-".to_owned(), |p| p.to_string())
        );
    }
    s.push_str("</table>");
    s
}

fn guard_table(days: &[GuardDay], zone: &DayStart, currency: &str, has_pct: bool) -> String {
    let cur = esc(currency);
    let mut s = format!(
        "<table class=\"guard\"><tr><th>day ({})</th><th>starts (UTC)</th><th>anchor, {cur}</th><th>daily floor, {cur}</th>\
<th>lowest equity, {cur}</th><th>day-end equity, {cur}</th><th>end balance, {cur}</th><th>headroom, {cur}</th><th>headroom, % of initial</th><th>halts</th></tr>",
        esc(zone.name())
    );
    for d in days {
        let local = format_time(d.start + 12 * 3600);
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            &local[..10],
            format_time(d.start),
            opt_money(d.anchor),
            opt_money(d.floor),
            opt_money(d.low),
            opt_money(d.end),
            d.eod_balance.map_or("open".to_owned(), money),
            class(d.headroom.unwrap_or(0.0)),
            opt_money(d.headroom),
            fixed(d.headroom_pct, 2),
            if d.halts.is_empty() {
                "none".to_owned()
            } else {
                d.halts.join(", ")
            }
        );
    }
    s.push_str("</table>");
    if !has_pct {
        s.push_str("<p class=\"muted\">daily floor and headroom: n/a, no executor_config.json found (give --config)</p>");
    }
    s
}

/// Rows of (time in UTC units of `per_second`, origin, command, done, result).
fn operator_table(rows: &[Command], per_second: i64) -> String {
    let mut s = String::from(
        "<table class=\"operator\"><tr><th>time (UTC)</th><th>origin</th><th>command</th><th>done</th><th>result</th></tr>",
    );
    for (ts_ms, origin, command, ok, result) in rows {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            format_time(ts_ms.div_euclid(per_second)),
            esc(origin),
            esc(command),
            if *ok { "ok" } else { "bad" },
            if *ok { "yes" } else { "refused" },
            esc(result)
        );
    }
    s.push_str("</table>");
    s
}

/// The report's HTML (one self-contained page).
pub fn html(s: &StateFolder, currency: &str) -> String {
    let zone = s
        .config
        .as_ref()
        .map_or_else(DayStart::default, |c| c.1.risk.day_start.clone());
    let pct = s.config.as_ref().map(|c| c.1.risk.daily_loss_pct);
    let sides: Vec<&str> = s.sides.iter().map(|x| x.name).collect();
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Oracle Trader state report: {dir}</title>\
<style>{STYLE}</style></head><body><div class=\"sheet\"><h1>Oracle Trader: state report</h1>\
<p class=\"muted\">state folder {dir}; sides: {sides}; money in {cur}; times UTC unless named</p>",
        dir = esc(&s.dir.display().to_string()),
        sides = if sides.is_empty() {
            "none (no journal yet)".to_owned()
        } else {
            sides.join(", ")
        },
        cur = esc(currency),
    );
    if let Some((p, _)) = &s.config {
        let _ = write!(
            h,
            "<p class=\"muted\">config {}: daily loss allowance {}% of the initial balance, day starts at midnight {}</p>",
            esc(&p.display().to_string()),
            fixed(pct, 2),
            esc(zone.name())
        );
    }
    let total_fills: usize = s.sides.iter().map(|x| x.fills.len()).sum();
    if total_fills == 0 {
        h.push_str("<p id=\"no-trades\"><b>no trades yet</b></p>");
    }
    for side in &s.sides {
        let trades = closed_trades(&side.fills);
        let eq = side_equity(s, side.name);
        let _ = write!(
            h,
            "<h2 id=\"side-{n}\">{n} side</h2><p class=\"muted\">journal {j}: <span class=\"fills\">{f}</span> fills, {c} closed trades</p>",
            n = side.name,
            j = esc(&side.journal.display().to_string()),
            f = side.fills.len(),
            c = trades.len()
        );
        if side.torn_tail {
            h.push_str(
                "<p class=\"bad\">the journal's last line is torn (a crash mid-write): skipped</p>",
            );
        }
        h.push_str(&account_charts(
            &format!("{} equity (drift ledger)", side.name),
            &eq,
            currency,
        ));
        h.push_str("<h3>Per model</h3>");
        h.push_str(&models_table(side, &trades, &s.ledger));
        let months = months_of(&eq, &trades);
        if !months.is_empty() {
            let capital = eq.first().map_or(1.0, |p| p.1);
            h.push_str("<h3>Monthly returns (% of the first equity)</h3>");
            h.push_str(&oracle_report::returns_grid(&months, capital));
            h.push_str(&oracle_report::months_table(&months, currency));
            h.push_str("<p class=\"muted\">costs: in the broker's equity (spread, commission and swaps are not itemised in the journal)</p>");
        }
        h.push_str("<h3>Prop-firm guard: day by day</h3>");
        if side.guards.is_empty() {
            h.push_str(
                "<p class=\"muted\">no guard record in the journal (no risk.preset, or no account read yet)</p>",
            );
        } else {
            let days = guard_days(&side.guards, &side.days, &eq, pct, &zone);
            h.push_str(&guard_table(&days, &zone, currency, pct.is_some()));
        }
        if !side.operator.is_empty() {
            h.push_str("<h3>Operator commands</h3>");
            h.push_str(&operator_table(&side.operator, 1000));
        }
        let _ = write!(
            h,
            "<details><summary>Fills ({})</summary>{}</details>",
            side.fills.len(),
            fills_table(side)
        );
    }
    if !s.switches.is_empty() {
        h.push_str("<h2 id=\"switches\">Symbols enabled and disabled (operator journal)</h2>");
        h.push_str(&operator_table(&s.switches, 1));
    }
    h.push_str("</div></body></html>\n");
    h
}

/// The deposit currency a live executor recorded in the state folder (`deposit-currency`), else
/// "account currency" (a paper-only folder, or one from before it was recorded).
pub fn recorded_currency(state: &Path) -> String {
    std::fs::read_to_string(state.join("deposit-currency"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "account currency".to_string())
}

/// `oracle report --state DIR [--out FILE]`.
pub fn run_report(a: &ReportArgs) -> ExitCode {
    match report(a) {
        Ok(p) => {
            println!("report: {}", p.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oracle report: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn report(a: &ReportArgs) -> anyhow::Result<PathBuf> {
    let s = load(&a.state, a.config.as_deref())?;
    let out = a.out.clone().unwrap_or_else(|| a.state.join("report.html"));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the folder", dir.display()))?;
    }
    let currency = a
        .currency
        .clone()
        .unwrap_or_else(|| recorded_currency(&a.state));
    std::fs::write(&out, html(&s, &currency))
        .with_context(|| format!("{}: cannot write the report", out.display()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oracle_executor_core::propfirm::{Halt, Limit};

    fn t(iso: &str) -> i64 {
        oracle_ipc::time::parse_iso(iso).expect("time")
    }

    fn guard(day_start: &str, anchor: f64, halted: Option<(&str, f64)>) -> GuardState {
        GuardState {
            initial: 100_000.0,
            day_start_ms: t(day_start) * 1000,
            day_anchor: Some(anchor),
            last_balance: Some(anchor),
            highest_eod_balance: 100_000.0,
            best_day_profit: 0.0,
            trading_days: 1,
            last_trading_day_ms: None,
            halted: halted.map(|(at, equity)| Halt {
                limit: Limit::DailyLoss,
                at_ms: t(at) * 1000,
                equity,
            }),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("oracle-state-report-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("tmp");
        d
    }

    #[test]
    fn the_guard_days_split_at_prague_midnight_with_floor_low_end_and_halts() {
        // Winter: Prague is UTC+1, its midnight of 2026-01-15 is 2026-01-14T23:00:00Z.
        let guards = [
            guard("2026-01-13T23:00:00Z", 100_000.0, None),
            guard(
                "2026-01-13T23:00:00Z",
                100_000.0,
                Some(("2026-01-14T20:00:00Z", 96_100.0)),
            ),
            guard("2026-01-14T23:00:00Z", 96_500.0, None),
        ];
        let equity = [
            (t("2026-01-14T10:00:00Z"), 99_000.0),
            (t("2026-01-14T22:45:00Z"), 96_500.0),
            // 23:15 UTC is already the next Prague day.
            (t("2026-01-14T23:15:00Z"), 96_000.0),
            (t("2026-01-15T12:00:00Z"), 96_800.0),
        ];
        let days = guard_days(&guards, &[], &equity, Some(5.0), &DayStart::default());
        assert_eq!(days.len(), 2, "{days:?}");
        let (a, b) = (&days[0], &days[1]);
        assert_eq!(a.start, t("2026-01-13T23:00:00Z"));
        assert_eq!(a.floor, Some(95_000.0));
        assert_eq!(
            a.low,
            Some(96_100.0),
            "the halt's equity is the day's lowest"
        );
        assert_eq!(a.end, Some(96_500.0));
        assert_eq!(a.headroom, Some(1_100.0));
        assert!(
            a.headroom_pct.is_some_and(|p| (p - 1.1).abs() < 1e-9),
            "{a:?}"
        );
        assert_eq!(a.halts, vec!["HALTED_DAILY_LOSS"]);
        assert_eq!(b.start, t("2026-01-14T23:00:00Z"));
        assert_eq!(b.floor, Some(91_500.0), "the new anchor moves the floor");
        assert_eq!(b.low, Some(96_000.0));
        assert_eq!(b.end, Some(96_800.0));
        assert_eq!(b.headroom, Some(4_500.0));
        assert!(b.halts.is_empty(), "a halt is counted on its own day only");
        let page = guard_table(&days, &DayStart::default(), "USD", true);
        assert!(
            page.contains("<td>2026-01-14</td><td>2026-01-13T23:00:00Z</td>"),
            "{page}"
        );
        assert!(
            page.contains("<td>2026-01-15</td><td>2026-01-14T23:00:00Z</td>"),
            "{page}"
        );
        assert!(
            page.contains("1100.00") && page.contains("HALTED_DAILY_LOSS"),
            "{page}"
        );
    }

    #[test]
    fn the_guard_floor_is_na_without_the_config() {
        let days = guard_days(
            &[guard("2026-01-13T23:00:00Z", 100_000.0, None)],
            &[],
            &[(t("2026-01-14T10:00:00Z"), 99_000.0)],
            None,
            &DayStart::default(),
        );
        assert_eq!(days[0].floor, None);
        assert_eq!(days[0].headroom, None);
        assert_eq!(days[0].low, Some(99_000.0));
    }

    #[test]
    fn a_closed_days_record_gives_its_floor_end_balance_and_the_lowest_equity_between_bars() {
        let closed = [DayRecord {
            start_ms: t("2026-01-13T23:00:00Z") * 1000,
            anchor: Some(100_000.0),
            floor: Some(96_000.0),
            low: Some(97_500.0),
            eod_balance: 98_800.0,
        }];
        let days = guard_days(
            &[guard("2026-01-13T23:00:00Z", 100_000.0, None)],
            &closed,
            &[(t("2026-01-14T10:00:00Z"), 99_000.0)],
            None,
            &DayStart::default(),
        );
        assert_eq!(
            days[0].floor,
            Some(96_000.0),
            "no config: the record's floor"
        );
        assert_eq!(days[0].low, Some(97_500.0), "lower than the ledger's rows");
        assert_eq!(days[0].headroom, Some(1_500.0));
        assert_eq!(days[0].eod_balance, Some(98_800.0));
        assert_eq!(days[0].end, Some(99_000.0));
    }

    #[test]
    fn a_closed_day_without_a_guard_state_record_still_has_its_row() {
        let closed = [DayRecord {
            start_ms: t("2026-01-12T23:00:00Z") * 1000,
            anchor: Some(100_000.0),
            floor: Some(95_000.0),
            low: Some(99_100.0),
            eod_balance: 99_500.0,
        }];
        let days = guard_days(
            &[guard("2026-01-13T23:00:00Z", 99_500.0, None)],
            &closed,
            &[],
            Some(5.0),
            &DayStart::default(),
        );
        assert_eq!(days.len(), 2, "{days:?}");
        assert_eq!(days[0].start, t("2026-01-12T23:00:00Z"));
        assert_eq!(days[0].headroom, Some(4_100.0));
        assert_eq!(days[0].eod_balance, Some(99_500.0));
        assert_eq!(days[1].floor, Some(94_500.0));
    }

    #[test]
    fn a_corrupt_journal_line_is_an_error_naming_the_file_and_its_line() {
        let d = tmp("corrupt");
        let g = Record::Guard {
            state: guard("2026-01-13T23:00:00Z", 100_000.0, None),
        };
        let mut text = String::from_utf8(
            oracle_executor_core::journal::encode_lines(&[g.clone(), g]).expect("lines"),
        )
        .expect("utf8");
        text.push_str("{\"t\":\"guard\",\"state\":\n");
        std::fs::write(d.join("paper-journal.jsonl"), text).expect("write");
        let e = format!("{:#}", load(&d, None).expect_err("corrupt"));
        assert!(e.contains("paper-journal.jsonl: line 3:"), "{e}");
    }

    #[test]
    fn a_corrupt_operator_journal_line_is_an_error_naming_the_file_and_its_line() {
        let d = tmp("corrupt-operator");
        std::fs::write(
            d.join("operator-journal.jsonl"),
            "{\"ts\":1,\"origin\":\"unix:a\",\"request\":{\"cmd\":\"status\"},\"ok\":true,\"result\":\"\"}\nnot json\n",
        )
        .expect("write");
        let e = format!("{:#}", load(&d, None).expect_err("corrupt"));
        assert!(e.contains("operator-journal.jsonl: line 2:"), "{e}");
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_noted() {
        let d = tmp("torn");
        std::fs::write(d.join("journal.jsonl"), "{\"t\":\"gua").expect("write");
        let s = load(&d, None).expect("a torn tail is no error");
        assert!(s.sides[0].torn_tail);
        assert!(html(&s, "USD").contains("torn"));
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_it() {
        let d = tmp("missing").join("nope");
        let e = format!("{:#}", load(&d, None).expect_err("missing"));
        assert!(
            e.contains(&d.display().to_string()) && e.contains("no such folder"),
            "{e}"
        );
    }

    #[test]
    fn an_empty_folder_is_a_report_with_no_trades_yet() {
        let d = tmp("empty");
        let s = load(&d, None).expect("empty is fine");
        let page = html(&s, "USD");
        assert!(page.contains("no trades yet"), "{page}");
        assert!(page.contains("sides: none (no journal yet)"), "{page}");
    }

    #[test]
    fn fills_pair_into_closed_trades_by_position_with_quote_pnl() {
        let f = |ts, open, buy, price, id| Fill {
            ts,
            bt: ts,
            model: "EURUSD_M15".into(),
            symbol: "EURUSD".into(),
            open,
            buy,
            volume: 1_000_000,
            price,
            position_id: Some(id),
        };
        let trades = closed_trades(&[
            f(1, true, true, 1.1000, 7),
            f(2, true, false, 1.2000, 8),
            f(3, false, false, 1.1010, 7),
            f(4, false, true, 1.2020, 8),
        ]);
        assert_eq!(trades.len(), 2);
        assert!((trades[0].pnl - 10.0).abs() < 1e-6, "{trades:?}");
        assert!((trades[1].pnl + 20.0).abs() < 1e-6, "{trades:?}");
        assert!(trades[0].long && !trades[1].long);
    }
}
