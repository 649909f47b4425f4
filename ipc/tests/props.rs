//! Round-trip and malformed-input properties of the line codec.

use oracle_ipc::*;
use proptest::prelude::*;

fn symbol() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._#-]{1,32}"
}
fn tf() -> impl Strategy<Value = Timeframe> {
    prop::sample::select(Timeframe::ALL.to_vec())
}
fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(Action::ALL.to_vec())
}
fn time() -> impl Strategy<Value = i64> {
    time::MIN_TIME..=time::MAX_TIME
}
fn price() -> impl Strategy<Value = f64> {
    prop_oneof![
        (1u64..10_000_000_000u64, 0u32..8).prop_map(|(m, e)| m as f64 / 10f64.powi(e as i32)),
        1e-6f64..1e7,
    ]
}
fn reason() -> impl Strategy<Value = String> {
    "[A-Z][A-Z0-9_]{0,40}"
}

#[derive(Debug, Clone)]
enum Owned {
    Hello(String),
    Welcome(u32),
    History(String, Timeframe, u32),
    Bar(String, Timeframe, i64, [f64; 4], u64, u64, (bool, bool)),
    HistoryEnd(String, Timeframe, u32),
    Signal(
        String,
        Action,
        u8,
        i64,
        Option<Timeframe>,
        Option<i64>,
        Option<u64>,
    ),
    Ack(
        String,
        Action,
        u8,
        u64,
        f64,
        String,
        Option<Timeframe>,
        Option<i64>,
        Option<u64>,
    ),
    Err(ErrCode, String),
}

impl Owned {
    fn msg(&self) -> Message<'_> {
        match self {
            Owned::Hello(t) => Message::Hello(Hello { token: t }),
            Owned::Welcome(v) => Message::Welcome(Welcome { version: *v }),
            Owned::History(s, tf, c) => Message::History(HistoryReq {
                symbol: s,
                tf: *tf,
                count: *c,
            }),
            Owned::Bar(s, tf, t, p, v, seq, (hist, rev)) => Message::Bar(Bar {
                symbol: s,
                tf: *tf,
                time: *t,
                open: p[0],
                high: p[1],
                low: p[2],
                close: p[3],
                volume: *v,
                seq: *seq,
                hist: *hist,
                rev: *rev,
            }),
            Owned::HistoryEnd(s, tf, c) => Message::HistoryEnd(HistoryEnd {
                symbol: s,
                tf: *tf,
                count: *c,
            }),
            Owned::Signal(s, a, r, p, tf, bt, seq) => Message::Signal(Signal {
                symbol: s,
                action: *a,
                regime: *r,
                virtual_pnl: Cents(*p),
                tf: *tf,
                bar_time: *bt,
                seq: *seq,
            }),
            Owned::Ack(s, a, which, t, p, r, tf, bt, seq) => Message::Ack(Ack {
                symbol: s,
                action: *a,
                outcome: match which % 4 {
                    0 => Outcome::Ok {
                        ticket: *t,
                        price: *p,
                    },
                    1 => Outcome::Fail { reason: r },
                    2 => Outcome::WaitSync { reason: r },
                    _ => Outcome::Hold,
                },
                tf: *tf,
                bar_time: *bt,
                seq: *seq,
            }),
            Owned::Err(c, d) => Message::Err(ErrLine {
                code: *c,
                detail: d,
            }),
        }
    }
}

