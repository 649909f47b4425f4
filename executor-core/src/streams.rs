//! The executor's bar streams and the lines it writes to the predictor, sans-IO: per (symbol,
//! timeframe) a SEQ and a ring of recent bars for HISTORY ([`Streams`]), which SIGNALs are for a
//! stream and a bar it holds ([`NotStreamed`]), and the BAR, ERR and WELCOME lines. The WebSocket
//! server that sends them is the shell's (`oracle_executor::server`).

use std::collections::{HashMap, VecDeque};

use oracle_ipc::{ErrCode, ErrLine, MAX_ERR_DETAIL, Message, Timeframe, Welcome};

use crate::broker::{Bar, tick_volume};

/// Per-(symbol, timeframe) bar streams: sequence numbers and a ring of recent bars.
#[derive(Debug, Default)]
pub struct Streams {
    streams: HashMap<(String, Timeframe), Stream>,
    cap: usize,
}

/// One stream: the SEQ of its last bar and its recent bars, oldest first (their SEQs are
/// consecutive, so the ring does not store them).
#[derive(Debug, Default)]
struct Stream {
    seq: u64,
    ring: VecDeque<Bar>,
    /// A model's stream: SIGNALs are taken for it (see [`Streams::serve`]).
    served: bool,
    /// Its ring was filled from the broker's history ([`Streams::seeded`]).
    seeded: bool,
}

/// Why a SIGNAL's (symbol, timeframe, bar time) is not one the executor trades on
/// ([`Streams::check_signal`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStreamed {
    /// No model of that (symbol, timeframe) is loaded: the executor does not stream it.
    Model,
    /// The model is loaded but the bar time is not a bar of its stream (not closed yet, in the
    /// future, or no bar's open time).
    Bar,
}

impl NotStreamed {
    /// The ERR code answering such a SIGNAL.
    pub fn code(self) -> ErrCode {
        match self {
            NotStreamed::Model => ErrCode::UnknownModel,
            NotStreamed::Bar => ErrCode::UnknownBar,
        }
    }
}

