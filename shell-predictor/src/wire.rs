//! The lines of docs/ipc.md that the predictor reads and writes. This is the shell's seam to the
//! shared codec (`oracle-ipc`); it parses exactly the documented shapes and nothing looser.

use crate::isotime;
use oracle_core::{Action, Bar, StreamKey, Symbol, Timeframe};

/// A line from the executor.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// `WELCOME|V:1`
    Welcome,
    /// `BAR|SYM|TF|time|o|h|l|c|v|SEQ:n[|HIST:1][|REV:1]`
    Bar {
        /// The stream (symbol and timeframe, parsed here once).
        key: StreamKey,
        /// The bar.
        bar: Bar,
        /// Executor's per-stream sequence.
        seq: u64,
        /// Sent as history (warm-up), not live.
        history: bool,
        /// A revision (`REV:1`): the broker's history differs from the bar sent earlier with
        /// this time and `SEQ`; this one counts (docs/ipc.md, "Revisions").
        revised: bool,
    },
    /// `HISTORY_END|SYM|TF|count`
    HistoryEnd {
        /// The stream.
        key: StreamKey,
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
    pub symbol: Symbol,
    /// Action named in the signal.
    pub action: Action,
    /// `OK`, `FAIL`, `WAIT_SYNC` or `HOLD`.
    pub status: AckStatus,
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
    pub timeframe: Option<Timeframe>,
}

/// What the executor did with a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckStatus {
    /// `OK`: the order was filled.
    Ok,
    /// `FAIL`: the order was refused.
    Fail,
    /// `WAIT_SYNC`: the real position waits for the next sync.
    WaitSync,
    /// `HOLD`: nothing to do (the position already matches).
    Hold,
}

impl AckStatus {
    /// The name on the line.
    pub const fn as_str(self) -> &'static str {
        match self {
            AckStatus::Ok => "OK",
            AckStatus::Fail => "FAIL",
            AckStatus::WaitSync => "WAIT_SYNC",
            AckStatus::Hold => "HOLD",
        }
    }

    /// After this status the real position no longer follows the virtual one.
    pub const fn drifts(self) -> bool {
        matches!(self, AckStatus::Fail | AckStatus::WaitSync)
    }
}

impl std::fmt::Display for AckStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a line could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

fn bad(line: &str) -> Malformed {
    Malformed(line.chars().take(64).collect())
}

/// Parses one line from the executor with the shared codec (`oracle-ipc`), which both shells
/// use, so the predictor reads exactly what the executor writes; any line the codec refuses,
/// and any line an executor never sends, is `Malformed`.
pub fn parse(line: &str) -> Result<Incoming, Malformed> {
    use oracle_ipc::{Message, Outcome};
    let msg = oracle_ipc::parse(line.trim_end_matches(['\r', '\n'])).map_err(|_| bad(line))?;
    Ok(match msg {
        Message::Welcome(_) => Incoming::Welcome,
        Message::Err(e) => Incoming::Err {
            code: e.code.as_str().to_string(),
            detail: e.detail.to_string(),
        },
        Message::HistoryEnd(h) => Incoming::HistoryEnd {
            key: h.key().map_err(|_| bad(line))?,
            count: u64::from(h.count),
        },
        Message::Bar(b) => Incoming::Bar {
            key: b.key().map_err(|_| bad(line))?,
            bar: b.bar(),
            seq: b.seq,
            history: b.hist,
            revised: b.rev,
        },
        Message::Ack(a) => {
            let (status, reason, ticket, price) = match a.outcome {
                Outcome::Ok { ticket, price } => {
                    (AckStatus::Ok, None, Some(ticket.to_string()), Some(price))
                }
                Outcome::Fail { reason } => (AckStatus::Fail, Some(reason.to_string()), None, None),
                Outcome::WaitSync { reason } => {
                    (AckStatus::WaitSync, Some(reason.to_string()), None, None)
                }
                Outcome::Hold => (AckStatus::Hold, None, None, None),
            };
            Incoming::Ack(Ack {
                symbol: Symbol::new(a.symbol).map_err(|_| bad(line))?,
                action: a.action,
                status,
                reason,
                ticket,
                price,
                bar_time: a.bar_time,
                seq: a.seq,
                timeframe: a.tf,
            })
        }
        Message::Hello(_) | Message::History(_) | Message::Signal(_) => return Err(bad(line)),
    })
}

/// `HELLO|token`
pub fn hello(token: &str) -> String {
    format!("HELLO|{token}")
}

