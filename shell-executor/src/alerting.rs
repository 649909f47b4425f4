//! The executor's alerts and metrics hooks ([`Telemetry`]): what the running process tells the
//! operator (`oracle-alerts`: Telegram, a webhook; `docs/alerts.md`) and what it counts
//! (`oracle-metrics`; `docs/metrics.md`).
//!
//! - **Start**: [`Telemetry::start`] reads the `alerts` and `metrics` sections of
//!   `executor_config.json` ([`sections`]) and the Telegram bot from the secrets file, starts the
//!   alert sender (its own thread, a bounded queue) and the loopback metrics endpoint. Every
//!   broker secret and the IPC token are handed to the redactor.
//! - **Never on the order path**: a push is a non-blocking move into the bounded queue
//!   ([`oracle_alerts::Alerts::push`]); a metric is an atomic add. The engine pushes an
//!   "order refused" *after* the batch is answered.
//! - **When** (time a parameter, UTC seconds) is the core's (`oracle_executor_core::alerting`,
//!   `AlertWatches`): the broker down for more than `alerts.disconnect_after_s` (once per
//!   outage, then "back after N s": [`Telemetry::tick`] with the wall clock), the daily summary
//!   at each midnight Europe/Prague (the engine's clock: a replay's virtual time), a limit's
//!   50%/80% crossing ([`Telemetry::limit`]), a halt newly in force; this module pushes what it
//!   says and keeps the metrics.
//!
//! Where each hook sits: `docs/alerts.md` "Wiring".

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oracle_alerts::{Alerts, AlertsBuilder, AlertsConfig, Event, TelegramSecrets};
use oracle_executor_core::alerting::{AlertWatches, Figures, limits, refusal};
use oracle_executor_core::exec::ExecutorCore;
use oracle_executor_core::operator::GuardStatus;
use oracle_executor_core::side::SideCore;
use oracle_ipc::Signal;
use serde_json::Value;

use oracle_metrics::{Metrics, MetricsConfig};
use oracle_secrets::SecretsFile;

/// The process name alerts carry.
pub const PROCESS: &str = "oracle-executor";

/// The keys of `executor_config.json` that are sections of the shell, not symbols (the core
/// skips them too).
pub const SECTIONS: [&str; 2] = oracle_executor_core::config::SHELL_SECTIONS;

/// An environment variable naming a PEM file whose certificates the alert sender trusts instead
/// of the public roots (a relay with a private CA, a test server).
pub const CA_ENV: &str = "ORACLE_ALERTS_CA";

/// How long the stop waits for the queue to drain (the stop message included).
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The `alerts` (absent: none) and `metrics` sections of a parsed `executor_config.json`; the
/// error names the section and the field.
pub fn sections_of(doc: &Value) -> Result<(Option<AlertsConfig>, MetricsConfig), String> {
    let alerts = match doc.get("alerts") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let c = serde_json::from_value::<AlertsConfig>(v.clone())
                .map_err(|e| format!("alerts: {e}"))?;
            c.validate()?;
            Some(c)
        }
    };
    let metrics = match doc.get("metrics") {
        None | Some(Value::Null) => MetricsConfig::default(),
        Some(v) => serde_json::from_value::<MetricsConfig>(v.clone())
            .map_err(|e| format!("metrics: {e}"))?,
    };
    metrics.listen_addr()?;
    Ok((alerts, metrics))
}

