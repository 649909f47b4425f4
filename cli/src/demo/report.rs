//! The self-contained HTML report: the run's checks; the account equity of the executor's
//! ledger and its drawdown; per-model statistics; per model, virtual vs real vs paper position
//! over the live bars with refusals marked, and its tearsheet (`oracle-report`, docs/report.md).
//! Inline SVG and CSS, no scripts, no external resources.

use super::Summary;
use super::view::{ModelView, State};
use oracle_model::Backtest;
use oracle_report::{Curve, esc};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Each model's backtest, or why there is none.
pub type Backtests = BTreeMap<String, Result<Backtest, String>>;

/// Per model, `oracle backtest` (the same code) over exactly the bars its twin ran in the demo:
/// `trace/NAME.bars.final.csv`, written by the replay comparison (history from the first
/// decision on, then the live bars), with the default capital.
pub fn backtests(state: &State, models: &Path, out: &Path) -> Backtests {
    state
        .models
        .keys()
        .map(|name| {
            let bars = out.join(format!("trace/{name}.bars.final.csv"));
            let zip = models.join(format!("{name}.zip"));
            let run = if bars.is_file() {
                oracle_model::backtest(
                    &zip,
                    &bars,
                    oracle_model::DEFAULT_CAPITAL,
                    &mut std::io::sink(),
                )
                .map_err(|e| e.to_string())
            } else {
                Err(format!("{}: no bars (no trace)", bars.display()))
            };
            (name.clone(), run)
        })
        .collect()
}

/// The account equity of the executor's ledger by bar time: per time the latest ledger row at
/// or before it, from the first row on.
pub fn account_equity(state: &State) -> Curve {
    let mut at: BTreeMap<&str, f64> = BTreeMap::new();
    for m in state.models.values() {
        for p in &m.points {
            if let Some(e) = p.equity {
                at.insert(p.bar_time.as_str(), e);
            }
        }
    }
    let (labels, values) = at.into_iter().map(|(t, e)| (t.to_owned(), e)).unzip();
    Curve::new(labels, values)
}

/// The account's equity chart and its drawdown under the running peak (the backtest's
/// drawdown series, `oracle_model::drawdowns`, with the first row's equity as the capital).
fn account_sheet(state: &State) -> String {
    let eq = account_equity(state);
    let Some(&first) = eq.values.first() else {
        return String::new();
    };
    let from_first: Vec<f64> = eq.values.iter().map(|e| e - first).collect();
    let under = Curve::new(
        eq.labels.clone(),
        oracle_model::drawdowns(&from_first, first)
            .map(|(_, pct)| pct)
            .collect(),
    );
    format!(
        "<h2>Account</h2>{}{}",
        oracle_report::equity_chart(
            "Account equity (executor ledger; dashed: its first row)",
            "USD",
            &eq,
            first
        ),
        oracle_report::underwater_chart("Account drawdown (underwater)", &under)
    )
}

/// The per-model statistics table and the models without one.
fn stats_sheet(backtests: &Backtests) -> String {
    let rows: Vec<(&str, &Backtest)> = backtests
        .iter()
        .filter_map(|(n, b)| b.as_ref().ok().map(|b| (n.as_str(), b)))
        .collect();
    let mut s = format!(
        "<h2>Per-model statistics</h2><p class=\"muted\">each model's twin over the bars it ran here (its history from the first decision, then the live bars), as <code>oracle backtest</code> computes them (docs/backtest.md, docs/report.md): initial capital {} USD per model, Sharpe and Sortino annualised, money in USD</p>",
        oracle_model::fixed(Some(oracle_model::DEFAULT_CAPITAL), 2)
    );
    s.push_str(&oracle_report::stats_table(&rows, "USD"));
    for (n, b) in backtests {
        if let Err(e) = b {
            let _ = write!(
                s,
                "<p class=\"bad\">{}: no statistics: {}</p>",
                esc(n),
                esc(e)
            );
        }
    }
    s
}

const W: f64 = 900.0;
const PAD: f64 = 40.0;

fn x_of(i: usize, n: usize) -> f64 {
    PAD + if n <= 1 {
        0.0
    } else {
        (W - 2.0 * PAD) * i as f64 / (n - 1) as f64
    }
}

