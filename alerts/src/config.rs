//! The `alerts` section of a configuration file, and the two secrets Telegram needs.

use serde::{Deserialize, Serialize};

use crate::event::EventKind;

/// Telegram's Bot API.
pub const DEFAULT_TELEGRAM_API: &str = "https://api.telegram.org";

/// The secrets file's keys of the Telegram bot token (`@BotFather`'s `<digits>:<key>`) and chat
/// id (a number, or `@channel`): `oracle-secrets`' (one rule for the secrets file).
pub use oracle_secrets::{TELEGRAM_BOT_TOKEN_KEY, TELEGRAM_CHAT_ID_KEY};

/// The `alerts` section. Every field has a default; an unknown field is refused (a typo would
/// silently turn an alert off).
///
/// ```json
/// "alerts": {
///   "telegram": true,
///   "webhook_url": "https://hooks.example.com/oracle",
///   "events": ["halt", "headroom", "auth", "disconnect", "order_refused",
///              "model_refused", "process", "daily_summary"],
///   "headroom_thresholds_pct": [50, 80],
///   "disconnect_after_s": 60
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Send to Telegram (the bot token and chat id come from the secrets file).
    pub telegram: bool,
    /// The Bot API's base URL (`https://` only).
    pub telegram_api: String,
    /// A URL that receives each alert as a JSON POST (`https://` only). Its path is treated as
    /// a secret (Slack- and Discord-style URLs carry a key in it): logs show only its host.
    pub webhook_url: Option<String>,
    /// The kinds of event sent (all by default). `oracle alert-test`'s message is always sent.
    pub events: Vec<EventKind>,
    /// Used shares of a limit (percent, ascending) whose upward crossing is an alert.
    pub headroom_thresholds_pct: Vec<u8>,
    /// A broker connection down longer than this many seconds is an alert.
    pub disconnect_after_s: u64,
    /// Alerts waiting to be sent at most; a full queue drops its oldest (and says so).
    pub queue_capacity: usize,
    /// Tries per alert and channel (the first included).
    pub max_attempts: u32,
    /// The first wait before a retry, seconds; it doubles up to `max_backoff_s`.
    pub backoff_s: u64,
    /// The longest wait between tries, seconds (a `retry_after` beyond it gives the alert up).
    pub max_backoff_s: u64,
    /// One request's time limit, seconds.
    pub timeout_s: u64,
    /// Put in front of every message (`[ftmo-1]`), to tell deployments apart.
    pub label: Option<String>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            telegram: false,
            telegram_api: DEFAULT_TELEGRAM_API.to_string(),
            webhook_url: None,
            events: EventKind::ALL.to_vec(),
            headroom_thresholds_pct: vec![50, 80],
            disconnect_after_s: 60,
            queue_capacity: 64,
            max_attempts: 5,
            backoff_s: 2,
            max_backoff_s: 300,
            timeout_s: 10,
            label: None,
        }
    }
}

fn https_url(field: &str, url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(format!(
            "alerts.{field}: must start with https:// (got {})",
            shown_url(url)
        ));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("alerts.{field}: no host after https://"));
    }
    Ok(())
}

/// A URL as logs and errors show it: scheme and host only (its path may hold a key).
pub fn shown_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}/…")
        }
        None => "a text that is not a URL".to_string(),
    }
}

impl AlertsConfig {
    /// Whether any channel is on.
    pub fn any_channel(&self) -> bool {
        self.telegram || self.webhook_url.is_some()
    }

    /// Whether events of `kind` are sent.
    pub fn sends(&self, kind: EventKind) -> bool {
        kind == EventKind::Test || self.events.contains(&kind)
    }

    /// Checks the values; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.telegram {
            https_url("telegram_api", &self.telegram_api)?;
        }
        if let Some(u) = &self.webhook_url {
            https_url("webhook_url", u)?;
        }
        let t = &self.headroom_thresholds_pct;
        if t.iter().any(|&p| p == 0 || p > 100) || t.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "alerts.headroom_thresholds_pct: {t:?} must be ascending percents from 1 to 100"
            ));
        }
        if !(1..=10_000).contains(&self.queue_capacity) {
            return Err(format!(
                "alerts.queue_capacity: {} must be from 1 to 10000",
                self.queue_capacity
            ));
        }
        if !(1..=20).contains(&self.max_attempts) {
            return Err(format!(
                "alerts.max_attempts: {} must be from 1 to 20",
                self.max_attempts
            ));
        }
        if self.backoff_s > self.max_backoff_s {
            return Err(format!(
                "alerts.backoff_s: {} is above alerts.max_backoff_s ({})",
                self.backoff_s, self.max_backoff_s
            ));
        }
        if !(1..=120).contains(&self.timeout_s) {
            return Err(format!(
                "alerts.timeout_s: {} must be from 1 to 120",
                self.timeout_s
            ));
        }
        Ok(())
    }
}

/// The Telegram bot token and chat id. `Debug` shows neither.
#[derive(Clone)]
pub struct TelegramSecrets {
    /// `@BotFather`'s token.
    pub bot_token: String,
    /// The chat (a number, or `@channel`).
    pub chat_id: String,
}

