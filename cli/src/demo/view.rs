//! What the demo knows about the run, built only from what the children write: the predictor's
//! JSON decision lines (bars, signals, ACKs, drift) and the executor's drift ledger. Rendered as a
//! live terminal view (redrawn in place on a TTY) or as plain log lines.

use oracle_ipc::StreamKey;
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
    /// Refusal, if the executor did not follow: `STATUS|REASON` as the ledger writes it
    /// (`WAIT_SYNC|MISSED_ENTRY`, `FAIL|MARGIN`).
    pub refusal: Option<String>,
    /// The executor answered this bar (ACK or ledger row).
    pub answered: bool,
    /// Whether this bar starts a refusal (marked on the timeline).
    pub marked: bool,
    /// Virtual equity of the model: realised + unrealised P&L (account money).
    pub virt_pnl: f64,
    /// Account equity after this bar (the ledger's `equity`).
    pub equity: Option<f64>,
    /// Paper equity after this bar (ledger only).
    pub paper_equity: Option<f64>,
}

/// One model's running totals.
#[derive(Clone, Debug, Default)]
pub struct ModelView {
    /// Its stream (symbol and timeframe), parsed once from the predictor's `model_loaded` line;
    /// `None` until that line.
    pub stream: Option<StreamKey>,
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
    /// Current virtual P&L (the twin's: realised since its history began, plus open).
    pub fn pnl(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.virt_pnl)
    }
    /// Virtual P&L over the live bars: its change since the first live bar.
    pub fn pnl_live(&self) -> f64 {
        match (self.points.first(), self.points.last()) {
            (Some(a), Some(b)) => b.virt_pnl - a.virt_pnl,
            _ => 0.0,
        }
    }
    /// Bars where real ≠ virtual.
    pub fn drift_bars(&self) -> usize {
        self.drift_causes().values().sum()
    }

    /// Bars where real ≠ virtual, by cause: the refusal that started each stretch of drift
    /// ([`drift_cause`]), or `UNANSWERED` where no refusal explains it (an ACK not seen yet).
    pub fn drift_causes(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        let mut real = 0i8;
        let mut cause: Option<String> = None;
        let mut virt = None;
        for (i, p) in self.points.iter().enumerate() {
            if let Some(r) = p.real {
                real = r;
            }
            // A new transition gets a new answer: the cause of earlier drift no longer holds.
            if virt.replace(p.virt) != Some(p.virt) {
                cause = None;
            }
            if real == p.virt {
                cause = None;
                continue;
            }
            if let Some(r) = &p.refusal
                && (p.marked || cause.is_none())
            {
                cause = Some(drift_cause(r, i == 0));
            }
            *out.entry(cause.clone().unwrap_or_else(|| "UNANSWERED".into()))
                .or_insert(0) += 1;
        }
        out
    }
}

/// The cause of drift a refusal stands for: its reason (`FAIL|MARGIN` → `MARGIN`), and for a
/// missed entry on the model's first live bar `MISSED_ENTRY_AT_GO_LIVE` (the twin held a position
/// from history that the executor does not chase).
pub fn drift_cause(refusal: &str, first_bar: bool) -> String {
    let reason = refusal
        .split_once('|')
        .map_or(refusal, |(_, r)| r)
        .to_string();
    if reason == "MISSED_ENTRY" && first_bar {
        "MISSED_ENTRY_AT_GO_LIVE".into()
    } else {
        reason
    }
}