/// A step line through (i, value) points.
fn step_path(vals: &[Option<f64>], n: usize, y: impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut prev: Option<f64> = None;
    for (i, v) in vals.iter().enumerate() {
        let Some(v) = *v else { continue };
        let x = x_of(i, n);
        match prev {
            None => {
                let _ = write!(d, "M{x:.1},{:.1}", y(v));
            }
            Some(_) => {
                let _ = write!(d, " H{x:.1} V{:.1}", y(v));
            }
        }
        prev = Some(v);
    }
    if prev.is_some() {
        let _ = write!(d, " H{:.1}", x_of(n.saturating_sub(1), n) + 4.0);
    }
    d
}

fn line_path(vals: &[Option<f64>], n: usize, y: impl Fn(f64) -> f64) -> String {
    let mut d = String::new();
    for (i, v) in vals.iter().enumerate() {
        let Some(v) = *v else { continue };
        let _ = write!(
            d,
            "{}{:.1},{:.1}",
            if d.is_empty() { "M" } else { " L" },
            x_of(i, n),
            y(v)
        );
    }
    d
}

fn carry(vals: impl Iterator<Item = Option<i8>>) -> Vec<Option<f64>> {
    let mut last = None;
    vals.map(|v| {
        if v.is_some() {
            last = v;
        }
        last.map(f64::from)
    })
    .collect()
}

fn position_chart(m: &ModelView) -> String {
    let n = m.points.len();
    let h = 150.0;
    let y = |v: f64| 10.0 + (3.0 - v) / 6.0 * (h - 30.0);
    let virt: Vec<Option<f64>> = m.points.iter().map(|p| Some(f64::from(p.virt))).collect();
    let real = carry(m.points.iter().map(|p| p.real));
    let paper = carry(m.points.iter().map(|p| p.paper));
    let mut s = format!(
        "<svg viewBox=\"0 0 {W} {h}\" class=\"chart\" role=\"img\" aria-label=\"positions\">"
    );
    for lvl in -3..=3 {
        let yy = y(f64::from(lvl));
        let _ = write!(
            s,
            "<line x1=\"{PAD}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" class=\"{}\"/><text x=\"{}\" y=\"{:.1}\" class=\"lbl\">{lvl:+}</text>",
            W - PAD,
            if lvl == 0 { "axis" } else { "grid" },
            PAD - 24.0,
            yy + 4.0
        );
    }
    let _ = write!(
        s,
        "<path d=\"{}\" class=\"paper\"/>",
        step_path(&paper, n, y)
    );
    let _ = write!(s, "<path d=\"{}\" class=\"real\"/>", step_path(&real, n, y));
    let _ = write!(s, "<path d=\"{}\" class=\"virt\"/>", step_path(&virt, n, y));
    for (i, p) in m.points.iter().enumerate() {
        if let (Some(r), true) = (&p.refusal, p.marked) {
            let x = x_of(i, n);
            let _ = write!(
                s,
                "<g class=\"refusal\"><title>{} {}</title><path d=\"M{x:.1},{:.1} l-5,-9 h10 z\"/><line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"10\" y2=\"{:.1}\"/></g>",
                esc(&p.bar_time),
                esc(r),
                h - 12.0,
                h - 20.0
            );
        }
    }
    if let (Some(a), Some(b)) = (m.points.first(), m.points.last()) {
        let _ = write!(
            s,
            "<text x=\"{PAD}\" y=\"{}\" class=\"lbl\">{}</text><text x=\"{}\" y=\"{}\" class=\"lbl\" text-anchor=\"end\">{}</text>",
            h - 2.0,
            esc(&a.bar_time),
            W - PAD,
            h - 2.0,
            esc(&b.bar_time)
        );
    }
    s.push_str("</svg>");
    s
}

/// One P&L series of a chart: CSS class, legend label, values (None: no value at that x).
pub struct Series<'a> {
    /// CSS class of the line (`virt`, `real`, `paper`).
    pub class: &'a str,
    /// Legend label.
    pub label: &'a str,
    /// One value per x, in account money.
    pub values: Vec<Option<f64>>,
}

