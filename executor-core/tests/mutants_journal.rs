//! The journal's records and their replay, pinned by the core's own tests (each test kills
//! mutants that survived `scripts/mutants --area journal`): which intents stay pending, what a
//! restart remembers and forgets, torn lines, the order of intents, and client order ids.

use oracle_executor_core::journal::{
    ACK_MEMORY, INTENT_MEMORY, Op, Record, Replayed, client_order_id, encode_lines, intent_rank,
};
use oracle_executor_core::key::key_of;
use oracle_executor_core::policy::{ActionName, ModelState, StreamKey};
use oracle_ipc::{Action, Timeframe};

fn eurusd() -> StreamKey {
    key_of("EURUSD", Timeframe::M15).unwrap()
}

fn intent(k: &StreamKey, coid: &str, op: Op, bt: i64, ts: i64) -> Record {
    Record::Intent {
        ts,
        coid: coid.into(),
        model: *k,
        op,
        symbol: k.symbol.to_string(),
        buy: true,
        action: ActionName(Action::LongWeak),
        volume: 100_000,
        position_id: None,
        bt,
    }
}

fn outcome(coid: &str, result: &str) -> Record {
    Record::Outcome {
        coid: coid.into(),
        result: result.into(),
        position_id: Some(7),
        price: Some(1.1),
        volume: Some(100_000),
        code: None,
    }
}

fn ack(k: &StreamKey, bt: i64) -> Record {
    Record::Ack {
        model: *k,
        bt,
        line: format!("ACK|{bt}"),
    }
}

fn replay(rs: &[Record]) -> Replayed {
    Replayed::from_bytes(&encode_lines(rs).unwrap())
}

#[test]
fn an_intent_stays_pending_until_an_outcome_other_than_unknown() {
    let k = eurusd();
    let rep = replay(&[
        intent(&k, "filled", Op::Open, 900, 1),
        outcome("filled", "filled"),
        intent(&k, "rejected", Op::Open, 1800, 2),
        outcome("rejected", "rejected"),
        intent(&k, "not-sent", Op::Open, 2700, 3),
        outcome("not-sent", "not_executed"),
        intent(&k, "unknown", Op::Open, 3600, 4),
        outcome("unknown", "unknown"),
        intent(&k, "silent", Op::Close, 4500, 5),
    ]);
    assert_eq!(
        rep.pending.keys().collect::<Vec<_>>(),
        vec!["silent", "unknown"]
    );
    assert_eq!(rep.filled.iter().collect::<Vec<_>>(), vec!["filled"]);
    assert_eq!(rep.intents.len(), 5);
    assert_eq!(
        rep.intents["rejected"],
        intent(&k, "rejected", Op::Open, 1800, 2)
    );
    assert_eq!(rep.bad_lines, 0);
}

#[test]
fn a_restart_remembers_each_models_last_state_its_answers_and_the_risk_anchors() {
    let k = eurusd();
    let state = |a: Action, bt: i64| ModelState {
        target: Some(ActionName(a)),
        last_bt: Some(bt),
        real: None,
        missed: false,
    };
    let rep = replay(&[
        Record::Model {
            model: k,
            state: state(Action::Wait, 900),
        },
        Record::Model {
            model: k,
            state: state(Action::ShortWeak, 1800),
        },
        ack(&k, 1800),
        Record::Risk {
            initial: 100_000.0,
            day_start: 10,
            anchor: 99_000.0,
        },
        Record::Risk {
            initial: 100_000.0,
            day_start: 86_410,
            anchor: 98_000.0,
        },
    ]);
    assert_eq!(rep.models.len(), 1);
    assert_eq!(rep.models[&k], state(Action::ShortWeak, 1800));
    assert_eq!(rep.acks[&(k, 1800)], "ACK|1800");
    assert_eq!(rep.risk, Some((100_000.0, 86_410, 98_000.0)));
}

#[test]
fn torn_and_non_utf8_lines_are_counted_and_empty_lines_skipped() {
    let k = eurusd();
    let mut bytes = encode_lines(&[intent(&k, "a", Op::Open, 900, 1)]).unwrap();
    bytes.extend_from_slice(b"\n   \n");
    bytes.extend_from_slice(b"\xff\xfe not text\n");
    bytes.extend_from_slice(&encode_lines(&[intent(&k, "b", Op::Open, 1800, 2)]).unwrap());
    bytes.extend_from_slice(b"{\"t\":\"outc");
    let rep = Replayed::from_bytes(&bytes);
    assert_eq!(rep.bad_lines, 2);
    assert_eq!(rep.pending.keys().collect::<Vec<_>>(), vec!["a", "b"]);
}

#[test]
fn every_record_reads_back_from_its_own_line_and_a_batch_is_one_line_each() {
    let k = eurusd();
    let rs = [
        intent(&k, "a", Op::Close, 900, 1),
        outcome("a", "filled"),
        ack(&k, 900),
        Record::Risk {
            initial: 1.0,
            day_start: 2,
            anchor: 3.0,
        },
    ];
    for r in &rs {
        let line = r.to_line().unwrap();
        assert!(!line.contains(&b'\n'));
        assert_eq!(
            &Record::from_line(std::str::from_utf8(&line).unwrap()).unwrap(),
            r
        );
    }
    let bytes = encode_lines(&rs).unwrap();
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    assert_eq!(lines.len(), rs.len() + 1, "newline-terminated");
    assert!(lines[rs.len()].is_empty());
    for (line, r) in lines.iter().zip(&rs) {
        assert_eq!(*line, r.to_line().unwrap().as_slice());
    }
    assert_eq!(encode_lines(&[]).unwrap(), Vec::<u8>::new());
}

