//! What the demo knows about the run, built only from what the children write: the predictor's
//! JSON decision lines (bars, signals, ACKs, drift) and the executor's drift ledger. Rendered as a
//! live terminal view (redrawn in place on a TTY) or as plain log lines.

use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::Instant;

/// One bar of one model, as the report charts it.
#[derive(Clone, Debug, Default)]
pub struct Point {
    /// Bar open time, ISO-8601.
    pub bar_time: String,
    /// Virtual position as signed intensity (−3..3).
    pub virt: i8,
    /// Real position as signed intensity, once known (ACK or ledger).
    pub real: Option<i8>,
    /// Paper position as signed intensity (ledger only).
    pub paper: Option<i8>,
    /// Refusal reason, if the executor did not follow.
    pub refusal: Option<String>,
    /// Whether this bar starts a refusal (marked on the timeline).
    pub marked: bool,
    /// Virtual equity of the model: realised + unrealised P&L.
    pub virt_pnl: f64,
    /// Account equity after this bar (ledger only).
    pub equity: Option<f64>,
    /// Paper equity after this bar (ledger only).
    pub paper_equity: Option<f64>,
}

/// One model's running totals.
#[derive(Clone, Debug, Default)]
pub struct ModelView {
    /// Symbol.
    pub symbol: String,
    /// Timeframe.
    pub tf: String,
    /// Caught up with history.
    pub ready: bool,
    /// Live bars seen.
    pub live_bars: u64,
    /// Signals sent.
    pub signals: u64,
    /// Orders the executor placed (ACK OK with a ticket).
    pub orders: u64,
    /// ACK HOLD.
    pub holds: u64,
    /// FAIL / WAIT_SYNC.
    pub refusals: u64,
    /// Last action.
    pub action: String,
    /// The chart points, one per live bar.
    pub points: Vec<Point>,
}

impl ModelView {
    /// Current virtual position (signed intensity).
    pub fn virt(&self) -> i8 {
        self.points.last().map_or(0, |p| p.virt)
    }
    /// Current real position (signed intensity), the last known one.
    pub fn real(&self) -> Option<i8> {
        self.points.iter().rev().find_map(|p| p.real)
    }
    /// Current virtual P&L.
    pub fn pnl(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.virt_pnl)
    }
    /// Bars where real ≠ virtual.
    pub fn drift_bars(&self) -> usize {
        let mut real = 0i8;
        let mut n = 0;
        for p in &self.points {
            if let Some(r) = p.real {
                real = r;
            }
            if real != p.virt {
                n += 1;
            }
        }
        n
    }
}

/// Everything the view shows.
pub struct State {
    /// Models by name.
    pub models: BTreeMap<String, ModelView>,
    /// Zips the predictor refused: (file, reason).
    pub refused: Vec<(String, String)>,
    /// Notable lines, newest last.
    pub events: VecDeque<String>,
    /// Account equity from the ledger (latest).
    pub equity: Option<f64>,
    /// Live bars each model should see.
    pub expected: BTreeMap<String, u64>,
    /// When the run started.
    pub started: Instant,
    /// Child status words (name, status).
    pub children: Vec<(String, String)>,
    /// Whether the sim said the replay is done.
    pub replay_done: bool,
    /// Ledger rows read.
    pub ledger_rows: u64,
}

fn signed(dir: i64, int: i64) -> i8 {
    i8::try_from(dir.signum() * int.clamp(0, 3)).unwrap_or(0)
}