/// `HISTORY|SYM|TF|count`
pub fn history(key: &StreamKey, count: usize) -> String {
    format!("HISTORY|{}|{}|{count}", key.symbol, key.timeframe)
}

/// Everything a `SIGNAL` line carries.
#[derive(Clone, Debug, PartialEq)]
pub struct Signal {
    /// The model's stream.
    pub key: StreamKey,
    /// The action.
    pub action: Action,
    /// HMM regime.
    pub regime: usize,
    /// Virtual unrealised P&L, account money.
    pub upnl: f64,
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
pub fn signal(s: &Signal) -> String {
    format!(
        "SIGNAL|{}|{}|{}|{:.2}|TF:{}|BT:{}|SEQ:{}|DIR:{}|INT:{}",
        s.key.symbol,
        s.action.name(),
        s.regime,
        s.upnl + 0.0,
        s.key.timeframe,
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
            bar,
            seq,
            history,
            revised,
            ..
        }) = b
        else {
            panic!("{b:?}")
        };
        assert_eq!(
            (bar.time, bar.close, seq, history, revised),
            (1_614_557_700, 1.25, 7, true, false)
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
    fn parses_a_revision() {
        let b = parse("BAR|EURUSD|M15|2021-03-01T00:15:00Z|1.2|1.3|1.1|1.24|40|SEQ:7|REV:1");
        let Ok(Incoming::Bar {
            bar,
            seq,
            history,
            revised,
            ..
        }) = b
        else {
            panic!("{b:?}")
        };
        assert_eq!(
            (bar.time, bar.close, bar.volume, seq, history, revised),
            (1_614_557_700, 1.24, 40.0, 7, false, true)
        );
        assert!(
            parse("BAR|EURUSD|M15|2021-03-01T00:15:00Z|1.2|1.3|1.1|1.24|40|SEQ:7|REV:2").is_err()
        );
    }

    #[test]
    fn a_bar_line_is_parsed_once_into_its_stream_key() {
        let b = parse("BAR|GER40.cash|H4|2021-03-01T00:00:00Z|1.2|1.3|1.1|1.25|42|SEQ:7");
        let Ok(Incoming::Bar { key, .. }) = b else {
            panic!("{b:?}")
        };
        assert_eq!(key.symbol, "GER40.cash");
        assert_eq!(key.timeframe, Timeframe::H4);
        let h = parse("HISTORY_END|GER40.cash|H4|350");
        assert_eq!(h, Ok(Incoming::HistoryEnd { key, count: 350 }));
        let a = parse("ACK|GER40.cash|WAIT|HOLD|TF:H4|BT:2021-03-01T00:00:00Z|SEQ:7");
        let Ok(Incoming::Ack(a)) = a else {
            panic!("{a:?}")
        };
        assert_eq!((a.symbol, a.timeframe), (key.symbol, Some(Timeframe::H4)));
        assert_eq!(history(&key, 400), "HISTORY|GER40.cash|H4|400");
    }

    #[test]
    fn an_ack_is_parsed_into_its_action_and_status() {
        let cases = [
            (
                "ACK|EURUSD|LONG_WEAK|OK|T:1|P:1.1|BT:2021-03-01T00:15:00Z|SEQ:7",
                Action::LongWeak,
                AckStatus::Ok,
                false,
            ),
            (
                "ACK|EURUSD|WAIT|HOLD|BT:2021-03-01T00:15:00Z|SEQ:7",
                Action::Wait,
                AckStatus::Hold,
                false,
            ),
            (
                "ACK|EURUSD|SHORT_STRONG|FAIL|MARGIN|BT:2021-03-01T00:15:00Z|SEQ:7",
                Action::ShortStrong,
                AckStatus::Fail,
                true,
            ),
            (
                "ACK|EURUSD|LONG_STRONG|WAIT_SYNC|MISSED_ENTRY|BT:2021-03-01T00:15:00Z|SEQ:7",
                Action::LongStrong,
                AckStatus::WaitSync,
                true,
            ),
        ];
        for (line, action, status, drifts) in cases {
            let Ok(Incoming::Ack(a)) = parse(line) else {
                panic!("{line}")
            };
            assert_eq!(
                (a.action, a.status, a.status.drifts()),
                (action, status, drifts),
                "{line}"
            );
            assert!(
                line.contains(&format!("|{}|{}|", action.as_str(), status)),
                "{line}"
            );
        }
    }

    #[test]
    fn formats_a_signal() {
        let s = Signal {
            key: StreamKey::parse("EURUSD", "M15").expect("key"),
            action: Action::Wait,
            regime: 2,
            upnl: -0.0,
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
