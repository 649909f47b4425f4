//! Inline SVG line and area charts over a series of points with text labels on the x axis.

use std::fmt::Write as _;

use crate::tearsheet::esc;

const W: f64 = 900.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 22.0;
/// At most this many points are drawn; a longer series keeps each bucket's first, lowest,
/// highest and last point, so no peak or trough is lost.
const MAX_POINTS: usize = 1600;

/// One curve to chart: a value per point and a label per point (its time), in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curve {
    /// The x labels (ISO-8601 times), one per value.
    pub labels: Vec<String>,
    /// The values.
    pub values: Vec<f64>,
}

impl Curve {
    /// A curve of `labels` and `values` (the shorter decides the length).
    pub fn new(labels: Vec<String>, values: Vec<f64>) -> Self {
        let n = labels.len().min(values.len());
        let (mut labels, mut values) = (labels, values);
        labels.truncate(n);
        values.truncate(n);
        Curve { labels, values }
    }
}

/// Indices to draw: all of them, or per bucket its first, lowest, highest and last.
fn thinned(values: &[f64]) -> Vec<usize> {
    let n = values.len();
    if n <= MAX_POINTS {
        return (0..n).collect();
    }
    let buckets = MAX_POINTS / 4;
    let mut out = Vec::with_capacity(MAX_POINTS);
    for b in 0..buckets {
        let (a, z) = (b * n / buckets, ((b + 1) * n / buckets).min(n));
        if a >= z {
            continue;
        }
        let (mut lo, mut hi) = (a, a);
        for i in a..z {
            if values[i] < values[lo] {
                lo = i;
            }
            if values[i] > values[hi] {
                hi = i;
            }
        }
        let mut pick = [a, lo, hi, z - 1];
        pick.sort_unstable();
        for i in pick {
            if out.last() != Some(&i) {
                out.push(i);
            }
        }
    }
    out
}

fn x_of(i: usize, n: usize) -> f64 {
    LEFT + if n <= 1 {
        0.0
    } else {
        (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64
    }
}

/// The frame: title with its unit, horizontal grid lines at `ticks` (labelled with `fmt`), and
/// the first, middle and last x labels.
fn frame(
    title: &str,
    unit: &str,
    h: f64,
    ticks: &[f64],
    y: &dyn Fn(f64) -> f64,
    fmt: &dyn Fn(f64) -> String,
    labels: &[String],
) -> String {
    let mut s = format!(
        "<svg viewBox=\"0 0 {W} {h}\" class=\"chart\" role=\"img\" aria-label=\"{t}\"><text x=\"{LEFT}\" y=\"13\" class=\"ttl\">{t} <tspan class=\"lbl\">({u})</tspan></text>",
        t = esc(title),
        u = esc(unit)
    );
    for &v in ticks {
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" class=\"grid\"/><text x=\"{}\" y=\"{:.1}\" class=\"lbl\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 4.0,
            yy + 3.5,
            esc(&fmt(v))
        );
    }
    let n = labels.len();
    if n > 0 {
        let marks: &[(usize, &str)] = &[(0, "start"), (n / 2, "middle"), (n - 1, "end")];
        for &(i, anchor) in marks {
            if n < 3 && i == n / 2 && i != 0 {
                continue;
            }
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" class=\"lbl\" text-anchor=\"{anchor}\">{}</text>",
                x_of(i, n),
                h - 6.0,
                esc(labels[i]
                    .get(..16)
                    .unwrap_or(&labels[i])
                    .replace('T', " ")
                    .as_str())
            );
        }
    }
    s
}

/// Five round-ish ticks from `lo` to `hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    (0..5)
        .map(|k| lo + (hi - lo) * f64::from(k) / 4.0)
        .collect()
}