/// [`sections_of`] the file at `path` (an absent file has neither); errors name the file.
pub fn sections(path: &Path) -> Result<(Option<AlertsConfig>, MetricsConfig), String> {
    let shown = path.display();
    let doc = match std::fs::read(path) {
        Ok(b) => serde_json::from_slice::<Value>(&b)
            .map_err(|e| format!("{shown}: not valid JSON: {e}"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
        Err(e) => return Err(format!("{shown}: {e}")),
    };
    sections_of(&doc).map_err(|e| format!("{shown}: {e}"))
}

/// Builds the alert sender of `cfg` (none: off) with the secrets file's Telegram bot; every
/// broker secret and the IPC token are redacted from what it sends. `ca_pem`: trust exactly
/// these certificates (see [`CA_ENV`]).
pub fn alerts_from(
    cfg: Option<AlertsConfig>,
    secrets: Option<&SecretsFile>,
    ca_pem: Option<&[u8]>,
) -> Result<Alerts, String> {
    let Some(cfg) = cfg else {
        return Ok(Alerts::off());
    };
    let lookup = |k: &str| -> Option<String> {
        match secrets {
            Some(f) => f.get(k).map(str::to_string),
            None => std::env::var(k).ok(),
        }
    };
    let mut b = AlertsBuilder::new(cfg.clone());
    if cfg.telegram {
        b = b.telegram(TelegramSecrets::from_lookup(&lookup)?);
    }
    if let Some(pem) = ca_pem {
        b = b.ca_pem(pem);
    }
    for name in oracle_secrets::CTRADER_KEYS {
        for key in [format!("CTRADER_{name}"), format!("ORACLE_CTRADER_{name}")] {
            if let Some(v) = lookup(&key) {
                b = b.redact(&v);
            }
        }
    }
    if let Some(v) = lookup(oracle_secrets::IPC_TOKEN_KEY) {
        b = b.redact(&v);
    }
    b.start()
}

/// The process's alerts and metrics, shared (`Arc`) by the engine, the live broker's event task,
/// the metrics endpoint and the ticker.
pub struct Telemetry {
    /// The counters and gauges (`docs/metrics.md`).
    pub metrics: Arc<Metrics>,
    alerts: Alerts,
    watches: Mutex<AlertWatches>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("alerts", &self.alerts)
            .finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::off()
    }
}

impl Telemetry {
    /// Metrics only; no alert is sent.
    pub fn off() -> Self {
        Telemetry::new(Alerts::off(), &AlertsConfig::default())
    }

    /// Over a started alert sender whose settings are `cfg` (thresholds, disconnect delay).
    pub fn new(alerts: Alerts, cfg: &AlertsConfig) -> Self {
        Telemetry {
            metrics: Arc::new(Metrics::new()),
            alerts,
            watches: Mutex::new(AlertWatches::new(cfg)),
        }
    }

    /// From the configuration file's sections and the secrets file (the executor's start): the
    /// error names the section, the field or the secret at fault.
    pub fn start(
        config: &Path,
        secrets: Option<&SecretsFile>,
    ) -> anyhow::Result<(Arc<Telemetry>, MetricsConfig)> {
        let (alerts_cfg, metrics_cfg) = sections(config).map_err(anyhow::Error::msg)?;
        let ca = match std::env::var_os(CA_ENV) {
            Some(p) => Some(
                std::fs::read(&p)
                    .map_err(|e| anyhow::anyhow!("{CA_ENV}={}: {e}", Path::new(&p).display()))?,
            ),
            None => None,
        };
        let cfg = alerts_cfg.clone().unwrap_or_default();
        let alerts = alerts_from(alerts_cfg, secrets, ca.as_deref()).map_err(anyhow::Error::msg)?;
        Ok((Arc::new(Telemetry::new(alerts, &cfg)), metrics_cfg))
    }

    fn watches(&self) -> MutexGuard<'_, AlertWatches> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The alert sender (its counters: tests, `oracle status`).
    pub fn alerts(&self) -> &Alerts {
        &self.alerts
    }

    /// Pushes `event` (a move into the bounded queue; never waits).
    pub fn push(&self, event: Event) {
        self.alerts.push(event);
    }

    /// The process is up: `detail` says how (`live, account 42, 20 models`).
    pub fn started(&self, detail: &str) {
        self.push(Event::Started {
            process: PROCESS.into(),
            detail: detail.into(),
        });
    }

    /// The process is stopping because of `reason`: the stop message is pushed and the queue
    /// drained (at most `grace`).
    pub fn stopping(&self, reason: &str, grace: Duration) {
        self.push(Event::Stopping {
            process: PROCESS.into(),
            reason: reason.into(),
        });
        self.alerts.close(grace);
    }

    /// The broker refused the application's or the account's authentication, or a refresh
    /// failed for good: the alert, then the stop (the process exits after this).
    pub fn auth_failed_for_good(&self, what: &str, grace: Duration) {
        self.push(Event::AuthFailed { what: what.into() });
        self.stopping(
            &format!("authentication failed for good (exit {})", EXIT_AUTH),
            grace,
        );
    }

    /// Trading halted (the guard, `oracle halt`).
    pub fn halted(&self, reason: &str, flattened: bool) {
        self.push(Event::Halted {
            reason: reason.into(),
            flattened,
        });
    }

    /// A limit's used share now (percent) and what is left: the gauge, and an alert when a
    /// threshold is crossed upwards (once, re-armed 5 points below it).
    pub fn limit(&self, limit: &str, used_pct: f64, left: f64) {
        self.metrics.limit_used(limit, used_pct);
        let crossed = self.watches().limit(limit, used_pct, left);
        if let Some(e) = crossed {
            self.push(e);
        }
    }

    /// The answering side's guard after its orders were answered: the account into the gauges,
    /// each limit's used share (50%/80% crossings), and a halt newly in force (told once; a
    /// later halt after a resume is told again).
    pub fn guard(&self, g: &GuardStatus) {
        if let (Some(balance), Some(equity)) = (g.balance, g.equity) {
            self.metrics.account(balance, equity);
        }
        self.metrics.positions(g.open_positions);
        for (limit, used_pct, _) in limits(g) {
            self.metrics.limit_used(limit, used_pct);
        }
        let told = self.watches().guard(g);
        for e in told {
            self.push(e);
        }
    }

    /// The broker session was lost at `now` (UTC seconds).
    pub fn broker_down(&self, now: i64) {
        self.metrics.broker_lost();
        self.watches().disconnected(now);
    }

    /// The broker session is back at `now`: "back after N s" when the loss was alerted.
    pub fn broker_up(&self, now: i64) {
        let back = self.watches().connected(now);
        if let Some(e) = back {
            self.push(e);
        }
    }

    /// An answer the engine gave (`line`) for `model`: a `FAIL` ACK or an `ERR` is a refusal,
    /// counted by reason and told (`order refused: EURUSD_M1 SHORT_WEAK EURUSD: SPREAD`). No
    /// allocation unless it is one.
    pub fn answered(&self, model: &dyn std::fmt::Display, line: &str) {
        let Some((order, reason)) = refusal(line) else {
            return;
        };
        self.metrics.refused(reason);
        self.push(Event::OrderRefused {
            model: model.to_string(),
            order,
            reason: reason.into(),
        });
    }

    /// The timers, once a second: the disconnect alert at `wall` (UTC seconds), the daily
    /// summary at `clock` (the engine's clock, UTC seconds).
    pub fn tick(&self, wall: i64, clock: i64) {
        for e in self.due(wall, clock) {
            self.push(e);
        }
    }

    /// The events [`Telemetry::tick`] sends at `wall` and `clock` (the core's decision over
    /// the metrics' figures).
    fn due(&self, wall: i64, clock: i64) -> Vec<Event> {
        let (balance, equity) = self.metrics.last_account();
        let f = Figures {
            balance,
            equity,
            orders: self.metrics.orders_total(),
            refused: self.metrics.refusals_total(),
            positions: self.metrics.last_positions(),
        };
        self.watches().due(wall, clock, f)
    }

    /// Runs [`Telemetry::tick`] every second on Tokio (the wall clock, and `clock`) until the
    /// process ends.
    pub fn spawn_ticker(self: &Arc<Self>, clock: crate::shell::Clock) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                me.tick(wall_s(), clock());
            }
        });
    }
}

