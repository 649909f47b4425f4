//! The journal's bytes across the typed key (`StreamKey` for the executor's own
//! `ModelKey { symbol: String, tf: String }`): a journal written before loads, and a record
//! writes back byte for byte; a key that is not one is an error naming it.

use oracle_executor_core::journal::{ClosedTrades, Record, Replayed, closed_trades};
use oracle_executor_core::key::{KeyText, parse_key};

/// Lines of a journal the executor wrote before the key was typed (`oracle soak`, 2026-12-07,
/// `out/soak/real/executor/journal.jsonl`), verbatim.
const BEFORE: [&str; 4] = [
    r#"{"t":"intent","ts":1796620210,"coid":"ot-SYNIDX03-M5-1797001800-O","model":{"symbol":"SYNIDX03","tf":"M5"},"op":"open","symbol":"SYNIDX03","buy":true,"action":"LONG_WEAK","volume":10,"position_id":null,"bt":1797001800}"#,
    r#"{"t":"model","model":{"symbol":"EURUSD","tf":"H1"},"state":{"target":"LONG_WEAK","last_bt":1796997600,"real":null,"missed":true}}"#,
    r#"{"t":"ack","model":{"symbol":"EURUSD","tf":"H1"},"bt":1796997600,"line":"ACK|EURUSD|LONG_WEAK|WAIT_SYNC|MISSED_ENTRY|TF:H1|BT:2026-12-11T14:00:00Z|SEQ:411"}"#,
    r#"{"t":"outcome","coid":"ot-SYNIDX03-M5-1797001800-O","result":"unknown","position_id":null,"price":null,"volume":null,"code":null}"#,
];

#[test]
fn a_journal_written_before_the_typed_key_loads_and_its_records_write_back_byte_for_byte() {
    for line in BEFORE {
        let r = Record::from_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(
            String::from_utf8(r.to_line().unwrap()).unwrap(),
            line,
            "written back as read"
        );
    }
    let rep = Replayed::from_bytes(BEFORE.join("\n").as_bytes());
    assert_eq!(rep.bad_lines, 0);
    let h1 = parse_key("EURUSD", "H1").unwrap();
    let m5 = parse_key("SYNIDX03", "M5").unwrap();
    assert_eq!(rep.models[&h1].last_bt, Some(1_796_997_600));
    assert!(rep.models[&h1].missed);
    assert_eq!(
        rep.acks[&(h1, 1_796_997_600)],
        "ACK|EURUSD|LONG_WEAK|WAIT_SYNC|MISSED_ENTRY|TF:H1|BT:2026-12-11T14:00:00Z|SEQ:411"
    );
    let Some(Record::Intent { model, .. }) = rep.pending.get("ot-SYNIDX03-M5-1797001800-O") else {
        panic!(
            "the intent whose outcome is unknown is pending: {:?}",
            rep.pending
        );
    };
    assert_eq!(*model, m5);
    assert_eq!(model.model_name().to_string(), "SYNIDX03_M5");
    assert_eq!(model.label(), "oracle:SYNIDX03_M5");
}

#[test]
fn a_journal_key_that_is_not_a_symbol_or_timeframe_is_an_error_naming_it() {
    let bad_symbol = r#"{"t":"model","model":{"symbol":"EUR/USD","tf":"H1"},"state":{"target":null,"last_bt":null,"real":null,"missed":false}}"#;
    let e = Record::from_line(bad_symbol).unwrap_err().to_string();
    assert!(e.contains("symbol \"EUR/USD\""), "{e}");
    let bad_tf = r#"{"t":"ack","model":{"symbol":"EURUSD","tf":"M16"},"bt":0,"line":"ACK"}"#;
    let e = Record::from_line(bad_tf).unwrap_err().to_string();
    assert!(e.contains("timeframe \"M16\""), "{e}");
    // A replay counts such a line as bad (as a torn one) and keeps the rest.
    let rep = Replayed::from_bytes(format!("{bad_symbol}\n{}\n{bad_tf}\n", BEFORE[1]).as_bytes());
    assert_eq!(rep.bad_lines, 2);
    assert_eq!(rep.models.len(), 1);
}

#[test]
fn a_paper_journals_closed_trades_add_up_a_long_and_a_short_and_name_the_last_position() {
    let intent = |coid: &str, op: &str, buy: bool, pid: &str| {
        format!(
            r#"{{"t":"intent","ts":1,"coid":"{coid}","model":{{"symbol":"EURUSD","tf":"H1"}},"op":"{op}","symbol":"EURUSD","buy":{buy},"action":"LONG_WEAK","volume":100000,"position_id":{pid},"bt":3600}}"#
        )
    };
    let outcome = |coid: &str, result: &str, pid: u64, price: f64, volume: i64| {
        format!(
            r#"{{"t":"outcome","coid":"{coid}","result":"{result}","position_id":{pid},"price":{price},"volume":{volume},"code":null}}"#
        )
    };
    let text = [
        // A long: 1,000 units bought at 1.1, sold at 1.102: +2.
        intent("lo", "open", true, "null"),
        outcome("lo", "filled", 7, 1.1, 100_000),
        intent("lc", "close", false, "7"),
        outcome("lc", "filled", 7, 1.102, 100_000),
        // A short: 2 units sold at 120, bought back at 110: +20.
        intent("so", "open", false, "null"),
        outcome("so", "filled", 9, 120.0, 200),
        intent("sc", "close", true, "9"),
        outcome("sc", "filled", 9, 110.0, 200),
        // Still open (no close), a close whose answer is unknown, and a torn last line.
        intent("oo", "open", true, "null"),
        outcome("oo", "filled", 8, 1.0, 100),
        intent("oc", "close", false, "8"),
        outcome("oc", "unknown", 8, 1.5, 100),
        r#"{"t":"outcome","coid":"#.to_string(),
    ]
    .join("\n");
    let c = closed_trades(&text);
    assert_eq!(c.trades, 2);
    assert!((c.realized - 22.0).abs() < 1e-9, "{}", c.realized);
    assert_eq!(c.last_position_id, 9);
    assert_eq!(closed_trades(""), ClosedTrades::default());
}
