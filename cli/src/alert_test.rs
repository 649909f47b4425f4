//! `oracle alert-test`: one test message to each configured alert channel (`oracle-alerts`,
//! `docs/alerts.md`), so a deployment knows its alerts arrive before it needs them.
//!
//! The channels: the `alerts` section of `--config` (`executor_config.json`); without it,
//! Telegram when the secrets file holds a bot token, and `--webhook`. The bot token and chat id
//! come from the secrets file (`--secrets`, by the one rule of `oracle_secrets`). No
//! secret is printed: a failure names the channel by its host and its text is redacted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use oracle_alerts::{AlertsBuilder, AlertsConfig, Event, TelegramSecrets};
use oracle_secrets::{self as secrets, SecretsFile};

/// `oracle alert-test`.
#[derive(clap::Args, Debug)]
pub struct AlertTestArgs {
    /// The secrets file (ORACLE_TELEGRAM_BOT_TOKEN, ORACLE_TELEGRAM_CHAT_ID).
    #[arg(long, value_name = "FILE", default_value = secrets::DEFAULT_SECRETS)]
    pub secrets: PathBuf,
    /// A configuration file whose `alerts` section names the channels (executor_config.json).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A webhook URL (https) to test besides (or instead of) the configured one.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Telegram's Bot API base URL (https) [default: the section's, else https://api.telegram.org].
    #[arg(long, value_name = "URL")]
    pub telegram_api: Option<String>,
    /// Trust exactly this CA (PEM) instead of the public roots (a relay with its own CA).
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
}

fn config_of(a: &AlertTestArgs, file: &SecretsFile) -> Result<AlertsConfig, String> {
    let mut c = match &a.config {
        Some(path) => {
            let shown = path.display();
            let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{shown}: not JSON: {e}"))?;
            let section = v
                .get("alerts")
                .ok_or_else(|| format!("{shown}: no `alerts` section (docs/alerts.md)"))?;
            serde_json::from_value::<AlertsConfig>(section.clone())
                .map_err(|e| format!("{shown}: alerts: {e}"))?
        }
        None => AlertsConfig {
            telegram: file.get(secrets::TELEGRAM_BOT_TOKEN_KEY).is_some(),
            ..AlertsConfig::default()
        },
    };
    if let Some(u) = &a.webhook {
        c.webhook_url = Some(u.clone());
    }
    if let Some(u) = &a.telegram_api {
        c.telegram_api = u.clone();
    }
    c.validate()?;
    if !c.any_channel() {
        return Err(format!(
            "no alert channel: set {} and {} in {} (or \"telegram\": true in the alerts section), or give --webhook URL",
            secrets::TELEGRAM_BOT_TOKEN_KEY,
            secrets::TELEGRAM_CHAT_ID_KEY,
            file.path.display()
        ));
    }
    Ok(c)
}

fn run(a: &AlertTestArgs) -> Result<String, String> {
    let file = SecretsFile::read(&a.secrets)?;
    let c = config_of(a, &file)?;
    let channels = usize::from(c.telegram) + usize::from(c.webhook_url.is_some());
    // A test answers within a minute or so: two tries, a server's wait up to 30 s between them.
    let c = AlertsConfig {
        max_attempts: c.max_attempts.min(2),
        max_backoff_s: c.max_backoff_s.min(30),
        backoff_s: c.backoff_s.min(c.max_backoff_s.min(30)),
        ..c
    };
    let grace = Duration::from_secs(2 * c.timeout_s + c.max_backoff_s + 5);
    let mut b = AlertsBuilder::new(c.clone());
    if c.telegram {
        let t = TelegramSecrets::from_lookup(&|k| file.get(k).map(str::to_string))
            .map_err(|e| format!("{}: {e}", file.path.display()))?;
        b = b.telegram(t);
    }
    for k in secrets::CTRADER_KEYS {
        if let Some(v) = file.ctrader(k) {
            b = b.redact(v);
        }
    }
    if let Some(v) = file.get(secrets::IPC_TOKEN_KEY) {
        b = b.redact(v);
    }
    if let Some(ca) = &a.ca {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        b = b.ca_pem(&pem);
    }
    let alerts = b.start()?;
    alerts.push(Event::Test {
        from: "oracle alert-test".into(),
    });
    let stats = alerts.close(grace);
    let failures = alerts.recent_failures();
    if stats.sent as usize == channels && failures.is_empty() {
        Ok(format!(
            "test message sent to {channels} of {channels} channels"
        ))
    } else {
        let mut why = format!("test message sent to {} of {channels} channels", stats.sent);
        for f in failures {
            why.push_str(&format!("\n  {f}"));
        }
        if stats.pending > 0 || (stats.sent + stats.failed) < channels as u64 {
            why.push_str(&format!("\n  no answer within {} s", grace.as_secs()));
        }
        Err(why)
    }
}

/// Runs `oracle alert-test`: 0 when every channel took the message.
pub fn run_alert_test(a: &AlertTestArgs) -> ExitCode {
    match run(a) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oracle alert-test: {e}");
            ExitCode::FAILURE
        }
    }
}
