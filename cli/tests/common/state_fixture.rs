//! A paper state folder written by hand in the executor's formats (`paper-journal.jsonl`,
//! `drift.jsonl`, `executor_config.json`): one EURUSD_M15 round trip and the prop-firm guard's
//! records across a Prague midnight (winter: 2026-01-14T23:00:00Z), a daily-loss halt on the
//! first day, which the guard closed with its `guard_day` record (lowest equity 95 900, between
//! two ledger rows). `oracle report` refuses a line that is not a record, so a typo here fails loudly.

use std::path::Path;

/// 2026-01-13T23:00:00Z: Prague's midnight starting 2026-01-14 (UTC+1).
pub const DAY1_MS: i64 = 1_768_345_200_000;
/// 2026-01-14T23:00:00Z: Prague's midnight starting 2026-01-15.
pub const DAY2_MS: i64 = 1_768_431_600_000;

fn guard(day_ms: i64, anchor: f64, halt: &str) -> String {
    format!(
        "{{\"t\":\"guard\",\"state\":{{\"initial\":100000.0,\"day_start_ms\":{day_ms},\"day_anchor\":{anchor},\
\"last_balance\":{anchor},\"highest_eod_balance\":100000.0,\"best_day_profit\":0.0,\"trading_days\":1,\
\"last_trading_day_ms\":null,\"halted\":{halt}}}}}"
    )
}

fn intent(ts: i64, coid: &str, op: &str, buy: bool, position: &str) -> String {
    format!(
        "{{\"t\":\"intent\",\"ts\":{ts},\"coid\":\"{coid}\",\"model\":{{\"symbol\":\"EURUSD\",\"tf\":\"M15\"}},\
\"op\":\"{op}\",\"symbol\":\"EURUSD\",\"buy\":{buy},\"action\":\"LONG_WEAK\",\"volume\":1000000,\
\"position_id\":{position},\"bt\":{bt}}}",
        bt = ts - 900
    )
}

fn filled(coid: &str, price: f64) -> String {
    format!(
        "{{\"t\":\"outcome\",\"coid\":\"{coid}\",\"result\":\"filled\",\"position_id\":7,\"price\":{price},\
\"volume\":1000000,\"code\":null}}"
    )
}

fn row(bar_time: &str, equity: f64) -> String {
    format!(
        "{{\"bar_time\":\"{bar_time}\",\"model\":\"EURUSD_M15\",\"virtual_pos\":\"FLAT\",\"virtual_pnl\":0.0,\
\"real_pos\":\"-\",\"real_pnl\":0.0,\"paper_pos\":\"FLAT\",\"paper_pnl\":0.0,\"equity\":{equity},\
\"paper_equity\":{equity},\"ack\":\"HOLD\"}}"
    )
}

/// Writes the folder into `dir` (created): 2 fills (one closed trade, +10.00), guard days
/// 2026-01-14 (anchor 100000, halted at 96100, closed: floor 95000, lowest 95900, end balance
/// 96500) and 2026-01-15 (anchor 96500, open; `oracle halt --flatten` by `unix:alice<ops>` at
/// 00:00Z; `oracle disable EURUSD` at 01:00Z in the operator journal), ledger equity
/// 99000, 96500 | 96000, 96800; `executor_config.json` with a 5% daily loss.
pub fn write(dir: &Path) {
    std::fs::create_dir_all(dir).expect("state folder");
    let halt = format!(
        "{{\"limit\":\"DailyLoss\",\"at_ms\":{},\"equity\":96100.0}}",
        1_768_420_800_000_i64
    );
    let journal = [
        guard(DAY1_MS, 100_000.0, "null"),
        intent(1_768_384_800, "P-1-O", "open", true, "null"),
        filled("P-1-O", 1.1),
        intent(1_768_388_400, "P-2-C", "close", false, "7"),
        filled("P-2-C", 1.101),
        guard(DAY1_MS, 100_000.0, &halt),
        format!(
            "{{\"t\":\"guard_day\",\"day_start_ms\":{DAY1_MS},\"anchor\":100000.0,\"floor\":95000.0,\
\"low_equity\":95900.0,\"eod_balance\":96500.0}}"
        ),
        guard(DAY2_MS, 96_500.0, "null"),
        format!(
            "{{\"t\":\"operator\",\"ts_ms\":{},\"origin\":\"unix:alice<ops>\",\"command\":{{\"cmd\":\"halt\",\"flatten\":true}},\
\"ok\":true,\"result\":\"halted; 0 positions to close\"}}",
            DAY2_MS + 3_600_000
        ),
    ];
    std::fs::write(dir.join("paper-journal.jsonl"), journal.join("\n") + "\n").expect("journal");
    let ledger = [
        row("2026-01-14T10:00:00Z", 99_000.0),
        row("2026-01-14T22:45:00Z", 96_500.0),
        row("2026-01-14T23:15:00Z", 96_000.0),
        row("2026-01-15T12:00:00Z", 96_800.0),
    ];
    std::fs::write(dir.join("drift.jsonl"), ledger.join("\n") + "\n").expect("ledger");
    let operator = [
        r#"{"ts":1768435200,"origin":"unix:alice","request":{"cmd":"status"},"ok":true,"result":"status"}"#,
        r#"{"ts":1768438800,"origin":"unix:alice","request":{"cmd":"disable","symbol":"EURUSD"},"ok":true,"result":"EURUSD disabled"}"#,
    ];
    std::fs::write(
        dir.join("operator-journal.jsonl"),
        operator.join("\n") + "\n",
    )
    .expect("operator journal");
    std::fs::write(
        dir.join("executor_config.json"),
        r#"{"EURUSD": {"enabled": true, "lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5}, "risk": {"daily_loss_pct": 5}}"#,
    )
    .expect("config");
}
