//! A non-USD account over TLS: `oracle-sim --deposit-currency EUR` (held over a weekend, as in
//! `market_hours.rs`) names the account's deposit currency EUR; the live session reads it
//! (`TraderRes.depositAssetId`, `AssetListRes`), records it for the report
//! (`STATE/deposit-currency`), the status names it, and the prop-firm guard moves its equity
//! between account reads by a USD-quoted position's P&L converted to EUR at the conversion
//! symbol's mid (EURUSD: divided by it; `executor-core/src/currency.rs`). Time is a parameter.
//! Needs the default `live` feature: `cargo test -p oracle-executor --test deposit_currency_tls`.
#![cfg(feature = "live")]

mod common;

use std::collections::HashMap;

use common::weekend::*;
use oracle_executor::engine::{Engine, Side};
use oracle_executor::policy::key_of;
use oracle_ipc::Timeframe;
use oracle_sim::BrokerConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_eur_account_converts_a_usd_quoted_positions_pnl_at_the_eurusd_mid_and_names_eur() {
    let s = held_sim_with(
        "eur-account",
        vec![
            eurusd_over_a_weekend(),
            flat_over_a_weekend("US500", 510_000_000),
        ],
        BrokerConfig {
            deposit_currency: "EUR".into(),
            ..BrokerConfig::default()
        },
    )
    .await;
    let (broker, _feed) = common::live_session(&s, &["EURUSD", "US500"]).await;
    let state = common::tmpdir("eur-account-state");
    oracle_executor::live::record_currency(&state, &broker);
    assert_eq!(
        std::fs::read_to_string(state.join(oracle_executor::live::CURRENCY_FILE))
            .expect("STATE/deposit-currency"),
        "EUR\n"
    );
    let cfg = oracle_executor::config::from_value(&serde_json::json!({
        "risk": {"preset": "ftmo-2step"},
        "EURUSD": {"lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05},
        "US500": {"lot_weak": 1.0, "lot_moderate": 2.0, "lot_strong": 3.0}
    }))
    .expect("config");
    let live = Side::new("live", &cfg, broker, None);
    let mut e = Engine::new(cfg, Some(live), None, HashMap::new(), None);
    step_until(&s, t("2024-03-08T21:01:00Z")).await;
    wait_quote_of(&e, "EURUSD").await;
    wait_quote_of(&e, "US500").await;

    // Friday 21:00, open: the US500 model goes long (US500 is quoted in USD).
    let key = key_of("US500", Timeframe::M15).unwrap();
    for bt in ["2024-03-08T20:30:00Z", "2024-03-08T20:45:00Z"] {
        e.on_bar(&key, t(bt), 5100.0, 0.0);
    }
    let fri = t("2024-03-08T21:00:02Z");
    let bt = |s: &str| t(s);
    signal_on(
        &mut e,
        "US500",
        fri,
        Timeframe::M15,
        "WAIT",
        bt("2024-03-08T20:30:00Z"),
    )
    .await;
    let ack = signal_on(
        &mut e,
        "US500",
        fri,
        Timeframe::M15,
        "LONG_WEAK",
        bt("2024-03-08T20:45:00Z"),
    )
    .await;
    assert!(ack.contains("|OK|"), "{ack}");
    assert_eq!(open_positions(&s).await, 1);
    let volume = e.live.as_ref().expect("live").core.policy.models[&key]
        .real
        .as_ref()
        .expect("held")
        .volume;

    // Between account reads the guard moves its equity by the P&L converted at EURUSD's mid.
    let now_ms = fri * 1000 + 1000;
    let (eur_bid, eur_ask) = (1.25000, 1.25010);
    e.core.handle_quote(now_ms, "EURUSD", eur_bid, eur_ask);
    e.core.handle_quote(now_ms, "US500", 5110.00, 5110.50);
    let g1 = e.core.guard_status().expect("guard");
    e.core
        .handle_quote(now_ms + 1000, "US500", 5150.00, 5150.50);
    let g2 = e.core.guard_status().expect("guard");
    assert_eq!(g2.currency.as_deref(), Some("EUR"));
    assert!(g2.approximate.is_empty(), "{:?}", g2.approximate);
    let usd = 40.0 * volume as f64 / 100.0;
    let moved = g2.equity.expect("equity") - g1.equity.expect("equity");
    let mid = (eur_bid + eur_ask) / 2.0;
    assert!(
        (moved - usd / mid).abs() < 1e-6,
        "the equity moved {moved}, {usd} USD is {} EUR",
        usd / mid
    );
    assert!((moved - usd).abs() > 1.0, "converted, not taken as USD");

    // The status names the currency.
    let op =
        oracle_executor::operator::open(&state, &state.join("executor_config.json"), Vec::new())
            .expect("operator");
    let st = oracle_executor::operator::status(&e, &op, fri + 2);
    assert_eq!(
        st.guard.as_ref().and_then(|g| g.currency.as_deref()),
        Some("EUR")
    );
    assert!(st.table().contains("\nACCOUNTS (EUR)\n"), "{}", st.table());
    drop(op);
    let _ = std::fs::remove_dir_all(state);
}
