//! The lines of docs/ipc.md that the predictor reads and writes. This is the shell's seam to the
//! shared codec (`oracle-ipc`); it parses exactly the documented shapes and nothing looser.

use crate::isotime;
use crate::seam::Bar;

/// A line from the executor.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// `WELCOME|V:1`
    Welcome,
    /// `BAR|SYM|TF|time|o|h|l|c|v|SEQ:n[|HIST:1]`
    Bar {
        /// Symbol.
        symbol: String,
        /// Timeframe.
        timeframe: String,
        /// The bar.
        bar: Bar,
        /// Executor's per-stream sequence.
        seq: u64,
        /// Sent as history (warm-up), not live.
        history: bool,
    },
    /// `HISTORY_END|SYM|TF|count`
    HistoryEnd {
        /// Symbol.
        symbol: String,
        /// Timeframe.
        timeframe: String,
        /// Bars sent.
        count: u64,
    },
    /// `ACK|SYM|ACTION|STATUS|…|BT:…|SEQ:…`
    Ack(Ack),
    /// `ERR|CODE|detail`
    Err {
        /// Error code (`AUTH`, `MALFORMED`, …).
        code: String,
        /// Detail, possibly empty.
        detail: String,
    },
}

/// An acknowledgement of one signal.
#[derive(Clone, Debug, PartialEq)]
pub struct Ack {
    /// Symbol.
    pub symbol: String,
    /// Action named in the signal.
    pub action: String,
    /// `OK`, `FAIL`, `WAIT_SYNC` or `HOLD`.
    pub status: String,
    /// Refusal reason for `FAIL`/`WAIT_SYNC` (e.g. `MARGIN`, `MISSED_ENTRY`).
    pub reason: Option<String>,
    /// Broker ticket for `OK`.
    pub ticket: Option<String>,
    /// Fill price for `OK`.
    pub price: Option<f64>,
    /// Bar time tag (Unix seconds).
    pub bar_time: Option<i64>,
    /// Sequence tag.
    pub seq: Option<u64>,
    /// Timeframe tag, when the executor sends one.
    pub timeframe: Option<String>,
}

/// Why a line could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

fn bad(line: &str) -> Malformed {
    Malformed(line.chars().take(64).collect())
}

fn tag<'a>(field: &'a str, key: &str) -> Option<&'a str> {
    field.strip_prefix(key)?.strip_prefix(':')
}

/// Parses one line from the executor.
pub fn parse(line: &str) -> Result<Incoming, Malformed> {
    let f: Vec<&str> = line.trim_end_matches(['\r', '\n']).split('|').collect();
    match f[0] {
        "WELCOME" => Ok(Incoming::Welcome),
        "ERR" if f.len() >= 2 => Ok(Incoming::Err {
            code: f[1].to_string(),
            detail: f[2..].join("|"),
        }),
        "HISTORY_END" if f.len() == 4 => Ok(Incoming::HistoryEnd {
            symbol: f[1].to_string(),
            timeframe: f[2].to_string(),
            count: f[3].parse().map_err(|_| bad(line))?,
        }),
        "BAR" if f.len() >= 10 => {
            let time = isotime::parse(f[3]).ok_or_else(|| bad(line))?;
            let num = |s: &str| s.parse::<f64>().map_err(|_| bad(line));
            let bar = Bar {
                time,
                open: num(f[4])?,
                high: num(f[5])?,
                low: num(f[6])?,
                close: num(f[7])?,
                volume: num(f[8])?,
            };
            let mut seq = None;
            let mut history = false;
            for t in &f[9..] {
                if let Some(v) = tag(t, "SEQ") {
                    seq = Some(v.parse().map_err(|_| bad(line))?);
                } else if let Some(v) = tag(t, "HIST") {
                    history = v == "1";
                }
            }
            Ok(Incoming::Bar {
                symbol: f[1].to_string(),
                timeframe: f[2].to_string(),
                bar,
                seq: seq.ok_or_else(|| bad(line))?,
                history,
            })
        }
        "ACK" if f.len() >= 4 => {
            let mut ack = Ack {
                symbol: f[1].to_string(),
                action: f[2].to_string(),
                status: f[3].to_string(),
                reason: None,
                ticket: None,
                price: None,
                bar_time: None,
                seq: None,
                timeframe: None,
            };
            for t in &f[4..] {
                if let Some(v) = tag(t, "T") {
                    ack.ticket = Some(v.to_string());
                } else if let Some(v) = tag(t, "P") {
                    ack.price = v.parse().ok();
                } else if let Some(v) = tag(t, "BT") {
                    ack.bar_time = Some(isotime::parse(v).ok_or_else(|| bad(line))?);
                } else if let Some(v) = tag(t, "SEQ") {
                    ack.seq = Some(v.parse().map_err(|_| bad(line))?);
                } else if let Some(v) = tag(t, "TF") {
                    ack.timeframe = Some(v.to_string());
                } else if !t.contains(':') && ack.reason.is_none() {
                    ack.reason = Some((*t).to_string());
                }
            }
            Ok(Incoming::Ack(ack))
        }
        _ => Err(bad(line)),
    }
}