#[test]
fn intents_are_ordered_by_bar_then_exit_before_entry_then_write_time() {
    let k = eurusd();
    let exit = intent_rank(&intent(&k, "c", Op::Close, 900, 50));
    let entry = intent_rank(&intent(&k, "o", Op::Open, 900, 10));
    let later_entry = intent_rank(&intent(&k, "o2", Op::Open, 900, 11));
    let next_bar = intent_rank(&intent(&k, "n", Op::Close, 1800, 0));
    assert_eq!(exit, (900, 0, 50));
    assert_eq!(entry, (900, 1, 10));
    assert!(exit < entry && entry < later_entry && later_entry < next_bar);
    assert_eq!(intent_rank(&ack(&k, 900)), (i64::MIN, 0, i64::MIN));
}

#[test]
fn the_replay_keeps_per_model_the_latest_answers_and_intents_and_every_pending_intent() {
    let a = eurusd();
    let b = key_of("GBPUSD", Timeframe::H1).unwrap();
    let n = (ACK_MEMORY.max(INTENT_MEMORY) + 4) as i64;
    let mut rs = Vec::new();
    // Model a: n bars, an exit and an entry each, all filled but the very first entry.
    for i in 0..n {
        let bt = i * 900;
        rs.push(intent(&a, &format!("a{i}c"), Op::Close, bt, bt + 1));
        rs.push(intent(&a, &format!("a{i}o"), Op::Open, bt, bt + 2));
        rs.push(ack(&a, bt));
        for c in [format!("a{i}c"), format!("a{i}o")] {
            if c != "a0o" {
                rs.push(outcome(&c, "filled"));
            }
        }
    }
    // Model b: exactly as many as are remembered: nothing of it is forgotten.
    for i in 0..INTENT_MEMORY.max(ACK_MEMORY) as i64 {
        rs.push(intent(&b, &format!("b{i}"), Op::Open, i * 3600, i));
        rs.push(outcome(&format!("b{i}"), "filled"));
        rs.push(ack(&b, i * 3600));
    }
    let rep = replay(&rs);
    let of = |k: &StreamKey| {
        rep.intents
            .values()
            .filter(|r| matches!(r, Record::Intent { model, .. } if model == k))
            .count()
    };
    assert_eq!(of(&a), INTENT_MEMORY + 1, "the latest, and the pending one");
    assert!(rep.intents.contains_key("a0o"));
    assert_eq!(rep.pending.keys().collect::<Vec<_>>(), vec!["a0o"]);
    // The latest INTENT_MEMORY by (bar, exit before entry): the last bars' exits and entries.
    let kept_bars = (INTENT_MEMORY / 2) as i64;
    for i in n - kept_bars..n {
        assert!(rep.intents.contains_key(&format!("a{i}c")), "a{i}c");
        assert!(rep.intents.contains_key(&format!("a{i}o")), "a{i}o");
    }
    assert!(
        !rep.intents
            .contains_key(&format!("a{}o", n - kept_bars - 1))
    );
    assert_eq!(of(&b), INTENT_MEMORY.max(ACK_MEMORY));
    // Filled is kept only for the intents kept.
    assert!(rep.filled.iter().all(|c| rep.intents.contains_key(c)));
    assert_eq!(
        rep.filled.len(),
        INTENT_MEMORY + INTENT_MEMORY.max(ACK_MEMORY)
    );
    // Answers: a's latest ACK_MEMORY bars, all of b's.
    let acks = |k: &StreamKey| {
        let mut v: Vec<i64> = rep
            .acks
            .keys()
            .filter(|(m, _)| m == k)
            .map(|(_, bt)| *bt)
            .collect();
        v.sort_unstable();
        v
    };
    let want: Vec<i64> = (n - ACK_MEMORY as i64..n).map(|i| i * 900).collect();
    assert_eq!(acks(&a), want);
    assert_eq!(acks(&b).len(), INTENT_MEMORY.max(ACK_MEMORY));
}

/// FNV-1a, 64 bits, as specified (offset basis 14695981039346656037, prime 1099511628211).
fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(14_695_981_039_346_656_037, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1_099_511_628_211)
    })
}

#[test]
fn a_long_symbols_client_order_id_keeps_a_prefix_and_the_fnv1a_hash_of_the_whole_name() {
    // The reference hash is FNV-1a: its published test vector.
    assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
    let sym = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let k = key_of(sym, Timeframe::M15).unwrap();
    let id = client_order_id(&k, 1_614_557_700, Op::Close);
    let want = format!("ot-ABCDEFGHIJKL~{:016x}-M15-1614557700-C", fnv1a64(sym));
    assert_eq!(id, want.chars().take(50).collect::<String>());
    assert!(id.len() <= 50);
    // Short enough: the plain id.
    let short = key_of("EURUSD", Timeframe::H1).unwrap();
    assert_eq!(
        client_order_id(&short, 3600, Op::Open),
        "ot-EURUSD-H1-3600-O"
    );
}