/// The live session's events (its event task): a loss, a reconnect, a refresh, an
/// authentication refused for good (the alert, then the stop with [`STOP_GRACE`]).
#[cfg(feature = "live")]
impl oracle_executor_broker::live::SessionEvents for Telemetry {
    fn session_up(&self, now: i64) {
        self.broker_up(now);
    }
    fn session_lost(&self, now: i64) {
        self.broker_down(now);
    }
    fn auth_refused(&self, why: &str) {
        self.auth_failed_for_good(why, STOP_GRACE);
    }
    fn tokens_refreshed(&self, n: u64) {
        self.metrics.tokens_refreshed(n);
    }
}

/// After a batch was answered: each refusal counted and told, the answering side's account and
/// positions into the gauges (the engine's hook, after the ACKs are built).
pub fn after_batch<L, P>(
    t: &Telemetry,
    core: &ExecutorCore<L, P>,
    signals: &[Signal<'_>],
    answers: &[crate::engine::SignalAnswer],
) where
    L: AsRef<SideCore> + AsMut<SideCore>,
    P: AsRef<SideCore> + AsMut<SideCore>,
{
    for (s, a) in signals.iter().zip(answers) {
        if a.duplicate {
            continue;
        }
        t.answered(&Model(s.symbol, s.tf), &a.line);
    }
    if let Some(side) = core.answering() {
        if let Some(acc) = side.last_account() {
            t.metrics.account(acc.balance, acc.equity);
        }
        let held = side
            .policy
            .models
            .values()
            .filter(|m| m.real.is_some())
            .count();
        t.metrics.positions(held);
    }
}

/// A model's name (`EURUSD_M1`) for an alert, made only when one is sent.
struct Model<'a>(&'a str, Option<oracle_ipc::Timeframe>);