/// A P&L chart: every series on one scale, in `unit` (account money), with a labelled zero,
/// top and bottom, and a legend.
pub fn pnl_chart(
    title: &str,
    unit: &str,
    series: &[Series<'_>],
    first: &str,
    last: &str,
) -> String {
    let n = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let h = 130.0;
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold((0.0f64, 0.0f64), |(a, b), x| (a.min(*x), b.max(*x)));
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    let y = move |v: f64| 18.0 + (hi - v) / (hi - lo) * (h - 36.0);
    let mut s = format!(
        "<svg viewBox=\"0 0 {W} {h}\" class=\"chart\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    let _ = write!(
        s,
        "<text x=\"{PAD}\" y=\"11\" class=\"lbl\">{} ({})</text>",
        esc(title),
        esc(unit)
    );
    let mut lx = W - PAD;
    for sr in series.iter().rev() {
        let _ = write!(
            s,
            "<text x=\"{lx:.1}\" y=\"11\" class=\"lbl\" text-anchor=\"end\">{}</text><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"8\" y2=\"8\" class=\"{} eq\"/>",
            esc(sr.label),
            lx - 6.5 * sr.label.chars().count() as f64 - 22.0,
            lx - 6.5 * sr.label.chars().count() as f64 - 6.0,
            sr.class
        );
        lx -= 6.5 * sr.label.chars().count() as f64 + 34.0;
    }
    for v in [hi, 0.0, lo] {
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1=\"{PAD}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" class=\"{}\"/><text x=\"{}\" y=\"{:.1}\" class=\"lbl\" text-anchor=\"end\">{v:+.2}</text>",
            W - PAD,
            if v == 0.0 { "axis" } else { "grid" },
            PAD - 3.0,
            yy + 3.0
        );
    }
    for sr in series {
        let _ = write!(
            s,
            "<path d=\"{}\" class=\"{} eq\"/>",
            line_path(&sr.values, n, y),
            sr.class
        );
    }
    let _ = write!(
        s,
        "<text x=\"{PAD}\" y=\"{}\" class=\"lbl\">{}</text><text x=\"{}\" y=\"{}\" class=\"lbl\" text-anchor=\"end\">{}</text>",
        h - 2.0,
        esc(first),
        W - PAD,
        h - 2.0,
        esc(last)
    );
    s.push_str("</svg>");
    s
}

/// A model's virtual P&L since its first live bar.
fn model_pnl_chart(m: &ModelView) -> String {
    let base = m.points.first().map_or(0.0, |p| p.virt_pnl);
    let virt = m.points.iter().map(|p| Some(p.virt_pnl - base)).collect();
    pnl_chart(
        "virtual P&L since the first live bar",
        "account money, USD",
        &[Series {
            class: "virt",
            label: "virtual (twin)",
            values: virt,
        }],
        m.points.first().map_or("", |p| &p.bar_time),
        m.points.last().map_or("", |p| &p.bar_time),
    )
}

/// The account over the run, by bar time: the ledger's account equity and paper equity, and
/// the virtual P&L of all models, each as its change since the first live bar, on one scale.
pub fn account_chart(state: &State) -> String {
    let mut times: Vec<&str> = state
        .models
        .values()
        .flat_map(|m| m.points.iter().map(|p| p.bar_time.as_str()))
        .collect();
    times.sort_unstable();
    times.dedup();
    if times.is_empty() {
        return String::new();
    }
    // Per time: the equities of the latest ledger row at or before it; each model's virtual
    // P&L at or before it.
    let mut eq_at: BTreeMap<&str, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for m in state.models.values() {
        for p in &m.points {
            let e = eq_at.entry(p.bar_time.as_str()).or_default();
            e.0 = p.equity.or(e.0);
            e.1 = p.paper_equity.or(e.1);
        }
    }
    let (mut eq, mut peq) = (None, None);
    let (mut eq0, mut peq0) = (None, None);
    let mut account = Vec::new();
    let mut paper = Vec::new();
    let mut virt = Vec::new();
    let mut idx: Vec<usize> = vec![0; state.models.len()];
    let mut last: Vec<Option<f64>> = vec![None; state.models.len()];
    for t in &times {
        if let Some((e, pe)) = eq_at.get(t) {
            eq = e.or(eq);
            peq = pe.or(peq);
        }
        eq0 = eq0.or(eq);
        peq0 = peq0.or(peq);
        account.push(eq.zip(eq0).map(|(a, b)| a - b));
        paper.push(peq.zip(peq0).map(|(a, b)| a - b));
        let mut total = 0.0;
        for (k, m) in state.models.values().enumerate() {
            while idx[k] < m.points.len() && m.points[idx[k]].bar_time.as_str() <= *t {
                last[k] = Some(m.points[idx[k]].virt_pnl);
                idx[k] += 1;
            }
            let base = m.points.first().map_or(0.0, |p| p.virt_pnl);
            total += last[k].map_or(0.0, |v| v - base);
        }
        virt.push(Some(total));
    }
    let mut series = vec![Series {
        class: "virt",
        label: "virtual, all models",
        values: virt,
    }];
    if account.iter().any(Option::is_some) {
        series.push(Series {
            class: "real",
            label: "account equity",
            values: account,
        });
    }
    if paper.iter().any(Option::is_some) {
        series.push(Series {
            class: "paper",
            label: "paper equity",
            values: paper,
        });
    }
    pnl_chart(
        "P&L since the first live bar",
        "account money, USD",
        &series,
        times[0],
        times[times.len() - 1],
    )
}