impl Streams {
    /// Keeps `cap` bars per stream for HISTORY.
    pub fn new(cap: usize) -> Self {
        Streams {
            streams: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// Marks `(symbol, tf)` as a loaded model's stream: the executor streams its bars and takes
    /// SIGNALs for it. The streams of the models found at start (`--models`), of the replays
    /// (`--feed-csv`) and of every bar that comes from the feed are served; a stream filled only
    /// to answer a HISTORY request is not.
    pub fn serve(&mut self, symbol: &str, tf: Timeframe) {
        self.streams
            .entry((symbol.to_string(), tf))
            .or_default()
            .served = true;
    }

    /// May a SIGNAL for `(symbol, tf)` at bar time `bt` be traded? Only for a served stream
    /// ([`Streams::serve`]) and a bar it holds (streamed live, or served for HISTORY): a bar
    /// not closed yet, a time in the future, or a time that is no bar's open time is refused.
    pub fn check_signal(&self, symbol: &str, tf: Timeframe, bt: i64) -> Result<(), NotStreamed> {
        let s = self
            .streams
            .get(&(symbol.to_string(), tf))
            .filter(|s| s.served)
            .ok_or(NotStreamed::Model)?;
        s.ring
            .binary_search_by_key(&bt, |b| b.time)
            .map(|_| ())
            .map_err(|_| NotStreamed::Bar)
    }

    /// Whether `(symbol, tf)`'s ring was filled from the broker's history. Until it is, the
    /// stream answers no HISTORY and takes no live bar: a predictor answered from the few live
    /// bars after a failed history request would prime a restored twin on them (a trace that
    /// leaves the backtest). The shell seeds it again at the reconnect or its next live bar.
    pub fn seeded(&self, symbol: &str, tf: Timeframe) -> bool {
        self.streams
            .get(&(symbol.to_string(), tf))
            .is_some_and(|s| s.seeded)
    }

    /// Records that `(symbol, tf)`'s history is in its ring.
    pub fn mark_seeded(&mut self, symbol: &str, tf: Timeframe) {
        self.streams
            .entry((symbol.to_string(), tf))
            .or_default()
            .seeded = true;
    }

    /// The streams not seeded yet (served or asked for), in a stable order.
    pub fn unseeded(&self) -> Vec<(String, Timeframe)> {
        let mut v: Vec<_> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.seeded)
            .map(|(k, _)| k.clone())
            .collect();
        v.sort_by(|a, b| (a.0.as_str(), a.1.as_str()).cmp(&(b.0.as_str(), b.1.as_str())));
        v
    }

    /// Offers a closed bar: accepted (with its new SEQ) only if it is after the last one, so a
    /// gap fill after a reconnect that overlaps what was already sent emits nothing twice.
    pub fn offer(&mut self, symbol: &str, tf: Timeframe, bar: Bar) -> Option<u64> {
        let s = self.streams.entry((symbol.to_string(), tf)).or_default();
        if s.ring.back().is_some_and(|b| bar.time <= b.time) {
            return None;
        }
        s.seq += 1;
        if s.ring.len() == self.cap {
            s.ring.pop_front();
        }
        s.ring.push_back(bar);
        Some(s.seq)
    }

    /// Replaces a bar already sent with the broker's history version (`--bar-close live`: history
    /// differs from the live snapshot). Returns the bar's SEQ when it was held and differs (the
    /// `REV:1` line to send), `None` when it is not held (older than the ring, or never sent) or
    /// already equal.
    pub fn revise(&mut self, symbol: &str, tf: Timeframe, bar: Bar) -> Option<u64> {
        let s = self.streams.get_mut(&(symbol.to_string(), tf))?;
        let first = s.seq + 1 - s.ring.len() as u64;
        let i = s.ring.iter().position(|b| b.time == bar.time)?;
        if s.ring[i] == bar {
            return None;
        }
        s.ring[i] = bar;
        Some(first + i as u64)
    }

    /// Time of the last bar of a stream.
    pub fn last_time(&self, symbol: &str, tf: Timeframe) -> Option<i64> {
        self.streams
            .get(&(symbol.to_string(), tf))?
            .ring
            .back()
            .map(|b| b.time)
    }

    /// The last `count` bars with their SEQ.
    pub fn last(&self, symbol: &str, tf: Timeframe, count: u32) -> Vec<(u64, Bar)> {
        let Some(s) = self.streams.get(&(symbol.to_string(), tf)) else {
            return Vec::new();
        };
        let n = s.ring.len().saturating_sub(count as usize);
        // The ring's first bar has SEQ `seq - len + 1`.
        let first = s.seq + 1 - s.ring.len() as u64;
        s.ring
            .iter()
            .enumerate()
            .skip(n)
            .map(|(i, b)| (first + i as u64, *b))
            .collect()
    }

    /// The answer to `HISTORY|symbol|tf|count` from the stream's ring: its last `count` bars as
    /// BAR lines (`HIST:1`), then `HISTORY_END` with the number sent.
    pub fn history_lines(&self, symbol: &str, tf: Timeframe, count: u32) -> Vec<String> {
        let mut out: Vec<String> = self
            .last(symbol, tf, count)
            .iter()
            .filter_map(|(seq, b)| bar_line(symbol, tf, *seq, b, true, false))
            .collect();
        let end = Message::HistoryEnd(oracle_ipc::HistoryEnd {
            symbol,
            tf,
            count: out.len() as u32,
        });
        out.push(end.to_string());
        out
    }
}

/// A BAR line.
pub fn bar_line(
    symbol: &str,
    tf: Timeframe,
    seq: u64,
    b: &Bar,
    hist: bool,
    rev: bool,
) -> Option<String> {
    Message::Bar(oracle_ipc::Bar {
        symbol,
        tf,
        time: b.time,
        open: b.open,
        high: b.high,
        low: b.low,
        close: b.close,
        volume: tick_volume(b),
        seq,
        hist,
        rev,
    })
    .to_line()
    .ok()
}

/// An ERR line; the detail is cut to 64 bytes on a character boundary.
pub fn err_line(code: ErrCode, detail: &str) -> String {
    let mut end = detail.len().min(MAX_ERR_DETAIL);
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    let detail: String = detail[..end]
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    Message::Err(ErrLine {
        code,
        detail: &detail,
    })
    .to_line()
    .unwrap_or_else(|_| format!("ERR|{}", code.as_str()))
}

/// `WELCOME|V:<protocol version>`.
pub fn welcome_line() -> String {
    Message::Welcome(Welcome {
        version: oracle_ipc::PROTOCOL_VERSION,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_crosses_the_bar_line_to_the_predictor_unchanged_its_tick_volume_an_integer() {
        // The executor's bar is the twins' bar (`oracle_core::Bar`, volume f64): the line
        // carries the tick volume as the integer the broker gave, and the predictor's parse
        // gives back the same bar, up to the largest whole volume f64 holds exactly.
        for volume in [0.0, 1234.0, 9_007_199_254_740_991.0] {
            let b = Bar {
                time: 1_704_067_200,
                open: 1.10001,
                high: 1.2,
                low: 1.0,
                close: 1.15,
                volume,
            };
            let line = bar_line("EURUSD", Timeframe::M15, 7, &b, false, false).expect("encodes");
            assert!(
                line.contains(&format!("|{}|SEQ:7", volume as u64)),
                "integer volume: {line}"
            );
            let Ok(Message::Bar(got)) = oracle_ipc::parse(&line) else {
                panic!("not a BAR line: {line}");
            };
            assert_eq!(got.bar(), b, "{line}");
            assert_eq!(
                got.key(),
                Ok(oracle_ipc::StreamKey::parse("EURUSD", "M15").unwrap())
            );
        }
    }

    /// A bar at `time` whose prices are all 1.0.
    fn flat(time: i64) -> Bar {
        Bar {
            time,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 1.0,
        }
    }

    #[test]
    fn streams_never_repeat_or_go_back() {
        let mut s = Streams::new(3);
        let b = flat;
        assert_eq!(s.offer("EURUSD", Timeframe::M15, b(900)), Some(1));
        assert_eq!(s.offer("EURUSD", Timeframe::M15, b(1800)), Some(2));
        // A gap fill overlapping the past is dropped.
        assert_eq!(s.offer("EURUSD", Timeframe::M15, b(900)), None);
        assert_eq!(s.offer("EURUSD", Timeframe::M15, b(1800)), None);
        assert_eq!(s.offer("EURUSD", Timeframe::M15, b(2700)), Some(3));
        assert_eq!(s.offer("EURUSD", Timeframe::M15, b(3600)), Some(4));
        let l = s.last("EURUSD", Timeframe::M15, 10);
        assert_eq!(l.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 3, 4]);
        // A revision replaces a held bar in place (same SEQ), HISTORY then serves it; an equal
        // bar, one no longer held, or an unknown stream is not a revision.
        let mut r = b(2700);
        r.high = 2.0;
        assert_eq!(s.revise("EURUSD", Timeframe::M15, r), Some(3));
        assert_eq!(s.revise("EURUSD", Timeframe::M15, r), None);
        assert_eq!(s.revise("EURUSD", Timeframe::M15, b(900)), None);
        assert_eq!(s.revise("US500", Timeframe::M15, r), None);
        let l = s.last("EURUSD", Timeframe::M15, 10);
        assert_eq!(l[1], (3, r));
        assert_eq!(s.offer("EURUSD", Timeframe::M15, b(4500)), Some(5));
    }

    #[test]
    fn a_history_answer_is_the_rings_last_bars_marked_history_then_its_end_counting_them() {
        let mut s = Streams::new(3);
        let b = flat;
        for t in [900, 1800, 2700] {
            s.offer("EURUSD", Timeframe::M15, b(t));
        }
        let out = s.history_lines("EURUSD", Timeframe::M15, 2);
        assert_eq!(out.len(), 3, "{out:?}");
        for (line, (seq, t)) in out.iter().zip([(2, 1800), (3, 2700)]) {
            let Ok(Message::Bar(got)) = oracle_ipc::parse(line) else {
                panic!("not a BAR line: {line}");
            };
            assert_eq!(
                (got.seq, got.hist, got.bar().time),
                (seq, true, t),
                "{line}"
            );
        }
        assert_eq!(out[2], "HISTORY_END|EURUSD|M15|2");
        // A stream not held: no bar, the end says 0.
        assert_eq!(
            s.history_lines("US500", Timeframe::M15, 5),
            ["HISTORY_END|US500|M15|0"]
        );
    }

    #[test]
    fn err_detail_is_cut_at_64_bytes() {
        let l = err_line(ErrCode::Malformed, &"é".repeat(100));
        assert!(l.len() <= "ERR|MALFORMED|".len() + 64);
    }
}