/// The account's value over the bars: a line, with a dashed line at `base` (the initial
/// capital), values in `unit` (e.g. `USD`).
pub fn equity_chart(title: &str, unit: &str, curve: &Curve, base: f64) -> String {
    let h = 220.0;
    let vals = &curve.values;
    let (mut lo, mut hi) = vals
        .iter()
        .fold((base, base), |(a, b), &v| (a.min(v), b.max(v)));
    if hi - lo < 1e-9 {
        lo -= 1.0;
        hi += 1.0;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let y = move |v: f64| TOP + (hi - v) / (hi - lo) * (h - TOP - BOTTOM);
    let fmt = |v: f64| format!("{v:.2}");
    let mut s = frame(title, unit, h, &ticks(lo, hi), &y, &fmt, &curve.labels);
    let yb = y(base);
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yb:.1}\" y2=\"{yb:.1}\" class=\"base\"/>",
        W - RIGHT
    );
    let n = vals.len();
    let mut d = String::new();
    for i in thinned(vals) {
        let _ = write!(
            d,
            "{}{:.1},{:.1}",
            if d.is_empty() { "M" } else { " L" },
            x_of(i, n),
            y(vals[i])
        );
    }
    let _ = write!(s, "<path d=\"{d}\" class=\"equity\"/></svg>");
    s
}

/// The drawdown after each bar, in percent below the running peak (0 at a new peak), drawn as
/// a filled area under the zero line.
pub fn underwater_chart(title: &str, curve: &Curve) -> String {
    let h = 150.0;
    let vals = &curve.values;
    let worst = vals.iter().fold(0.0_f64, |a, &v| a.max(v));
    let depth = if worst > 1e-12 { worst * 1.08 } else { 1.0 };
    let y = move |v: f64| TOP + v / depth * (h - TOP - BOTTOM);
    // Enough decimals that the five ticks differ (a shallow drawdown is a few hundredths).
    let decimals = if depth >= 1.0 {
        2
    } else if depth >= 0.1 {
        3
    } else {
        4
    };
    let fmt = move |v: f64| {
        if v == 0.0 {
            "0%".to_owned()
        } else {
            format!("−{v:.decimals$}%")
        }
    };
    let mut s = frame(
        title,
        "% below the running peak",
        h,
        &ticks(0.0, depth),
        &y,
        &fmt,
        &curve.labels,
    );
    let n = vals.len();
    if n > 0 {
        let y0 = y(0.0);
        let mut d = format!("M{:.1},{y0:.1}", x_of(0, n));
        for i in thinned(vals) {
            let _ = write!(d, " L{:.1},{:.1}", x_of(i, n), y(vals[i]));
        }
        let _ = write!(d, " L{:.1},{y0:.1} Z", x_of(n - 1, n));
        let _ = write!(s, "<path d=\"{d}\" class=\"under\"/>");
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_series_is_thinned_and_keeps_its_extremes() {
        let mut v: Vec<f64> = (0..10_000).map(|i| f64::from(i % 7)).collect();
        v[4321] = -50.0;
        v[8765] = 99.0;
        let kept = thinned(&v);
        assert!(kept.len() <= MAX_POINTS, "{}", kept.len());
        assert!(kept.contains(&4321) && kept.contains(&8765));
        assert_eq!((kept[0], *kept.last().unwrap()), (0, 9_999));
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(thinned(&[1.0, 2.0]), vec![0, 1]);
    }

    /// The y-axis labels of a chart (the `text-anchor="end"` texts).
    fn y_labels(svg: &str) -> Vec<String> {
        svg.split("text-anchor=\"end\">")
            .skip(1)
            .map(|t| t.split('<').next().unwrap_or("").to_owned())
            .collect()
    }

    /// A drawdown of 0.025% at most: five different tick labels (two decimals printed
    /// −0.01% three times).
    #[test]
    fn a_shallow_drawdown_gets_ticks_that_differ() {
        let c = Curve::new(
            (0..4).map(|i| format!("2020-01-01T0{i}:00:00Z")).collect(),
            vec![0.0, 0.01, 0.025, 0.0],
        );
        let labels = y_labels(&underwater_chart("drawdown", &c));
        let mut ticks: Vec<&String> = labels.iter().filter(|l| l.ends_with('%')).collect();
        assert_eq!(ticks.len(), 5, "{labels:?}");
        ticks.dedup();
        assert_eq!(ticks.len(), 5, "{labels:?}");
        assert_eq!(ticks[0], "0%");
    }

    #[test]
    fn an_empty_curve_draws_an_empty_frame() {
        let c = Curve::default();
        let s = equity_chart("account", "USD", &c, 100.0);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        let s = underwater_chart("drawdown", &c);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>") && !s.contains("class=\"under\""));
    }
}