impl std::fmt::Debug for TelegramSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSecrets").finish_non_exhaustive()
    }
}

impl TelegramSecrets {
    /// Both values from a lookup (the secrets file's [`TELEGRAM_BOT_TOKEN_KEY`] and
    /// [`TELEGRAM_CHAT_ID_KEY`]); the error names the missing key or the malformed one, never a
    /// value.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let need = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("alerts.telegram is on but {k} is not set"))
        };
        let bot_token = need(TELEGRAM_BOT_TOKEN_KEY)?;
        let chat_id = need(TELEGRAM_CHAT_ID_KEY)?;
        let shaped = bot_token.split_once(':').is_some_and(|(id, key)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !shaped {
            return Err(format!(
                "{TELEGRAM_BOT_TOKEN_KEY} is not a bot token (<digits>:<key>, from @BotFather)"
            ));
        }
        let chat_ok = chat_id
            .strip_prefix('-')
            .unwrap_or(&chat_id)
            .bytes()
            .all(|b| b.is_ascii_digit())
            || chat_id.starts_with('@') && chat_id.len() > 1;
        if !chat_ok {
            return Err(format!(
                "{TELEGRAM_CHAT_ID_KEY} is not a chat id (a number such as -1001234567890, or @channel)"
            ));
        }
        Ok(TelegramSecrets { bot_token, chat_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_parses_with_defaults_and_refuses_unknown_fields_and_bad_values() {
        let c: AlertsConfig = serde_json::from_str(r#"{"telegram": true}"#).unwrap();
        assert!(c.telegram && c.validate().is_ok());
        assert_eq!(c.headroom_thresholds_pct, vec![50, 80]);
        assert_eq!(c.disconnect_after_s, 60);
        assert_eq!(c.telegram_api, DEFAULT_TELEGRAM_API);
        assert!(c.sends(EventKind::OrderRefused) && c.sends(EventKind::Test));

        let e = serde_json::from_str::<AlertsConfig>(r#"{"telegramm": true}"#).unwrap_err();
        assert!(e.to_string().contains("telegramm"), "{e}");
        let e = serde_json::from_str::<AlertsConfig>(r#"{"events": ["halts"]}"#).unwrap_err();
        assert!(e.to_string().contains("halts"), "{e}");

        let only: AlertsConfig = serde_json::from_str(r#"{"events": ["halt"]}"#).unwrap();
        assert!(only.sends(EventKind::Halt) && !only.sends(EventKind::OrderRefused));
        assert!(only.sends(EventKind::Test));

        let bad = |json: &str| {
            serde_json::from_str::<AlertsConfig>(json)
                .unwrap()
                .validate()
                .unwrap_err()
        };
        let e = bad(r#"{"webhook_url": "http://hooks.example.com/T0/KEY123"}"#);
        assert!(
            e.starts_with("alerts.webhook_url: must start with https://"),
            "{e}"
        );
        assert!(!e.contains("KEY123"), "the URL's path stays out: {e}");
        assert!(bad(r#"{"headroom_thresholds_pct": [80, 50]}"#).starts_with("alerts.headroom"));
        assert!(bad(r#"{"headroom_thresholds_pct": [0]}"#).starts_with("alerts.headroom"));
        assert!(bad(r#"{"queue_capacity": 0}"#).starts_with("alerts.queue_capacity"));
        assert!(
            bad(r#"{"telegram": true, "telegram_api": "api.telegram.org"}"#)
                .starts_with("alerts.telegram_api")
        );
    }

    #[test]
    fn telegram_secrets_name_the_missing_or_malformed_key_never_the_value() {
        let token = "123456:AAbbCCdd_ee-FF";
        let both = |k: &str| match k {
            TELEGRAM_BOT_TOKEN_KEY => Some(token.to_string()),
            TELEGRAM_CHAT_ID_KEY => Some("-1001234567890".to_string()),
            _ => None,
        };
        let s = TelegramSecrets::from_lookup(&both).unwrap();
        assert_eq!(s.chat_id, "-1001234567890");
        assert!(!format!("{s:?}").contains("AAbb"));

        let no_chat = |k: &str| (k == TELEGRAM_BOT_TOKEN_KEY).then(|| token.to_string());
        let e = TelegramSecrets::from_lookup(&no_chat).unwrap_err();
        assert!(e.contains(TELEGRAM_CHAT_ID_KEY), "{e}");

        let bad = |k: &str| match k {
            TELEGRAM_BOT_TOKEN_KEY => Some("not a token SECRETISH".to_string()),
            _ => Some("@ops".to_string()),
        };
        let e = TelegramSecrets::from_lookup(&bad).unwrap_err();
        assert!(
            e.contains(TELEGRAM_BOT_TOKEN_KEY) && !e.contains("SECRETISH"),
            "{e}"
        );

        let bad_chat = |k: &str| match k {
            TELEGRAM_BOT_TOKEN_KEY => Some(token.to_string()),
            _ => Some("ops room".to_string()),
        };
        let e = TelegramSecrets::from_lookup(&bad_chat).unwrap_err();
        assert!(
            e.contains(TELEGRAM_CHAT_ID_KEY) && !e.contains("ops room"),
            "{e}"
        );
    }
}