/// A position word of the ledger (`FLAT`, `LONG_WEAK`, `SHORT_STRONG`…; `-` when that side is
/// off) as signed intensity.
pub fn position_of(word: &str) -> Option<i8> {
    let w = word.to_ascii_uppercase();
    let dir = if w.contains("LONG") {
        1
    } else if w.contains("SHORT") {
        -1
    } else if w.contains("FLAT") || w.contains("WAIT") {
        return Some(0);
    } else {
        return None;
    };
    let int = if w.contains("STRONG") {
        3
    } else if w.contains("MODERATE") {
        2
    } else {
        1
    };
    Some(dir * int)
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn i(v: &Value, k: &str) -> i64 {
    match v.get(k) {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn f(v: &Value, k: &str) -> Option<f64> {
    match v.get(k) {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
}

impl State {
    /// An empty view.
    pub fn new(expected: BTreeMap<String, u64>) -> Self {
        Self {
            models: BTreeMap::new(),
            refused: Vec::new(),
            events: VecDeque::new(),
            equity: None,
            expected,
            started: Instant::now(),
            children: Vec::new(),
            replay_done: false,
            ledger_rows: 0,
        }
    }

    /// Keeps a notable line for the view (and returns it for plain output).
    pub fn note(&mut self, line: String) -> String {
        self.events.push_back(line.clone());
        while self.events.len() > 6 {
            self.events.pop_front();
        }
        line
    }

    /// Reads one stdout line of the predictor; returns a notable line for plain output.
    pub fn predictor_line(&mut self, line: &str) -> Option<String> {
        let v: Value = serde_json::from_str(line).ok()?;
        let model = s(&v, "model");
        match s(&v, "event").as_str() {
            "model_loaded" => {
                let m = self.models.entry(model.clone()).or_default();
                m.symbol = s(&v, "symbol");
                m.tf = s(&v, "tf");
                Some(self.note(format!("model {model} loaded")))
            }
            "model_refused" => {
                let (file, reason) = (s(&v, "file"), s(&v, "reason"));
                self.refused.push((file.clone(), reason.clone()));
                Some(self.note(format!("model {file} refused: {reason}")))
            }
            "caught_up" => {
                self.models.entry(model).or_default().ready = true;
                None
            }
            "signal" => {
                let m = self.models.entry(model).or_default();
                m.live_bars += 1;
                m.signals += 1;
                m.action = s(&v, "action");
                let real = m.real();
                m.points.push(Point {
                    bar_time: s(&v, "bar_time"),
                    virt: signed(i(&v, "direction"), i(&v, "intensity")),
                    real: if m.points.is_empty() {
                        real.or(Some(0))
                    } else {
                        None
                    },
                    virt_pnl: f(&v, "realized_pnl").unwrap_or(0.0) + f(&v, "upnl").unwrap_or(0.0),
                    ..Point::default()
                });
                None
            }
            "warmup" => {
                self.models.entry(model).or_default().live_bars += 1;
                None
            }
            "ack" => {
                let status = s(&v, "status");
                let bt = s(&v, "bar_time");
                let reason = s(&v, "reason");
                let m = self.models.entry(model.clone()).or_default();
                let mut note = None;
                if let Some(idx) = m.points.iter().rposition(|p| p.bar_time == bt) {
                    let prev = m.points[..idx]
                        .iter()
                        .rev()
                        .find_map(|p| p.real)
                        .unwrap_or(0);
                    let virt = m.points[idx].virt;
                    // A WAIT_SYNC after a WAIT_SYNC is the same missed entry still not chased:
                    // drift, not a new refusal.
                    let again = status == "WAIT_SYNC"
                        && idx > 0
                        && m.points[idx - 1]
                            .refusal
                            .as_deref()
                            .is_some_and(|r| r.starts_with("WAIT_SYNC"));
                    let p = &mut m.points[idx];
                    match status.as_str() {
                        "OK" => {
                            p.real = Some(virt);
                            m.orders += u64::from(!s(&v, "ticket").is_empty());
                        }
                        "HOLD" => {
                            p.real = Some(prev);
                            m.holds += 1;
                        }
                        "FAIL" | "WAIT_SYNC" => {
                            p.real = Some(0);
                            if again {
                                p.refusal = Some(format!("{status} {reason}"));
                                p.marked = false;
                            } else if p.refusal.is_none() {
                                p.refusal = Some(format!("{status} {reason}"));
                                p.marked = true;
                                m.refusals += 1;
                                note = Some(format!("{model} {bt}: {status} {reason}"));
                            }
                        }
                        _ => {}
                    }
                }
                note.map(|n| self.note(n))
            }
            "fatal" | "auth_refused" | "state_unwritable" | "trace_unwritable" => {
                Some(self.note(format!("predictor: {} {}", s(&v, "event"), s(&v, "error"))))
            }
            _ => None,
        }
    }

    /// Reads one row of the executor's drift ledger (`drift.jsonl`: bar_time, model,
    /// virtual_pos, virtual_pnl, real_pos, real_pnl, paper_pos, paper_pnl, ack).
    pub fn ledger_row(&mut self, line: &str) -> Option<String> {
        let v: Value = serde_json::from_str(line).ok()?;
        self.ledger_rows += 1;
        let name = s(&v, "model");
        let bt = s(&v, "bar_time");
        let m = self.models.get_mut(&name)?;
        let idx = m.points.iter().rposition(|p| p.bar_time == bt)?;
        let ack = s(&v, "ack");
        let again = ack.starts_with("WAIT_SYNC")
            && idx > 0
            && m.points[idx - 1]
                .refusal
                .as_deref()
                .is_some_and(|r| r.starts_with("WAIT_SYNC"));
        let p = &mut m.points[idx];
        if let Some(r) = position_of(&s(&v, "real_pos")) {
            p.real = Some(r);
        }
        p.paper = position_of(&s(&v, "paper_pos"));
        p.equity = f(&v, "real_pnl");
        p.paper_equity = f(&v, "paper_pnl");
        if (ack.starts_with("FAIL") || ack.starts_with("WAIT_SYNC")) && p.refusal.is_none() {
            if again {
                p.refusal = Some(ack);
                return None;
            }
            p.refusal = Some(ack.clone());
            p.marked = true;
            m.refusals += 1;
            return Some(self.note(format!("{name} {bt}: {ack}")));
        }
        None
    }

    /// Totals: (live bars, signals, orders, refusals).
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        self.models.values().fold((0, 0, 0, 0), |a, m| {
            (
                a.0 + m.live_bars,
                a.1 + m.signals,
                a.2 + m.orders,
                a.3 + m.refusals,
            )
        })
    }

    /// The run's progress: (live bars seen, live bars expected), over all models.
    pub fn progress(&self) -> (u64, u64) {
        let seen = self
            .expected
            .iter()
            .map(|(n, e)| self.models.get(n).map_or(0, |m| m.live_bars.min(*e)))
            .sum();
        (seen, self.expected.values().sum())
    }

    /// The live view, one string of lines.
    pub fn render(&self) -> String {
        let (_, signals, orders, refusals) = self.totals();
        let mut o = String::new();
        let kids: Vec<String> = self
            .children
            .iter()
            .map(|(n, s)| format!("{n} {s}"))
            .collect();
        let _ = writeln!(
            o,
            "\x1b[1mOracle Trader v2 — demo\x1b[0m  {:>5.1} s   {}",
            self.started.elapsed().as_secs_f64(),
            kids.join(" · ")
        );
        let _ = writeln!(
            o,
            "live bars {}/{} · signals {signals} · orders {orders} · refusals {refusals} · models {}{}{}",
            self.progress().0,
            self.progress().1,
            self.models.len(),
            if self.refused.is_empty() {
                String::new()
            } else {
                format!(" ({} refused)", self.refused.len())
            },
            self.equity
                .map(|e| format!(" · equity {e:.2}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            o,
            "\x1b[2m{:<16} {:>9} {:<15} {:>7} {:>5} {:>8} {:>10}\x1b[0m",
            "model", "bars", "action", "virtual", "real", "refusals", "P&L virt"
        );
        for (name, m) in &self.models {
            let real = m
                .real()
                .map_or_else(|| "-".to_string(), |r| format!("{r:+}"));
            let color = if m.real().is_some_and(|r| r != m.virt()) {
                "\x1b[33m"
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "{color}{:<16} {:>9} {:<15} {:>+7} {:>5} {:>8} {:>10.2}\x1b[0m",
                name,
                format!(
                    "{}/{}",
                    m.live_bars,
                    self.expected.get(name).copied().unwrap_or(0)
                ),
                if m.action.is_empty() { "-" } else { &m.action },
                m.virt(),
                real,
                m.refusals,
                m.pnl()
            );
        }
        for e in &self.events {
            let _ = writeln!(o, "\x1b[2m· {e}\x1b[0m");
        }
        o
    }

    /// One plain progress line (no escape codes).
    pub fn progress_line(&self) -> String {
        let (_, signals, orders, refusals) = self.totals();
        format!(
            "[{:>5.1}s] live bars {}/{}, signals {signals}, orders {orders}, refusals {refusals}, models {}",
            self.started.elapsed().as_secs_f64(),
            self.progress().0,
            self.progress().1,
            self.models.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_positions_from_signals_acks_and_the_ledger() {
        let mut st = State::new(BTreeMap::new());
        let ev =
            |e: &str, rest: &str| format!("{{\"event\":\"{e}\",\"model\":\"EURUSD_H1\"{rest}}}");
        st.predictor_line(&ev("model_loaded", ",\"symbol\":\"EURUSD\",\"tf\":\"H1\""));
        st.predictor_line(&ev("caught_up", ""));
        let sig = |t: &str, a: &str, d: i64, i: i64| {
            ev(
                "signal",
                &format!(
                    ",\"bar_time\":\"{t}\",\"action\":\"{a}\",\"direction\":{d},\"intensity\":{i},\"realized_pnl\":1.5,\"upnl\":-0.5"
                ),
            )
        };
        st.predictor_line(&sig("2020-01-01T00:00:00Z", "LONG_WEAK", 1, 1));
        st.predictor_line(&ev(
            "ack",
            ",\"status\":\"OK\",\"ticket\":\"7\",\"bar_time\":\"2020-01-01T00:00:00Z\"",
        ));
        st.predictor_line(&sig("2020-01-01T01:00:00Z", "SHORT_STRONG", -1, 3));
        let note = st.predictor_line(&ev(
            "ack",
            ",\"status\":\"FAIL\",\"reason\":\"MARGIN\",\"bar_time\":\"2020-01-01T01:00:00Z\"",
        ));
        assert!(note.is_some_and(|n| n.contains("MARGIN")));
        st.ledger_row(r#"{"bar_time":"2020-01-01T01:00:00Z","model":"EURUSD_H1","virtual_pos":"SHORT_STRONG","virtual_pnl":0.0,"real_pos":"FLAT","real_pnl":0.0,"paper_pos":"SHORT_STRONG","paper_pnl":-1.0,"ack":"FAIL|MARGIN"}"#);
        let m = &st.models["EURUSD_H1"];
        assert_eq!((m.live_bars, m.signals, m.orders, m.refusals), (2, 2, 1, 1));
        assert_eq!((m.virt(), m.real()), (-3, Some(0)));
        assert_eq!(m.points[1].paper, Some(-3));
        assert_eq!(m.drift_bars(), 1);
        assert!((m.pnl() - 1.0).abs() < 1e-12);
        assert!(st.render().contains("EURUSD_H1"));
        let summary = crate::demo::Summary::default();
        let html = crate::demo::report::html(&st, &summary);
        assert!(
            html.contains("<svg") && html.contains("class=\"refusal\"") && html.contains("MARGIN")
        );
    }

    #[test]
    fn reads_ledger_position_words() {
        assert_eq!(position_of("LONG_MODERATE"), Some(2));
        assert_eq!(position_of("SHORT_WEAK"), Some(-1));
        assert_eq!(position_of("FLAT"), Some(0));
        assert_eq!(position_of("-"), None);
    }
}
