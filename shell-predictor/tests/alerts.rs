//! The predictor tells the alert channels of a model refused at load (`--alerts-config`,
//! docs/alerts.md): once per version of the refused file, for a zip the loader refuses and for a
//! second model of a stream already traded; a good model is no alert.

mod support;

use oracle_alerts::{Alerts, AlertsBuilder, AlertsConfig};
use oracle_predictor::engine::{Predictor, Settings};
use std::path::Path;
use std::sync::Arc;
use support::*;

fn predictor(root: &Path) -> Predictor {
    Predictor::new(
        Settings {
            models_dir: root.join("models"),
            state_dir: root.join("state"),
            trace_dir: None,
            history_extra: 50,
        },
        Arc::new(FakeLoader),
    )
    .expect("predictor")
}

/// Alerts to a webhook nobody listens on (port 9, one try): what is pushed is counted, and
/// `model_refused` is the only kind turned on, so each push counted is one refusal told.
fn counting() -> Alerts {
    AlertsBuilder::new(AlertsConfig {
        webhook_url: Some("https://127.0.0.1:9/hook".into()),
        events: vec![oracle_alerts::EventKind::ModelRefused],
        max_attempts: 1,
        timeout_s: 1,
        ..AlertsConfig::default()
    })
    .start()
    .expect("alerts")
}

#[test]
fn a_model_refused_at_load_is_told_once_per_version_and_a_good_one_is_not() {
    let root = tmpdir("alerts-refused");
    std::fs::create_dir_all(root.join("models")).unwrap();
    std::fs::write(root.join("models/EURUSD_M1.zip"), "EURUSD M1 20").unwrap();
    std::fs::write(root.join("models/GBPUSD_M5.zip"), "not a model").unwrap();
    let mut p = predictor(&root);
    let alerts = counting();
    p.set_alerts(alerts.clone());
    p.scan();
    assert_eq!(p.model_names(), ["EURUSD_M1"]);
    assert_eq!(alerts.stats().pushed, 1, "{:?}", alerts.stats());
    // The same file again: already told.
    p.scan();
    assert_eq!(alerts.stats().pushed, 1);
    // A second model for a stream already traded is refused and told.
    std::fs::write(root.join("models/EURUSD_M1_v2.zip"), "EURUSD M1 30").unwrap();
    p.scan();
    assert_eq!(alerts.stats().pushed, 2);
    assert_eq!(alerts.stats().filtered, 0);
}

#[test]
fn the_alerts_config_names_the_file_the_section_and_the_missing_secret() {
    let root = tmpdir("alerts-config");
    let none = |_: &str| None;
    assert!(!oracle_predictor::alerts_from(None, &none).unwrap().is_on());
    let f = root.join("executor_config.json");
    std::fs::write(&f, r#"{"EURUSD": {"enabled": true}}"#).unwrap();
    let e = oracle_predictor::alerts_from(Some(&f), &none)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("executor_config.json: no `alerts` section"),
        "{e}"
    );
    std::fs::write(&f, r#"{"alerts": {"telegram": true}}"#).unwrap();
    let e = oracle_predictor::alerts_from(Some(&f), &none)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ORACLE_TELEGRAM_BOT_TOKEN"), "{e}");
    std::fs::write(
        &f,
        r#"{"alerts": {"webhook_url": "https://hooks.example.com/x"}}"#,
    )
    .unwrap();
    let a = oracle_predictor::alerts_from(Some(&f), &none).unwrap();
    assert!(a.is_on());
}