impl std::fmt::Display for Model<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(tf) => write!(f, "{}_{}", self.0, tf.as_str()),
            None => f.write_str(self.0),
        }
    }
}

/// `1 stream`, `20 streams` (the start message's detail).
pub fn streams(n: usize) -> String {
    if n == 1 {
        "1 stream".to_string()
    } else {
        format!("{n} streams")
    }
}

/// The exit status of an authentication failed for good (`live::EXIT_AUTH_STOP`).
const EXIT_AUTH: u8 = 78;

/// The wall clock, UTC seconds.
pub fn wall_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The stop of a run that ended with `r`: the stop message (the error's first line, redacted by
/// the sender) and the drain.
pub fn stopped(t: &Telemetry, r: &anyhow::Result<()>) {
    let reason = match r {
        Ok(()) => "shutdown requested (signal)".to_string(),
        Err(e) => {
            #[cfg(feature = "live")]
            if let Some(a) = e.downcast_ref::<crate::live::AuthStop>() {
                t.push(Event::AuthFailed { what: a.0.clone() });
            }
            format!("error: {e:#}")
        }
    };
    t.stopping(&reason, STOP_GRACE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_parse_refuse_a_non_loopback_endpoint_and_name_the_field() {
        let doc = serde_json::json!({
            "EURUSD": {"enabled": true},
            "alerts": {"webhook_url": "https://hooks.example.com/x", "disconnect_after_s": 30},
            "metrics": {"listen": "127.0.0.1:9464"}
        });
        let (a, m) = sections_of(&doc).unwrap();
        assert_eq!(a.unwrap().disconnect_after_s, 30);
        assert_eq!(m.listen.as_deref(), Some("127.0.0.1:9464"));
        let (a, m) = sections_of(&serde_json::json!({"EURUSD": {}})).unwrap();
        assert!(a.is_none() && m.listen.is_none());
        let e =
            sections_of(&serde_json::json!({"metrics": {"listen": "0.0.0.0:9464"}})).unwrap_err();
        assert!(
            e.starts_with("metrics.listen: 0.0.0.0:9464 is not a loopback"),
            "{e}"
        );
        let e = sections_of(&serde_json::json!({"alerts": {"webhook": "x"}})).unwrap_err();
        assert!(e.starts_with("alerts: ") && e.contains("webhook"), "{e}");
        let e =
            sections_of(&serde_json::json!({"alerts": {"webhook_url": "http://h/k"}})).unwrap_err();
        assert!(e.starts_with("alerts.webhook_url"), "{e}");
    }

    #[test]
    fn telegram_on_without_its_secrets_is_refused_naming_the_key() {
        let cfg = AlertsConfig {
            telegram: true,
            ..AlertsConfig::default()
        };
        let f = SecretsFile::default();
        let e = alerts_from(Some(cfg), Some(&f), None).unwrap_err();
        assert!(e.contains("ORACLE_TELEGRAM_BOT_TOKEN"), "{e}");
        assert!(!alerts_from(None, Some(&f), None).unwrap().is_on());
    }

    #[test]
    fn a_fail_ack_or_an_err_counts_as_a_refusal_by_reason_and_an_ok_does_not() {
        let t = Telemetry::off();
        t.answered(
            &"AAPL_M1",
            "ACK|AAPL|SHORT_WEAK|FAIL|BROKER_NOT_ENOUGH_MONEY|TF:M1|BT:2026-12-04T10:00:00Z",
        );
        t.answered(&"EURUSD_M1", "ACK|EURUSD|LONG_WEAK|OK|T:12|P:1.1|TF:M1");
        t.answered(&"EURUSD_M1", "ACK|EURUSD|WAIT|HOLD|TF:M1");
        t.answered(&"XAUUSD_M1", "ERR|UNKNOWN_SYMBOL|XAUUSD");
        assert_eq!(t.metrics.refusals_total(), 2);
        let text = t.metrics.render();
        assert!(text.contains("oracle_refusals_total{reason=\"BROKER_NOT_ENOUGH_MONEY\"} 1"));
        assert!(text.contains("oracle_refusals_total{reason=\"UNKNOWN_SYMBOL\"} 1"));
    }

    fn status(daily_used: f64, halted: Option<&str>, open: usize) -> GuardStatus {
        use oracle_executor_core::operator::HaltStatus;
        use oracle_executor_core::propfirm::Headroom;
        let room = |used: f64| Headroom {
            floor: 95_000.0,
            money: 5_000.0 * (1.0 - used),
            pct_of_initial: 5.0 * (1.0 - used),
            share_used: used,
        };
        GuardStatus {
            side: "live".into(),
            preset: Some("ftmo-2step".into()),
            halted: halted.map(|r| HaltStatus {
                reason: r.into(),
                since_ms: 0,
                by: "guard".into(),
                ends_ms: Some(1),
            }),
            balance: Some(100_000.0),
            equity: Some(100_000.0 - 5_000.0 * daily_used),
            daily: Some(room(daily_used)),
            max_loss: Some(room(daily_used / 2.0)),
            act_at_share: Some(0.8),
            next_day_start_ms: None,
            trading_days: None,
            min_trading_days: None,
            best_day_share: None,
            best_day_max_share: None,
            open_positions: open,
            currency: None,
            approximate: Vec::new(),
        }
    }

    /// A telemetry whose alerts go nowhere but are counted (a webhook on a closed port: each
    /// event pushed is counted as `pushed`, none filtered).
    fn counting() -> Telemetry {
        let cfg = AlertsConfig {
            webhook_url: Some("https://127.0.0.1:9/hook".into()),
            max_attempts: 1,
            timeout_s: 1,
            ..AlertsConfig::default()
        };
        let alerts = AlertsBuilder::new(cfg.clone()).start().unwrap();
        Telemetry::new(alerts, &cfg)
    }

    #[cfg(feature = "live")]
    #[test]
    fn a_start_the_broker_refuses_is_told_as_an_authentication_failure_then_the_stop() {
        let t = counting();
        let r: anyhow::Result<()> =
            Err(crate::live::AuthStop("CH_CLIENT_AUTH_FAILURE".into()).into());
        stopped(&t, &r);
        // AuthFailed and Stopping; the sender closed after them.
        let st = t.alerts().stats();
        assert_eq!((st.pushed, st.filtered), (2, 0), "{st:?}");
        let t = counting();
        stopped(&t, &Ok(()));
        assert_eq!(t.alerts().stats().pushed, 1, "the stop only");
    }

    #[test]
    fn the_guards_crossings_and_its_halt_are_each_told_once() {
        let t = counting();
        t.guard(&status(0.3, None, 2));
        assert_eq!(t.alerts().stats().pushed, 0, "30% crosses nothing");
        t.guard(&status(0.55, None, 2));
        assert_eq!(t.alerts().stats().pushed, 1, "50% crossed");
        t.guard(&status(0.6, None, 2));
        assert_eq!(t.alerts().stats().pushed, 1, "once per crossing");
        t.guard(&status(0.81, Some("HALTED_DAILY_LOSS"), 0));
        // 80% crossed, and the halt.
        assert_eq!(t.alerts().stats().pushed, 3);
        t.guard(&status(0.82, Some("HALTED_DAILY_LOSS"), 0));
        assert_eq!(t.alerts().stats().pushed, 3, "a halt in force is told once");
        assert_eq!(t.watches().day_loss_used(), Some(82.0));
        let text = t.metrics.render();
        assert!(
            text.contains("oracle_limit_used_percent{limit=\"daily loss\"} 82.0"),
            "{text}"
        );
        assert!(text.contains("oracle_open_positions 0"), "{text}");
        // Resumed, then halted again: told again.
        t.guard(&status(0.0, None, 0));
        t.guard(&status(0.0, Some("HALTED_OPERATOR"), 0));
        assert_eq!(t.alerts().stats().pushed, 4);
    }

    #[test]
    fn a_limit_crossing_sets_the_gauge_and_keeps_the_days_highest_share() {
        let t = Telemetry::off();
        t.limit("daily loss", 55.0, 2_250.0);
        t.limit("daily loss", 30.0, 3_500.0);
        assert_eq!(t.watches().day_loss_used(), Some(55.0));
        assert!(
            t.metrics
                .render()
                .contains("oracle_limit_used_percent{limit=\"daily loss\"} 30.0")
        );
    }
}