/// What a drift cause means, for the summary and the report.
pub fn drift_cause_text(cause: &str) -> &'static str {
    match cause {
        "MISSED_ENTRY_AT_GO_LIVE" => {
            "the twin was already in a position when the market opened: never chased (by design)"
        }
        "MISSED_ENTRY" => {
            "an entry the executor could not take on its bar: never chased (by design)"
        }
        "MARKET_CLOSED" | "BROKER_MARKET_CLOSED" => {
            "the market was closed for the symbol (its trading hours): entry missed, exit held until the open"
        }
        "BROKER_ORDER_CANCELLED" => {
            "the broker cancelled the order: the price moved past its slippage range"
        }
        "UNANSWERED" => "no refusal recorded (the order's answer not seen)",
        "STALE_SIGNAL" => "the signal came too late for its bar",
        "MARGIN" | "BROKER_NOT_ENOUGH_MONEY" => "not enough free margin",
        "SPREAD" => "spread above the limit",
        "OUTCOME_UNKNOWN" | "BROKER_NO_ANSWER" => "the broker did not answer the order",
        _ => "refused by the executor's risk guard or the broker",
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
    /// Account equity of the ledger's first row (after the first live bar).
    pub equity_first: Option<f64>,
    /// Per model, the open times (ISO-8601) of the live bars inside the run's span: the bars
    /// the market was to publish, as against those of the tail after it.
    pub span: BTreeMap<String, std::collections::BTreeSet<String>>,
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
            equity_first: None,
            span: BTreeMap::new(),
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
                m.stream = StreamKey::parse(&s(&v, "symbol"), &s(&v, "tf")).ok();
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
                    // A WAIT_SYNC after a refusal is the same entry still not chased (a FAIL at
                    // the transition, then WAIT_SYNC|MISSED_ENTRY until the next one): drift, not
                    // a new refusal.
                    let again =
                        status == "WAIT_SYNC" && idx > 0 && m.points[idx - 1].refusal.is_some();
                    let refusal = format!("{status}|{reason}");
                    let p = &mut m.points[idx];
                    p.answered = true;
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
                                p.refusal = Some(refusal);
                                p.marked = false;
                            } else if p.refusal.is_none() {
                                p.refusal = Some(refusal.clone());
                                p.marked = true;
                                m.refusals += 1;
                                note = Some(format!("{model} {bt}: {refusal}"));
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
    /// virtual_pos, virtual_pnl, real_pos, real_pnl, paper_pos, paper_pnl, equity, paper_equity,
    /// ack). `NO_SIGNAL` rows are skipped.
    pub fn ledger_row(&mut self, line: &str) -> Option<String> {
        let v: Value = serde_json::from_str(line).ok()?;
        self.ledger_rows += 1;
        let name = s(&v, "model");
        let bt = s(&v, "bar_time");
        let m = self.models.get_mut(&name)?;
        let idx = m.points.iter().rposition(|p| p.bar_time == bt)?;
        let ack = s(&v, "ack");
        if ack == "NO_SIGNAL" {
            // The executor's note that no signal came for a streamed bar: nothing to chart.
            return None;
        }
        let again = ack.starts_with("WAIT_SYNC") && idx > 0 && m.points[idx - 1].refusal.is_some();
        let equity = f(&v, "equity");
        let p = &mut m.points[idx];
        p.answered = true;
        if let Some(r) = position_of(&s(&v, "real_pos")) {
            p.real = Some(r);
        }
        p.paper = position_of(&s(&v, "paper_pos"));
        p.equity = equity;
        p.paper_equity = f(&v, "paper_equity");
        if equity.is_some() {
            self.equity = equity;
            self.equity_first = self.equity_first.or(equity);
        }
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

    /// Live bars of a model inside the run's span (its points whose bar is one of
    /// [`State::span`]'s); all of them when the span is not known.
    pub fn span_bars(&self, name: &str) -> u64 {
        let Some(m) = self.models.get(name) else {
            return 0;
        };
        let n = match self.span.get(name) {
            Some(set) => m
                .points
                .iter()
                .filter(|p| set.contains(&p.bar_time))
                .count(),
            None => m.points.len(),
        };
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// The run's bars are done: every model the market published bars for has a signal and the
    /// executor's answer for each live bar of the span. The tail after the span (there so that
    /// the last bars' orders meet an open market) need not be waited for.
    pub fn span_done(&self) -> bool {
        let mut any = false;
        for (name, m) in &self.models {
            let Some(&want) = self.expected.get(name) else {
                continue;
            };
            let answered = match self.span.get(name) {
                Some(set) => m
                    .points
                    .iter()
                    .filter(|p| p.answered && set.contains(&p.bar_time))
                    .count(),
                None => m.points.iter().filter(|p| p.answered).count(),
            };
            if u64::try_from(answered).unwrap_or(0) < want {
                return false;
            }
            any = true;
        }
        any
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
        assert_eq!(m.stream, StreamKey::parse("EURUSD", "H1").ok());
        assert_eq!((m.live_bars, m.signals, m.orders, m.refusals), (2, 2, 1, 1));
        assert_eq!((m.virt(), m.real()), (-3, Some(0)));
        assert_eq!(m.points[1].paper, Some(-3));
        assert_eq!(m.drift_bars(), 1);
        assert!((m.pnl() - 1.0).abs() < 1e-12);
        assert!(st.render().contains("EURUSD_H1"));
        let summary = crate::demo::Summary::default();
        let html = crate::demo::report::html(&st, &summary, &BTreeMap::new());
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

    fn ev(e: &str, rest: &str) -> String {
        format!("{{\"event\":\"{e}\",\"model\":\"EURUSD_H1\"{rest}}}")
    }

    fn signal(t: &str, d: i64, i: i64, pnl: f64) -> String {
        ev(
            "signal",
            &format!(
                ",\"bar_time\":\"{t}\",\"action\":\"X\",\"direction\":{d},\"intensity\":{i},\"realized_pnl\":{pnl},\"upnl\":0.0"
            ),
        )
    }

    fn ack(t: &str, status: &str, reason: &str) -> String {
        ev(
            "ack",
            &format!(
                ",\"status\":\"{status}\",\"reason\":\"{reason}\",\"ticket\":\"\",\"bar_time\":\"{t}\""
            ),
        )
    }

    fn ledger(t: &str, real: &str, equity: f64, ack: &str) -> String {
        format!(
            r#"{{"bar_time":"{t}","model":"EURUSD_H1","virtual_pos":"FLAT","virtual_pnl":0.0,"real_pos":"{real}","real_pnl":0.0,"paper_pos":"{real}","paper_pnl":0.0,"equity":{equity},"paper_equity":{equity},"ack":"{ack}"}}"#
        )
    }

    fn hour(h: u32) -> String {
        format!("2020-01-01T{h:02}:00:00Z")
    }

    fn loaded() -> State {
        let mut st = State::new(BTreeMap::from([("EURUSD_H1".to_string(), 3)]));
        st.predictor_line(&ev("model_loaded", ",\"symbol\":\"EURUSD\",\"tf\":\"H1\""));
        st
    }

    #[test]
    fn refusals_from_acks_are_spelled_as_in_the_ledger() {
        let mut st = loaded();
        st.predictor_line(&signal(&hour(0), 1, 1, 0.0));
        let note = st.predictor_line(&ack(&hour(0), "WAIT_SYNC", "MISSED_ENTRY"));
        assert_eq!(
            st.models["EURUSD_H1"].points[0].refusal.as_deref(),
            Some("WAIT_SYNC|MISSED_ENTRY")
        );
        assert!(
            note.is_some_and(|n| n.ends_with("WAIT_SYNC|MISSED_ENTRY")),
            "one spelling in the live notes too"
        );
    }

    #[test]
    fn drift_is_counted_by_its_cause_and_a_wait_sync_after_a_fail_is_no_new_refusal() {
        let mut st = loaded();
        // Go-live: the twin is long from history; the executor does not chase it (2 bars).
        st.predictor_line(&signal(&hour(0), 1, 1, 0.0));
        st.predictor_line(&ack(&hour(0), "WAIT_SYNC", "MISSED_ENTRY"));
        st.predictor_line(&signal(&hour(1), 1, 1, 0.0));
        st.predictor_line(&ack(&hour(1), "WAIT_SYNC", "MISSED_ENTRY"));
        // Flat together.
        st.predictor_line(&signal(&hour(2), 0, 0, 0.0));
        st.predictor_line(&ack(&hour(2), "HOLD", ""));
        // A new entry refused: market closed, then not chased (3 bars).
        st.predictor_line(&signal(&hour(3), -1, 2, 0.0));
        st.predictor_line(&ack(&hour(3), "FAIL", "BROKER_MARKET_CLOSED"));
        for h in 4..6 {
            st.predictor_line(&signal(&hour(h), -1, 2, 0.0));
            st.predictor_line(&ack(&hour(h), "WAIT_SYNC", "MISSED_ENTRY"));
        }
        // A bar whose answer is not seen: no refusal explains it.
        st.predictor_line(&signal(&hour(6), 1, 3, 0.0));
        let m = &st.models["EURUSD_H1"];
        assert_eq!(
            m.drift_causes(),
            BTreeMap::from([
                ("MISSED_ENTRY_AT_GO_LIVE".to_string(), 2),
                ("BROKER_MARKET_CLOSED".to_string(), 3),
                ("UNANSWERED".to_string(), 1),
            ])
        );
        assert_eq!(m.drift_bars(), 6);
        assert_eq!(
            m.refusals, 2,
            "the go-live missed entry and the market closed"
        );
    }

    #[test]
    fn the_ledger_equity_is_the_account_equity_of_the_view_and_the_report() {
        let mut st = loaded();
        st.predictor_line(&signal(&hour(0), 0, 0, 0.0));
        st.ledger_row(&ledger(&hour(0), "FLAT", 100_012.5, "HOLD"));
        assert_eq!(st.equity, Some(100_012.5));
        assert_eq!(st.equity_first, Some(100_012.5));
        assert_eq!(st.models["EURUSD_H1"].points[0].equity, Some(100_012.5));
        let html =
            crate::demo::report::html(&st, &crate::demo::Summary::default(), &BTreeMap::new());
        assert!(
            html.contains("<tr><td>account equity (executor ledger)</td><td>100012.50</td></tr>"),
            "{html}"
        );
    }

    /// The y of the last point of the path with class `class` in an SVG.
    fn last_y(svg: &str, class: &str) -> f64 {
        let end = svg
            .rfind(&format!("\" class=\"{class} eq\""))
            .unwrap_or_else(|| panic!("no {class} path in {svg}"));
        let d = &svg[..end];
        let last = d.rsplit(' ').next().expect("a point");
        last.trim_start_matches(['M', 'L'])
            .split(',')
            .nth(1)
            .expect("x,y")
            .parse()
            .expect("y")
    }

    #[test]
    fn virtual_and_account_pnl_are_drawn_on_one_scale_with_units() {
        let mut st = loaded();
        // Virtual P&L: +0 → +25; account equity 100,000 → 100,025: the same change.
        st.predictor_line(&signal(&hour(0), 1, 1, 0.0));
        st.ledger_row(&ledger(&hour(0), "LONG_WEAK", 100_000.0, "OK"));
        st.predictor_line(&signal(&hour(1), 1, 1, 25.0));
        st.ledger_row(&ledger(&hour(1), "LONG_WEAK", 100_025.0, "HOLD"));
        let svg = crate::demo::report::account_chart(&st);
        assert!(svg.contains("USD"), "a unit: {svg}");
        let (v, a) = (last_y(&svg, "virt"), last_y(&svg, "real"));
        assert!(
            (v - a).abs() < 0.05,
            "the same money is drawn at the same height: virtual {v}, account {a}"
        );
        let html =
            crate::demo::report::html(&st, &crate::demo::Summary::default(), &BTreeMap::new());
        assert!(html.contains(&svg));
    }

    #[test]
    fn the_run_is_done_when_every_bar_of_the_span_is_answered() {
        let mut st = loaded();
        st.span = BTreeMap::from([("EURUSD_H1".to_string(), (0..3).map(hour).collect())]);
        assert!(!st.span_done());
        for h in 0..3 {
            st.predictor_line(&signal(&hour(h), 0, 0, 0.0));
        }
        assert!(!st.span_done(), "signals without answers");
        st.predictor_line(&ack(&hour(0), "HOLD", ""));
        st.predictor_line(&ack(&hour(1), "HOLD", ""));
        assert!(!st.span_done(), "the last bar not answered");
        st.ledger_row(&ledger(&hour(2), "FLAT", 100_000.0, "HOLD"));
        assert!(
            st.span_done(),
            "every bar of the span answered; the tail is not waited for"
        );
        // A tail bar counts as a live bar, not as a span bar.
        st.predictor_line(&signal(&hour(3), 0, 0, 0.0));
        assert_eq!(
            (st.models["EURUSD_H1"].live_bars, st.span_bars("EURUSD_H1")),
            (4, 3)
        );
    }

    #[test]
    fn no_signal_rows_of_the_ledger_leave_the_bars_alone() {
        let mut st = loaded();
        st.predictor_line(&signal(&hour(0), 1, 1, 0.0));
        st.predictor_line(&ack(&hour(0), "OK", ""));
        st.ledger_row(&ledger(&hour(0), "FLAT", 100_000.0, "NO_SIGNAL"));
        assert_eq!(st.models["EURUSD_H1"].points[0].real, Some(1));
    }
}
