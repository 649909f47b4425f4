//! The self-contained HTML report: per model, virtual vs real vs paper position over the live
//! bars with refusals marked, and the equity; a summary table on top. Inline SVG, no scripts,
//! no external resources.

use super::Summary;
use super::view::{ModelView, State};
use std::fmt::Write as _;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

fn equity_chart(m: &ModelView) -> String {
    let n = m.points.len();
    let h = 110.0;
    let virt: Vec<Option<f64>> = m.points.iter().map(|p| Some(p.virt_pnl)).collect();
    let eq: Vec<Option<f64>> = m.points.iter().map(|p| p.equity).collect();
    let peq: Vec<Option<f64>> = m.points.iter().map(|p| p.paper_equity).collect();
    let has_eq = eq.iter().any(Option::is_some);
    let range = |v: &[Option<f64>]| {
        v.iter()
            .flatten()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(*x), b.max(*x))
            })
    };
    let (lo, hi) = range(&virt);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (lo.min(0.0) - 1.0, hi.max(0.0) + 1.0)
    };
    let y = move |v: f64| 8.0 + (hi - v) / (hi - lo) * (h - 24.0);
    let mut s =
        format!("<svg viewBox=\"0 0 {W} {h}\" class=\"chart\" role=\"img\" aria-label=\"equity\">");
    let zero = y(0.0);
    if (8.0..=h - 16.0).contains(&zero) {
        let _ = write!(
            s,
            "<line x1=\"{PAD}\" x2=\"{}\" y1=\"{zero:.1}\" y2=\"{zero:.1}\" class=\"axis\"/>",
            W - PAD
        );
    }
    let _ = write!(
        s,
        "<text x=\"2\" y=\"{:.1}\" class=\"lbl\">{hi:.0}</text><text x=\"2\" y=\"{:.1}\" class=\"lbl\">{lo:.0}</text>",
        y(hi) + 8.0,
        y(lo)
    );
    let _ = write!(
        s,
        "<path d=\"{}\" class=\"virt eq\"/>",
        line_path(&virt, n, y)
    );
    if has_eq {
        let (elo, ehi) = range(&eq);
        let (plo, phi) = range(&peq);
        let (elo, ehi) = (elo.min(plo), ehi.max(phi));
        let (elo, ehi) = if ehi > elo {
            (elo, ehi)
        } else {
            (elo - 1.0, ehi + 1.0)
        };
        let ye = move |v: f64| 8.0 + (ehi - v) / (ehi - elo) * (h - 24.0);
        let _ = write!(
            s,
            "<path d=\"{}\" class=\"real eq\"/>",
            line_path(&eq, n, ye)
        );
        let _ = write!(
            s,
            "<path d=\"{}\" class=\"paper eq\"/>",
            line_path(&peq, n, ye)
        );
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" class=\"lbl\" text-anchor=\"end\">account {ehi:.0}</text><text x=\"{}\" y=\"{:.1}\" class=\"lbl\" text-anchor=\"end\">{elo:.0}</text>",
            W - 2.0,
            ye(ehi) + 8.0,
            W - 2.0,
            ye(elo)
        );
    }
    s.push_str("</svg>");
    s
}

/// The whole report.
pub fn html(state: &State, summary: &Summary) -> String {
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
</style></head><body>",
    );
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
<tr><td>bars where real ≠ virtual (drift)</td><td>{}</td></tr>\
<tr><td>virtual P&amp;L, all models</td><td>{:.2}</td></tr>\
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
        summary.virtual_pnl,
        summary
            .equity
            .map_or_else(|| "—".to_string(), |e| format!("{e:.2}")),
        esc(&summary.children_exit)
    );
    if !state.refused.is_empty() {
        o.push_str("<h2>Refused model files</h2><ul>");
        for (f, r) in &state.refused {
            let _ = write!(o, "<li><code>{}</code>: {}</li>", esc(f), esc(r));
        }
        o.push_str("</ul>");
    }
    o.push_str("<h2>Per model</h2><table><tr><th>model</th><th>live bars</th><th>signals</th><th>orders</th><th>refusals</th><th>drift bars</th><th>virtual P&amp;L</th><th>= replay</th></tr>");
    for (name, m) in &summary.models {
        let _ = write!(
            o,
            "<tr><td><a href=\"#{n}\">{n}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td></tr>",
            m.live_bars,
            m.signals,
            m.orders,
            m.refusals,
            m.drift_bars,
            m.virtual_pnl,
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
            esc(&m.symbol),
            esc(&m.tf),
            m.points.len(),
            m.refusals,
            position_chart(m),
            equity_chart(m),
            n = esc(name)
        );
    }
    o.push_str("<p class=\"muted\">Written by <code>oracle demo</code> from the predictor's decision log and trace and the executor's drift ledger.</p></body></html>\n");
    o
}