/// The drift causes as rows of the check table, most bars first.
fn drift_rows(summary: &Summary) -> String {
    let mut causes: Vec<(&String, &usize)> = summary.drift_causes.iter().collect();
    causes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    causes
        .into_iter()
        .map(|(c, n)| {
            format!(
                "<tr><td class=\"muted\">&nbsp;&nbsp;of which <code>{}</code>: {}</td><td>{n}</td></tr>",
                esc(c),
                esc(super::view::drift_cause_text(c))
            )
        })
        .collect()
}

/// The whole report; `backtests` from [`backtests`].
pub fn html(state: &State, summary: &Summary, backtests: &Backtests) -> String {
    let mut o = String::new();
    o.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Oracle Trader v2 — demo report</title><style>\
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fff}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 4px}\
table{border-collapse:collapse;margin:10px 0}td,th{padding:3px 10px;border-bottom:1px solid #e3e6ea;text-align:right}\
td:first-child,th:first-child{text-align:left}.ok{color:#1a7f37}.bad{color:#cf222e}.muted{color:#6e7781}\
.chart{width:100%;max-width:900px;display:block}.grid{stroke:#eef0f2}.axis{stroke:#aab1b9}\
.lbl{font-size:10px;fill:#6e7781}path{fill:none}.virt{stroke:#0969da;stroke-width:2.2}\
.real{stroke:#fb8500;stroke-width:1.6;stroke-dasharray:5 2}.paper{stroke:#2da44e;stroke-width:1.4;stroke-dasharray:2 2}\
.eq{stroke-dasharray:none}.refusal path{fill:#cf222e}.refusal line{stroke:#cf222e;stroke-opacity:.25}\
.key span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}\
",
    );
    o.push_str(oracle_report::STYLE);
    o.push_str("</style></head><body>");
    let _ = write!(
        o,
        "<h1>Oracle Trader v2 — demo report</h1><p class=\"muted\">simulator + executor + predictor as separate processes over TLS and the local WebSocket · {} models · {} h of live market · {:.1} s</p>",
        summary.models.len(),
        summary.target_bars,
        summary.seconds
    );
    let verdict = |b: bool| {
        if b {
            "<b class=\"ok\">yes</b>"
        } else {
            "<b class=\"bad\">no</b>"
        }
    };
    let _ = write!(
        o,
        "<table><tr><th>check</th><th>result</th></tr>\
<tr><td>every model sent one signal per live bar</td><td>{}</td></tr>\
<tr><td>virtual position = <code>oracle replay</code> (models compared)</td><td>{} ({}/{})</td></tr>\
<tr><td>signals · orders · refusals</td><td>{} · {} · {}</td></tr>\
<tr><td>bars where real ≠ virtual (drift)</td><td>{}</td></tr>{}\
<tr><td>P&amp;L over the live bars, USD: virtual (all models) · account (executor ledger)</td><td>{:+.2} · {}</td></tr>\
<tr><td>virtual P&amp;L of the twins (realised since their history began + open)</td><td>{:.2}</td></tr>\
<tr><td>account equity (executor ledger)</td><td>{}</td></tr>\
<tr><td>children exit</td><td>{}</td></tr></table>",
        verdict(summary.one_signal_per_bar),
        verdict(summary.replay_ok()),
        summary.replay_matched(),
        summary.models.len(),
        summary.signals,
        summary.orders,
        summary.refusals,
        summary.drift_bars,
        drift_rows(summary),
        summary.virtual_pnl_live,
        summary
            .equity_change
            .or(state.equity.zip(state.equity_first).map(|(a, b)| a - b))
            .map_or_else(|| "—".to_string(), |e| format!("{e:+.2}")),
        summary.virtual_pnl,
        summary
            .equity
            .or(state.equity)
            .map_or_else(|| "—".to_string(), |e| format!("{e:.2}")),
        esc(&summary.children_exit)
    );
    o.push_str(&account_chart(state));
    o.push_str(&account_sheet(state));
    o.push_str(&stats_sheet(backtests));
    if !state.refused.is_empty() {
        o.push_str("<h2>Refused model files</h2><ul>");
        for (f, r) in &state.refused {
            let _ = write!(o, "<li><code>{}</code>: {}</li>", esc(f), esc(r));
        }
        o.push_str("</ul>");
    }
    o.push_str("<h2>Per model</h2><p class=\"muted\">span: live bars inside the hours asked for / bars the market closed in them · tail: live bars after them (the market stays open for the last orders)</p><table><tr><th>model</th><th>span</th><th>tail</th><th>signals</th><th>orders</th><th>refusals</th><th>drift bars</th><th>virtual P&amp;L, live bars</th><th>= replay</th></tr>");
    for (name, m) in &summary.models {
        let _ = write!(
            o,
            "<tr><td><a href=\"#{n}\">{n}</a></td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td></tr>",
            m.span_bars,
            m.expected_bars,
            m.live_bars.saturating_sub(m.span_bars),
            m.signals,
            m.orders,
            m.refusals,
            m.drift_bars,
            m.virtual_pnl_live,
            match m.replay_match {
                Some(true) => "<span class=\"ok\">✓</span>".to_string(),
                Some(false) => "<span class=\"bad\">✗</span>".to_string(),
                None => format!("<span class=\"muted\">{}</span>", esc(&m.replay_note)),
            },
            n = esc(name)
        );
    }
    o.push_str("</table><p class=\"key\"><span><i class=\"sw\" style=\"background:#0969da\"></i>virtual (twin)</span><span><i class=\"sw\" style=\"background:#fb8500\"></i>real (broker)</span><span><i class=\"sw\" style=\"background:#2da44e\"></i>paper</span><span style=\"color:#cf222e\">▼ refusal</span> · positions in signed intensity (−3 short strong … +3 long strong)</p>");
    for (name, m) in &state.models {
        let _ = write!(
            o,
            "<h2 id=\"{n}\">{n} <span class=\"muted\">{} {} · {} bars · {} refusals</span></h2>{}{}",
            m.stream.map_or(String::new(), |k| esc(k.symbol.as_str())),
            m.stream
                .map_or(String::new(), |k| esc(k.timeframe.as_str())),
            m.points.len(),
            m.refusals,
            position_chart(m),
            model_pnl_chart(m),
            n = esc(name)
        );
        if let Some(Ok(b)) = backtests.get(name) {
            let _ = write!(
                o,
                "<details><summary>tearsheet of {n}: equity, drawdown, statistics, months, costs, {} trades</summary>{}</details>",
                b.stats.trades,
                oracle_report::section(b, "USD", &format!("{name}-tearsheet")),
                n = esc(name)
            );
        }
    }
    o.push_str("<p class=\"muted\">Written by <code>oracle demo</code> from the predictor's decision log and trace and the executor's drift ledger.</p></body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use oracle_core::Position;
    use oracle_model::{BarRecord, Costs, Ledger};

    /// A state with one model whose ledger rows put the account at 100,000, 99,900, 100,050.
    fn state() -> State {
        let mut st = State::new(BTreeMap::new());
        let ev =
            |e: &str, rest: &str| format!("{{\"event\":\"{e}\",\"model\":\"EURUSD_H1\"{rest}}}");
        st.predictor_line(&ev("model_loaded", ",\"symbol\":\"EURUSD\",\"tf\":\"H1\""));
        for (h, equity) in [(0, 100_000.0), (1, 99_900.0), (2, 100_050.0)] {
            let t = format!("2020-01-01T{h:02}:00:00Z");
            st.predictor_line(&ev(
                "signal",
                &format!(",\"bar_time\":\"{t}\",\"action\":\"WAIT\",\"direction\":0,\"intensity\":0,\"realized_pnl\":0.0,\"upnl\":0.0"),
            ));
            st.ledger_row(&format!(
                r#"{{"bar_time":"{t}","model":"EURUSD_H1","virtual_pos":"FLAT","virtual_pnl":0.0,"real_pos":"FLAT","real_pnl":0.0,"paper_pos":"FLAT","paper_pnl":0.0,"equity":{equity},"paper_equity":{equity},"ack":"HOLD"}}"#
            ));
        }
        st
    }

    /// One long trade of +12.5 closed on the second of two bars.
    fn backtest() -> Backtest {
        let long = Position {
            direction: 1,
            intensity: 1,
            entry_price: 1.1,
        };
        let fill = Costs {
            spread: 0.07,
            slippage: 0.02,
            commission: 0.0,
        };
        let mut ledger = Ledger::new();
        ledger.record(&BarRecord {
            time: 1_577_836_800,
            previous: Position::FLAT,
            position: long,
            lots: 0.01,
            closed: None,
            opened: true,
            close_costs: Costs::default(),
            open_costs: fill,
            equity: -0.09,
            unrealized: -0.09,
        });
        ledger.record(&BarRecord {
            time: 1_577_840_400,
            previous: long,
            position: Position::FLAT,
            lots: 0.0,
            closed: Some((1.2, 12.5)),
            opened: false,
            close_costs: Costs::default(),
            open_costs: Costs::default(),
            equity: 12.5,
            unrealized: 0.0,
        });
        let stats = ledger.statistics(10_000.0, 6240.0);
        Backtest {
            name: "EURUSD_H1".into(),
            bars: 351,
            rejected: 0,
            ledger,
            stats,
        }
    }

    #[test]
    fn the_demo_report_has_the_account_drawdown_per_model_statistics_and_each_tearsheet() {
        let st = state();
        let backtests = Backtests::from([
            ("EURUSD_H1".to_string(), Ok(backtest())),
            (
                "BROKEN_H1".to_string(),
                Err("no bars (no trace)".to_string()),
            ),
        ]);
        let html = html(&st, &Summary::default(), &backtests);
        // The account: its equity in USD and its drawdown under the running peak (100 of
        // 100,000 = 0.1% at the second row).
        let eq = account_equity(&st);
        assert_eq!(eq.values, vec![100_000.0, 99_900.0, 100_050.0]);
        assert!(html.contains("Account equity (executor ledger"), "{html}");
        assert!(html.contains("Account drawdown (underwater)"));
        assert!(html.contains("class=\"under\""));
        // The per-model statistics: the backtest's figures, linked to the model's section.
        let table = html
            .split("<table class=\"stats\">")
            .nth(1)
            .expect("the statistics table");
        assert!(
            table.contains("<a href=\"#EURUSD_H1\">EURUSD_H1</a>"),
            "{table}"
        );
        assert!(table.contains(">12.50</td>"), "net profit: {table}");
        // No losing trade: an infinite profit factor; 1 of 1 won; in a position 1 bar of 2;
        // costs 0.07 + 0.02.
        for cell in [
            "<td>inf</td>",
            "<td>100.00</td>",
            "<td>50.00</td>",
            "<td>0.09</td>",
        ] {
            assert!(table.contains(cell), "{cell}: {table}");
        }
        assert!(html.contains("BROKEN_H1: no statistics: no bars (no trace)"));
        // The model's tearsheet, folded under its positions.
        assert!(html.contains("<details><summary>tearsheet of EURUSD_H1"));
        assert!(html.contains("id=\"EURUSD_H1-tearsheet\""));
        assert!(html.contains("Monthly returns") && html.contains("<table class=\"trades\">"));
        assert!(!html.contains("<script") && !html.contains("http"));
    }
}
