//! The two channels (Telegram's `sendMessage`, a JSON webhook) over HTTPS with `ureq`, and what
//! an answer means: sent, retry (after how long), or give up.

use std::time::Duration;

use crate::config::shown_url;
use crate::redact::Redactor;

/// What one try came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The channel took the message.
    Sent,
    /// Try again, after `after` when the server said (Telegram's 429 `retry_after`, a
    /// `Retry-After` header), else after the backoff.
    Retry {
        /// The server's wait.
        after: Option<Duration>,
        /// What went wrong (redacted).
        why: String,
    },
    /// Trying again would not help (a refused token, a chat not found, a 4xx).
    GiveUp {
        /// What went wrong (redacted).
        why: String,
    },
}

/// The meaning of an HTTP answer: `status`, the `Retry-After` header and the body (Telegram's
/// `{"ok": false, "description": …, "parameters": {"retry_after": N}}`).
pub fn classify(status: u16, retry_after_header: Option<&str>, body: &str) -> Outcome {
    if (200..300).contains(&status) {
        // Telegram answers 200 with `"ok": true`; a webhook's body is not read.
        let refused = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("ok").and_then(serde_json::Value::as_bool))
            == Some(false);
        if !refused {
            return Outcome::Sent;
        }
    }
    let json = serde_json::from_str::<serde_json::Value>(body).ok();
    let description = json
        .as_ref()
        .and_then(|v| v.get("description"))
        .and_then(serde_json::Value::as_str)
        .map(|d| d.chars().take(200).collect::<String>());
    let why = match &description {
        Some(d) => format!("HTTP {status}: {d}"),
        None => format!("HTTP {status}"),
    };
    let body_wait = json
        .as_ref()
        .and_then(|v| v.pointer("/parameters/retry_after"))
        .and_then(serde_json::Value::as_u64);
    let header_wait = retry_after_header.and_then(|h| h.trim().parse::<u64>().ok());
    let after = body_wait.or(header_wait).map(Duration::from_secs);
    match status {
        429 => Outcome::Retry { after, why },
        408 | 425 | 500..=599 => Outcome::Retry { after, why },
        _ => Outcome::GiveUp { why },
    }
}

/// Where a message goes.
#[derive(Clone)]
pub(crate) enum Target {
    Telegram { url: String, chat_id: String },
    Webhook { url: String },
}

impl Target {
    /// The name logs use: `telegram` or `webhook https://host/…`.
    pub(crate) fn name(&self) -> String {
        match self {
            Target::Telegram { .. } => "telegram".to_string(),
            Target::Webhook { url } => format!("webhook {}", shown_url(url)),
        }
    }
}

/// An HTTPS client for the channels.
pub(crate) struct Client {
    agent: ureq::Agent,
}

/// The agent: HTTPS only, no redirects, statuses as values, a time limit per request, and the
/// public roots or exactly the certificates of `ca_pem`.
pub(crate) fn client(ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Client, String> {
    let roots = match ca_pem {
        None => ureq::tls::RootCerts::WebPki,
        Some(pem) => {
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(pem) {
                match item.map_err(|e| format!("alerts CA: {e}"))? {
                    ureq::tls::PemItem::Certificate(c) => certs.push(c),
                    _ => continue,
                }
            }
            if certs.is_empty() {
                return Err("alerts CA: no certificate in the PEM".to_string());
            }
            ureq::tls::RootCerts::new_with_certs(&certs)
        }
    };
    let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
    let agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .https_only(true)
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .build()
        .new_agent();
    Ok(Client { agent })
}

impl Client {
    /// One try: POSTs `text` (already redacted) to `target`; `json` is the webhook's body.
    pub(crate) fn send(
        &self,
        target: &Target,
        text: &str,
        json: &serde_json::Value,
        redactor: &Redactor,
    ) -> Outcome {
        let (url, body) = match target {
            Target::Telegram { url, chat_id } => (
                url,
                serde_json::json!({
                    "chat_id": chat_id,
                    "text": text,
                    "disable_web_page_preview": true,
                }),
            ),
            Target::Webhook { url } => (url, json.clone()),
        };
        let bytes = match serde_json::to_vec(&body) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::GiveUp {
                    why: format!("encoding the body: {e}"),
                };
            }
        };
        let result = self
            .agent
            .post(url.as_str())
            .header("Content-Type", "application/json")
            .send(&bytes[..]);
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    why: redactor.redact(&e.to_string()),
                };
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let answer = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        match classify(status, retry_after.as_deref(), &answer) {
            Outcome::Sent => Outcome::Sent,
            Outcome::Retry { after, why } => Outcome::Retry {
                after,
                why: redactor.redact(&why),
            },
            Outcome::GiveUp { why } => Outcome::GiveUp {
                why: redactor.redact(&why),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_sent_retried_after_the_servers_wait_or_given_up() {
        assert_eq!(
            classify(200, None, r#"{"ok":true,"result":{}}"#),
            Outcome::Sent
        );
        assert_eq!(classify(204, None, ""), Outcome::Sent);
        let too_many = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#;
        assert_eq!(
            classify(429, Some("3"), too_many),
            Outcome::Retry {
                after: Some(Duration::from_secs(7)),
                why: "HTTP 429: Too Many Requests: retry after 7".into()
            },
            "Telegram's body wins over the header"
        );
        assert_eq!(
            classify(429, Some("3"), ""),
            Outcome::Retry {
                after: Some(Duration::from_secs(3)),
                why: "HTTP 429".into()
            }
        );
        assert!(matches!(
            classify(502, None, "bad gateway"),
            Outcome::Retry { after: None, .. }
        ));
        assert_eq!(
            classify(
                400,
                None,
                r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#
            ),
            Outcome::GiveUp {
                why: "HTTP 400: Bad Request: chat not found".into()
            }
        );
        assert!(matches!(classify(401, None, ""), Outcome::GiveUp { .. }));
        assert!(matches!(
            classify(200, None, r#"{"ok":false,"description":"x"}"#),
            Outcome::GiveUp { .. }
        ));
    }
}
