//! The tearsheet's tables and its page.

use std::fmt::Write as _;

use oracle_model::{Backtest, Costs, Month, Trade, drawdowns, fixed, format_time, months};

use crate::chart::{Curve, equity_chart, underwater_chart};

/// `s` with `& < > "` escaped for HTML text and attributes.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page's style sheet (inline, no web font, no external resource).
pub const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fff}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 4px}h3{font-size:14px;margin:16px 0 4px}\
table{border-collapse:collapse;margin:10px 0}td,th{padding:3px 10px;border-bottom:1px solid #e3e6ea;text-align:right}\
td:first-child,th:first-child{text-align:left}th{font-weight:600;vertical-align:bottom}\
.ok{color:#1a7f37}.bad{color:#cf222e}.muted{color:#6e7781}.pos{color:#1a7f37}.neg{color:#cf222e}\
.chart{width:100%;max-width:900px;display:block}.grid{stroke:#eef0f2}.axis{stroke:#aab1b9}.base{stroke:#aab1b9;stroke-dasharray:4 3}\
.lbl{font-size:10px;fill:#6e7781}.ttl{font-size:12px;fill:#1b1f24}path{fill:none}\
.equity{stroke:#0969da;stroke-width:1.6}.under{fill:#cf222e;fill-opacity:.28;stroke:#cf222e;stroke-width:1}\
.figs td:nth-child(3){text-align:left;color:#6e7781}.figs th:nth-child(3){text-align:left}.months td.cell{min-width:44px}\
.trades{font-size:12px}.stats{font-size:12px}.stats td,.stats th{padding:3px 6px}details{margin:8px 0}summary{cursor:pointer;color:#0969da}\
.sheet{max-width:1100px}";

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn money(x: f64) -> String {
    fixed(Some(x), 2)
}

fn signed_class(x: f64) -> &'static str {
    if x > 0.0 {
        "pos"
    } else if x < 0.0 {
        "neg"
    } else {
        ""
    }
}

/// A fill price: 10 decimals as in the trade list, trailing zeros dropped (two kept).
fn price(x: f64) -> String {
    let s = fixed(Some(x), 10);
    let t = s.trim_end_matches('0');
    let decimals = t.split_once('.').map_or(0, |(_, d)| d.len());
    if decimals < 2 {
        fixed(Some(x), 2)
    } else {
        t.to_owned()
    }
}

fn side(direction: i8) -> &'static str {
    if direction > 0 { "LONG" } else { "SHORT" }
}

/// The figures of one backtest: (label, value, unit), in the order of `oracle backtest`'s
/// summary, with the costs after them.
fn figures(b: &Backtest, currency: &str) -> Vec<(&'static str, String, String)> {
    let s = &b.stats;
    let c = b.ledger.total_costs();
    let pct = |x: Option<f64>, d| x.map_or("n/a".to_owned(), |v| fixed(Some(v), d));
    let span = b.ledger.span.map_or("none".to_owned(), |(a, z)| {
        format!("{} to {}", format_time(a), format_time(z))
    });
    let open = b.ledger.open.map_or("none".to_owned(), |o| {
        format!(
            "{} since {} at {}, unrealised {} {currency}",
            oracle_model::position_name(o.direction, o.intensity),
            format_time(o.entry_time),
            price(o.entry_price),
            money(b.ledger.open_unrealized)
        )
    });
    let cur = currency.to_owned();
    vec![
        ("initial capital", money(s.capital), cur.clone()),
        (
            "bars",
            format!("{} decided", s.decisions),
            format!(
                "of {} accepted ({} warm-up; {} lines rejected)",
                b.bars,
                b.bars.saturating_sub(s.decisions),
                b.rejected
            ),
        ),
        ("decided", span, "bar times, UTC".to_owned()),
        ("net profit", money(s.net_profit), cur.clone()),
        (
            "total return",
            fixed(Some(s.total_return_pct), 4),
            "% of the initial capital".to_owned(),
        ),
        (
            "Sharpe",
            fixed(s.sharpe, 4),
            format!(
                "annualised ({} bars a year), risk-free 0",
                fixed(Some(s.bars_per_year), 0)
            ),
        ),
        (
            "Sortino",
            fixed(s.sortino, 4),
            "annualised, target 0".to_owned(),
        ),
        ("max drawdown", money(s.max_drawdown), cur.clone()),
        (
            "max drawdown %",
            fixed(Some(s.max_drawdown_pct), 4),
            "% of the account at its peak".to_owned(),
        ),
        (
            "profit factor",
            fixed(s.profit_factor, 4),
            "gross profit / gross loss".to_owned(),
        ),
        ("gross profit", money(s.gross_profit), cur.clone()),
        ("gross loss", money(s.gross_loss), cur.clone()),
        (
            "win rate",
            pct(s.win_rate_pct, 2),
            format!("% of closed trades ({} of {})", s.wins, s.trades),
        ),
        ("trades", s.trades.to_string(), "closed".to_owned()),
        (
            "avg trade length",
            pct(s.avg_trade_bars, 2),
            "bars".to_owned(),
        ),
        (
            "exposure",
            pct(s.exposure_pct, 2),
            "% of decided bars in a position".to_owned(),
        ),
        (
            "costs",
            money(c.total()),
            format!(
                "{currency}: spread {}, slippage {}, commission {}",
                money(c.spread),
                money(c.slippage),
                money(c.commission)
            ),
        ),
        ("open at end", open, String::new()),
    ]
}

fn figures_table(b: &Backtest, currency: &str) -> String {
    let mut s =
        String::from("<table class=\"figs\"><tr><th>figure</th><th>value</th><th>unit</th></tr>");
    for (label, value, unit) in figures(b, currency) {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(label),
            esc(&value),
            esc(&unit)
        );
    }
    s.push_str("</table>");
    s
}

/// One row per backtest with its statistics (the demo's per-model table); `href` links each
/// name to its section (`#NAME`).
pub fn stats_table(rows: &[(&str, &Backtest)], currency: &str) -> String {
    let cur = esc(currency);
    let mut s = format!(
        "<table class=\"stats\"><tr><th>model</th><th>decided bars</th><th>net profit, {cur}</th><th>total return, %</th>\
<th>Sharpe</th><th>Sortino</th><th>max drawdown, {cur}</th><th>max drawdown, %</th><th>profit factor</th>\
<th>win rate, %</th><th>trades</th><th>avg trade, bars</th><th>exposure, %</th><th>costs, {cur}</th></tr>"
    );
    for (name, b) in rows {
        let st = &b.stats;
        let _ = write!(
            s,
            "<tr><td><a href=\"#{n}\">{n}</a></td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            st.decisions,
            signed_class(st.net_profit),
            money(st.net_profit),
            fixed(Some(st.total_return_pct), 4),
            fixed(st.sharpe, 4),
            fixed(st.sortino, 4),
            money(st.max_drawdown),
            fixed(Some(st.max_drawdown_pct), 4),
            fixed(st.profit_factor, 4),
            fixed(st.win_rate_pct, 2),
            st.trades,
            fixed(st.avg_trade_bars, 2),
            fixed(st.exposure_pct, 2),
            money(b.ledger.total_costs().total()),
            n = esc(name)
        );
    }
    s.push_str("</table>");
    s
}

/// Monthly returns (% of the initial capital) as a year × month grid with the year's total.
pub fn returns_grid(months: &[Month], capital: f64) -> String {
    let mut s = String::from("<table class=\"months\"><tr><th>year</th>");
    for m in MONTHS {
        let _ = write!(s, "<th>{m}</th>");
    }
    s.push_str("<th>year</th></tr>");
    let worst = months
        .iter()
        .fold(0.0_f64, |a, m| a.max(m.return_pct.abs()))
        .max(1e-12);
    let mut years: Vec<i16> = months.iter().map(|m| m.year).collect();
    years.dedup();
    for y in years {
        let _ = write!(s, "<tr><td>{y}</td>");
        let mut profit = 0.0;
        for k in 1..=12_i8 {
            match months.iter().find(|m| m.year == y && m.month == k) {
                Some(m) => {
                    profit += m.net_profit;
                    let (r, g, b) = if m.return_pct >= 0.0 {
                        (26, 127, 55)
                    } else {
                        (207, 34, 46)
                    };
                    let alpha = 0.08 + 0.5 * m.return_pct.abs() / worst;
                    let _ = write!(
                        s,
                        "<td class=\"cell\" style=\"background:rgba({r},{g},{b},{alpha:.2})\" title=\"{} {}: {} bars\">{}</td>",
                        MONTHS[usize::from(k.unsigned_abs()) - 1],
                        y,
                        m.bars,
                        fixed(Some(m.return_pct), 2)
                    );
                }
                None => s.push_str("<td class=\"cell muted\"></td>"),
            }
        }
        let total = profit / capital * 100.0;
        let _ = write!(
            s,
            "<td class=\"{}\"><b>{}</b></td></tr>",
            signed_class(total),
            fixed(Some(total), 2)
        );
    }
    s.push_str("</table>");
    s
}

/// One row per month: bars, trades closed, net profit, return and the costs paid.
pub fn months_table(months: &[Month], currency: &str) -> String {
    let cur = esc(currency);
    let mut s = format!(
        "<table class=\"months\"><tr><th>month (UTC)</th><th>decided bars</th><th>trades closed</th><th>net profit, {cur}</th>\
<th>return, %</th><th>spread, {cur}</th><th>slippage, {cur}</th><th>commission, {cur}</th><th>costs, {cur}</th></tr>"
    );
    let mut total = Costs::default();
    for m in months {
        total = total.plus(&m.costs);
        let _ = write!(
            s,
            "<tr><td>{}-{:02}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            m.year,
            m.month,
            m.bars,
            m.trades,
            signed_class(m.net_profit),
            money(m.net_profit),
            fixed(Some(m.return_pct), 4),
            money(m.costs.spread),
            money(m.costs.slippage),
            money(m.costs.commission),
            money(m.costs.total())
        );
    }
    let _ = write!(
        s,
        "<tr><td><b>all</b></td><td></td><td></td><td></td><td></td><td>{}</td><td>{}</td><td>{}</td><td><b>{}</b></td></tr></table>",
        money(total.spread),
        money(total.slippage),
        money(total.commission),
        money(total.total())
    );
    s
}

/// The closed trades in closing order (and the position open at the end, if any).
pub fn trades_table(b: &Backtest, currency: &str) -> String {
    let cur = esc(currency);
    let mut s = format!(
        "<table class=\"trades\"><tr><th>#</th><th>entry (UTC)</th><th>exit (UTC)</th><th>side</th><th>intensity</th><th>lots</th>\
<th>entry price</th><th>exit price</th><th>bars</th><th>P&amp;L, {cur}</th><th>costs, {cur}</th></tr>"
    );
    let row = |s: &mut String, k: usize, t: &Trade| {
        let _ = write!(
            s,
            "<tr><td>{k}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            format_time(t.entry_time),
            format_time(t.exit_time),
            side(t.direction),
            t.intensity,
            fixed(Some(t.lots), 2),
            price(t.entry_price),
            price(t.exit_price),
            t.bars,
            signed_class(t.pnl),
            money(t.pnl),
            money(t.costs.total())
        );
    };
    for (k, t) in b.ledger.trades.iter().enumerate() {
        row(&mut s, k + 1, t);
    }
    if let Some(o) = b.ledger.open {
        let _ = write!(
            s,
            "<tr class=\"muted\"><td>open</td><td>{}</td><td>—</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>—</td><td>{}</td><td>{} unrealised</td><td>{}</td></tr>",
            format_time(o.entry_time),
            side(o.direction),
            o.intensity,
            fixed(Some(o.lots), 2),
            price(o.entry_price),
            b.ledger.equity.len().saturating_sub(1 + o.entry_index),
            money(b.ledger.open_unrealized),
            money(o.open_costs.total())
        );
    }
    s.push_str("</table>");
    s
}

/// One backtest's tearsheet: its figures, the account equity and underwater charts, the
/// monthly returns grid, the months' profit and costs, and the trade list. `id` is the
/// element id (`#id` links to it).
pub fn section(b: &Backtest, currency: &str, id: &str) -> String {
    let capital = b.stats.capital;
    let labels: Vec<String> = b.ledger.times.iter().map(|&t| format_time(t)).collect();
    let account = Curve::new(
        labels.clone(),
        b.ledger.equity.iter().map(|e| capital + e).collect(),
    );
    let under = Curve::new(
        labels,
        drawdowns(&b.ledger.equity, capital)
            .map(|(_, pct)| pct)
            .collect(),
    );
    let months = months(&b.ledger, capital);
    let mut s = String::new();
    let _ = write!(
        s,
        "<section class=\"sheet\" id=\"{id}\"><h2>{name}</h2>{figs}\
{eq}{uw}<h3>Monthly returns <span class=\"muted\">(% of the initial capital, not compounded; UTC months)</span></h3>{grid}\
<h3>Months: profit and costs <span class=\"muted\">({cur})</span></h3>{table}\
<h3>Trades <span class=\"muted\">({n} closed, in closing order; prices are the fills, spread and slippage included)</span></h3>{trades}</section>",
        id = esc(id),
        name = esc(&b.name),
        figs = figures_table(b, currency),
        eq = equity_chart(
            "Account equity: initial capital + net profit after each decided bar",
            currency,
            &account,
            capital
        ),
        uw = underwater_chart("Drawdown (underwater)", &under),
        grid = returns_grid(&months, capital),
        cur = esc(currency),
        table = months_table(&months, currency),
        n = b.ledger.trades.len(),
        trades = trades_table(b, currency),
    );
    s
}

/// The whole page of `oracle backtest --html`: one self-contained file (no script, no network).
/// `model` and `bars` name the inputs as the user gave them.
pub fn page(b: &Backtest, model: &str, bars: &str, currency: &str) -> String {
    let mut s = String::with_capacity(64 * 1024 + b.ledger.trades.len() * 400);
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{name} backtest — Oracle Trader v2</title><style>{STYLE}</style></head><body>\
<h1>Backtest tearsheet: {name}</h1><p class=\"muted\">model <code>{model}</code> · bars <code>{bars}</code> · initial capital {cap} {cur} · \
money in {cur} (the account currency of the model's <code>pip_value</code>) · written by <code>oracle backtest --html</code>; \
every figure as <code>oracle backtest</code> prints it (docs/backtest.md, docs/report.md)</p>{section}\
<p class=\"muted\">The twin over the bar file with the training environment's position rule, prices and costs (contract §6): nothing is closed at the end of the file.</p></body></html>",
        name = esc(&b.name),
        model = esc(model),
        bars = esc(bars),
        cap = money(b.stats.capital),
        cur = esc(currency),
        section = section(b, currency, &b.name),
    );
    s.push('\n');
    s
}