fn owned() -> impl Strategy<Value = Owned> {
    prop_oneof![
        "[!-{}~]{1,256}".prop_map(Owned::Hello),
        any::<u32>().prop_map(Owned::Welcome),
        (symbol(), tf(), 0..=MAX_HISTORY).prop_map(|(s, t, c)| Owned::History(s, t, c)),
        (
            symbol(),
            tf(),
            time(),
            prop::array::uniform4(price()),
            any::<u64>(),
            any::<u64>(),
            any::<(bool, bool)>()
        )
            .prop_map(|(s, t, ti, p, v, q, h)| Owned::Bar(s, t, ti, p, v, q, h)),
        (symbol(), tf(), 0..=MAX_HISTORY).prop_map(|(s, t, c)| Owned::HistoryEnd(s, t, c)),
        (
            symbol(),
            action(),
            any::<u8>(),
            -99_999_999_999_999i64..99_999_999_999_999,
            prop::option::of(tf()),
            prop::option::of(time()),
            prop::option::of(any::<u64>())
        )
            .prop_map(|(s, a, r, p, tf, bt, q)| Owned::Signal(s, a, r, p, tf, bt, q)),
        (
            symbol(),
            action(),
            any::<u8>(),
            any::<u64>(),
            price(),
            reason(),
            prop::option::of(tf()),
            prop::option::of(time()),
            prop::option::of(any::<u64>())
        )
            .prop_map(|(s, a, w, t, p, r, tf, bt, q)| Owned::Ack(s, a, w, t, p, r, tf, bt, q)),
        (prop::sample::select(ErrCode::ALL.to_vec()), "[ -~]{0,64}")
            .prop_map(|(c, d)| Owned::Err(c, d)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn round_trip(o in owned()) {
        let m = o.msg();
        let line = m.to_line().expect("valid message encodes");
        prop_assert!(line.len() <= MAX_LINE);
        let back = parse(&line).expect("encoded line parses");
        prop_assert_eq!(back, m);
        // And the text is stable.
        prop_assert_eq!(back.to_line().unwrap(), line);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..1100)) {
        let _ = parse_bytes(&b);
    }

    #[test]
    fn pipe_soup_never_panics(s in "[A-Z_|:0-9.\\-TZ]{0,200}") {
        if let Ok(m) = parse(&s) {
            // Whatever parses re-encodes to something that parses to the same message.
            if let Ok(l) = m.to_line() {
                prop_assert_eq!(parse(&l).unwrap(), m);
            }
        }
    }

    #[test]
    fn mutated_valid_lines_never_panic(o in owned(), cut in any::<prop::sample::Index>(), junk in "[|:a-zA-Z0-9.\\-]{0,8}") {
        let line = o.msg().to_line().unwrap();
        let at = cut.index(line.len() + 1);
        let at = (0..=at).rev().find(|i| line.is_char_boundary(*i)).unwrap_or(0);
        let mutated = format!("{}{}{}", &line[..at], junk, &line[at..]);
        let _ = parse(&mutated);
        let _ = parse(&line[..at]);
    }
}

/// Integers are canonical decimals: `0`, or digits without a leading zero. `INT:01`, `SEQ:007`,
/// a regime `03`, a HISTORY count `010` are malformed (each names its field), so every integer
/// has exactly one spelling on the wire (a line that parses re-encodes to itself).
#[test]
fn integers_with_a_leading_zero_are_malformed() {
    let ok = "SIGNAL|EURUSD|LONG_WEAK|0|0.00|TF:M15|BT:2021-03-01T00:15:00Z|SEQ:10|DIR:1|INT:1";
    assert!(parse(ok).is_ok());
    for (line, field) in [
        (
            "SIGNAL|EURUSD|LONG_WEAK|3|0.00|TF:M15|BT:2021-03-01T00:15:00Z|SEQ:1|DIR:1|INT:01",
            "INT",
        ),
        (
            "SIGNAL|EURUSD|LONG_WEAK|3|0.00|TF:M15|BT:2021-03-01T00:15:00Z|SEQ:007",
            "SEQ",
        ),
        ("SIGNAL|EURUSD|LONG_WEAK|03|0.00", "regime"),
        ("SIGNAL|EURUSD|LONG_WEAK|00|0.00", "regime"),
        ("HISTORY|EURUSD|M15|010", "count"),
        (
            "BAR|EURUSD|M15|2021-03-01T00:15:00Z|1|1|1|1|05|SEQ:1",
            "volume",
        ),
        (
            "BAR|EURUSD|M15|2021-03-01T00:15:00Z|1|1|1|1|5|SEQ:01",
            "SEQ",
        ),
        ("ACK|EURUSD|LONG_WEAK|OK|T:012|P:1.1", "T"),
    ] {
        let e = parse(line).expect_err(line);
        assert_eq!(e.field, field, "{line}: {e}");
        assert_eq!(e.err_code(), ErrCode::Malformed, "{line}");
    }
}

proptest! {
    /// Whatever integer spelling parses is the one the codec writes.
    #[test]
    fn an_integer_that_parses_is_written_back_the_same(n in "[0-9]{1,6}") {
        let line = format!("SIGNAL|EURUSD|WAIT|0|0.00|SEQ:{n}");
        if let Ok(m) = parse(&line) {
            let out = m.to_line().unwrap();
            let seq = out.split("|SEQ:").nth(1).unwrap().split('|').next().unwrap();
            prop_assert_eq!(seq, n.as_str());
        }
    }
}