/// `HELLO|token`
pub fn hello(token: &str) -> String {
    format!("HELLO|{token}")
}

/// `HISTORY|SYM|TF|count`
pub fn history(symbol: &str, timeframe: &str, count: usize) -> String {
    format!("HISTORY|{symbol}|{timeframe}|{count}")
}

/// Everything a `SIGNAL` line carries.
#[derive(Clone, Debug, PartialEq)]
pub struct Signal<'a> {
    /// Symbol.
    pub symbol: &'a str,
    /// Action name.
    pub action: &'a str,
    /// HMM regime.
    pub regime: u32,
    /// Virtual unrealised P&L, account money.
    pub upnl: f64,
    /// Timeframe.
    pub timeframe: &'a str,
    /// Bar open time (Unix seconds).
    pub bar_time: i64,
    /// The bar's sequence number.
    pub seq: u64,
    /// Direction after the action.
    pub direction: i8,
    /// Intensity after the action.
    pub intensity: u8,
}

/// `SIGNAL|SYM|ACTION|regime|upnl|TF:tf|BT:time|SEQ:n|DIR:d|INT:i`
pub fn signal(s: &Signal<'_>) -> String {
    format!(
        "SIGNAL|{}|{}|{}|{:.2}|TF:{}|BT:{}|SEQ:{}|DIR:{}|INT:{}",
        s.symbol,
        s.action,
        s.regime,
        s.upnl + 0.0,
        s.timeframe,
        isotime::format(s.bar_time),
        s.seq,
        s.direction,
        s.intensity
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_lines() {
        assert_eq!(parse("WELCOME|V:1"), Ok(Incoming::Welcome));
        let b = parse("BAR|EURUSD|M15|2021-03-01T00:15:00Z|1.2|1.3|1.1|1.25|42|SEQ:7|HIST:1");
        let Ok(Incoming::Bar {
            bar, seq, history, ..
        }) = b
        else {
            panic!("{b:?}")
        };
        assert_eq!(
            (bar.time, bar.close, seq, history),
            (1_614_557_700, 1.25, 7, true)
        );
        let a = parse("ACK|EURUSD|LONG_WEAK|OK|T:12345|P:1.08542|BT:2021-03-01T00:15:00Z|SEQ:7");
        let Ok(Incoming::Ack(a)) = a else {
            panic!("{a:?}")
        };
        assert_eq!(a.ticket.as_deref(), Some("12345"));
        assert_eq!((a.price, a.seq, a.reason), (Some(1.08542), Some(7), None));
        let a =
            parse("ACK|USDJPY|LONG_STRONG|WAIT_SYNC|MISSED_ENTRY|BT:2021-03-01T00:15:00Z|SEQ:3");
        let Ok(Incoming::Ack(a)) = a else {
            panic!("{a:?}")
        };
        assert_eq!(a.reason.as_deref(), Some("MISSED_ENTRY"));
        assert!(parse("BAR|EURUSD|M15|yesterday|1|1|1|1|1|SEQ:1").is_err());
        assert!(parse("NOPE").is_err());
    }

    #[test]
    fn formats_a_signal() {
        let s = Signal {
            symbol: "EURUSD",
            action: "WAIT",
            regime: 2,
            upnl: -0.0,
            timeframe: "M15",
            bar_time: 1_614_557_700,
            seq: 9,
            direction: 0,
            intensity: 0,
        };
        assert_eq!(
            signal(&s),
            "SIGNAL|EURUSD|WAIT|2|0.00|TF:M15|BT:2021-03-01T00:15:00Z|SEQ:9|DIR:0|INT:0"
        );
    }
}
