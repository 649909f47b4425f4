//! Alerts against a local HTTPS server standing in for Telegram's Bot API and a webhook (rustls
//! with a test CA from rcgen): the JSON bodies, a 429's `retry_after` waited out, a server that
//! hangs or is down (the queue bounded, nothing blocked, the drops counted and said), and the bot
//! token in no message, log line or error.

use std::io::Write;
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use oracle_alerts::test_support::{Server, ca_pem};
use oracle_alerts::{Alerts, AlertsBuilder, AlertsConfig, Event, TelegramSecrets};
use serde_json::{Value, json};

const TOKEN: &str = "7412589630:AAF3kQz9_xWmLp2RtYv8NbHc5JdGs1EoUiK";
const CHAT: &str = "-1001234567890";

// ---------------------------------------------------------------------------------------------
// The test server: `oracle_alerts::test_support::Server` (feature `test-support`).

// ---------------------------------------------------------------------------------------------
// Logs: every tracing event and every `log` record (ureq's) of this test binary, at TRACE.

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Capture {
    static C: OnceLock<Capture> = OnceLock::new();
    C.get_or_init(|| {
        let c = Capture::default();
        let w = c.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .try_init()
            .expect("the only subscriber of this test binary (it forwards `log` records too)");
        c
    })
}

fn config(server: &Server) -> AlertsConfig {
    AlertsConfig {
        telegram: true,
        telegram_api: server.base(),
        timeout_s: 30,
        ..AlertsConfig::default()
    }
}

fn secrets() -> TelegramSecrets {
    TelegramSecrets {
        bot_token: TOKEN.to_string(),
        chat_id: CHAT.to_string(),
    }
}

fn start(c: AlertsConfig, waits: Option<Arc<Mutex<Vec<Duration>>>>) -> Alerts {
    logs();
    let mut b = AlertsBuilder::new(c)
        .telegram(secrets())
        .ca_pem(ca_pem().as_bytes());
    // Tests never sleep: a wait is recorded (or skipped).
    let waits = waits.unwrap_or_default();
    b = b.pause_with(move |d| waits.lock().unwrap().push(d));
    b.start().unwrap()
}

fn refused(i: usize) -> Event {
    Event::OrderRefused {
        model: format!("M{i}"),
        order: "BUY 0.10 EURUSD".into(),
        reason: "guard: SPREAD".into(),
    }
}

const GRACE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------

#[test]
fn telegram_and_the_webhook_each_get_the_right_json_body() {
    let server = Server::start();
    let hook = format!("{}/hooks/T0KEN-in-the-path", server.base());
    let c = AlertsConfig {
        webhook_url: Some(hook),
        label: Some("ftmo-1".into()),
        ..config(&server)
    };
    let alerts = start(c, None);
    alerts.push(Event::Halted {
        reason: "daily loss 4.02% of 5%".into(),
        flattened: true,
    });
    let stats = alerts.close(GRACE);
    assert_eq!((stats.sent, stats.failed, stats.pending), (2, 0, 0));

    let text = "[ftmo-1] HALTED: daily loss 4.02% of 5%; every position closed";
    let reqs = server.requests();
    let tg = reqs
        .iter()
        .find(|r| r.path.starts_with("/bot"))
        .expect("a Telegram request");
    assert_eq!(tg.path, format!("/bot{TOKEN}/sendMessage"));
    assert_eq!(tg.content_type, "application/json");
    assert_eq!(
        tg.body,
        json!({"chat_id": CHAT, "text": text, "disable_web_page_preview": true})
    );
    let wh = reqs
        .iter()
        .find(|r| r.path == "/hooks/T0KEN-in-the-path")
        .expect("a webhook request");
    assert_eq!(wh.content_type, "application/json");
    assert_eq!(
        wh.body,
        json!({
            "event": "halted",
            "reason": "daily loss 4.02% of 5%",
            "flattened": true,
            "source": "oracle-trader",
            "label": "ftmo-1",
            "text": text,
        })
    );
}

#[test]
fn a_429_is_waited_out_for_its_retry_after_and_a_502_for_the_backoff_then_sent() {
    let server = Server::start();
    server.answer(
        429,
        r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}"#,
    );
    server.answer(200, r#"{"ok":true,"result":{}}"#);
    server.answer(502, "bad gateway");
    let waits = Arc::new(Mutex::new(Vec::new()));
    let alerts = start(config(&server), Some(waits.clone()));
    alerts.push(Event::AuthFailed {
        what: "access token: CH_ACCESS_TOKEN_INVALID".into(),
    });
    alerts.push(Event::Disconnected { for_s: 61 });
    let stats = alerts.close(GRACE);
    assert_eq!((stats.sent, stats.failed), (2, 0));
    assert_eq!(
        *waits.lock().unwrap(),
        vec![Duration::from_secs(3), Duration::from_secs(2)],
        "Telegram's retry_after, then the first backoff (alerts.backoff_s)"
    );
    let texts: Vec<Value> = server
        .requests()
        .iter()
        .map(|r| r.body["text"].clone())
        .collect();
    assert_eq!(
        texts,
        vec![
            json!("authentication failed: access token: CH_ACCESS_TOKEN_INVALID"),
            json!("authentication failed: access token: CH_ACCESS_TOKEN_INVALID"),
            json!("broker disconnected for 61 s"),
            json!("broker disconnected for 61 s"),
        ]
    );
}

#[test]
fn a_hung_server_blocks_no_push_the_queue_drops_its_oldest_and_says_how_many() {
    let server = Server::start();
    let (release, held) = mpsc::channel();
    server.hold(held);
    let c = AlertsConfig {
        queue_capacity: 8,
        ..config(&server)
    };
    let alerts = start(c, None);
    alerts.push(refused(0));
    // The worker is now inside the request of M0, which the server does not answer.
    while server.requests().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 1..=100 {
        alerts.push(refused(i));
    }
    let s = alerts.stats();
    assert_eq!((s.pushed, s.pending, s.dropped), (101, 8, 92));

    release.send(()).unwrap();
    let stats = alerts.close(GRACE);
    assert_eq!((stats.pending, stats.failed), (0, 0));
    let texts: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.body["text"].as_str().unwrap().to_string())
        .collect();
    let mut want = vec![
        "order refused: M0 BUY 0.10 EURUSD: guard: SPREAD".to_string(),
        "92 alerts dropped (alert queue full)".to_string(),
    ];
    want.extend((93..=100).map(|i| format!("order refused: M{i} BUY 0.10 EURUSD: guard: SPREAD")));
    assert_eq!(texts, want, "the newest 8 kept, the drop said first");
}

#[test]
fn a_server_that_is_down_gives_each_alert_up_after_its_tries_without_blocking_a_push() {
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = AlertsConfig {
        telegram: true,
        telegram_api: format!("https://127.0.0.1:{port}"),
        max_attempts: 3,
        queue_capacity: 4,
        ..AlertsConfig::default()
    };
    let waits = Arc::new(Mutex::new(Vec::new()));
    let alerts = start(c, Some(waits.clone()));
    // One alert: three tries, the doubling backoff between them, then given up.
    alerts.push(refused(0));
    while alerts.stats().failed == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        *waits.lock().unwrap(),
        vec![Duration::from_secs(2), Duration::from_secs(4)]
    );
    // Many: every push returns, the queue never holds more than its capacity.
    for i in 1..=50 {
        alerts.push(refused(i));
        assert!(alerts.stats().pending <= 4);
    }
    let stats = alerts.close(GRACE);
    assert_eq!((stats.pushed, stats.sent, stats.pending), (51, 0, 0));
    // Every alert the queue kept was given up (and each "dropped" line with them).
    assert!(stats.failed >= 51 - stats.dropped, "{stats:?}");
    let w = waits.lock().unwrap().clone();
    assert!(
        w.len() <= 2 * stats.failed as usize,
        "at most 3 tries each: {w:?}"
    );
    assert!(
        w.iter()
            .all(|d| *d == Duration::from_secs(2) || *d == Duration::from_secs(4)),
        "the doubling backoff: {w:?}"
    );
}

#[test]
fn a_token_in_an_events_text_is_redacted_and_the_bot_token_is_in_no_log_line_or_error() {
    let server = Server::start();
    server.answer(
        400,
        &format!(r#"{{"ok":false,"error_code":400,"description":"Bad Request: bot{TOKEN} chat not found"}}"#),
    );
    let c = AlertsConfig {
        webhook_url: Some(format!("{}/hook", server.base())),
        ..config(&server)
    };
    let alerts = AlertsBuilder::new(c)
        .telegram(secrets())
        .ca_pem(ca_pem().as_bytes())
        .redact("broker-client-secret-42")
        .pause_with(|_| {});
    logs();
    let alerts = alerts.start().unwrap();
    alerts.push(Event::Halted {
        reason: format!("token {TOKEN} and broker-client-secret-42 leaked"),
        flattened: false,
    });
    let stats = alerts.close(GRACE);
    assert_eq!(
        (stats.sent, stats.failed),
        (1, 1),
        "Telegram gave up on its 400"
    );
    assert_eq!(
        alerts.recent_failures(),
        vec!["telegram: not sent: HTTP 400: Bad Request: bot<redacted> chat not found"],
        "the error says why, without the token"
    );
    for r in server.requests() {
        let body = r.body.to_string();
        assert!(!body.contains(TOKEN), "{body}");
        assert!(!body.contains("broker-client-secret-42"), "{body}");
        assert_eq!(
            r.body["text"],
            "HALTED: token <redacted> and <redacted> leaked; positions left open"
        );
    }
    let key = TOKEN.split_once(':').unwrap().1;
    let logged = String::from_utf8(logs().0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("alert not sent: HTTP 400: Bad Request: bot<redacted> chat not found"),
        "the refusal is logged, redacted: {logged}"
    );
    assert!(
        logged.contains("ureq"),
        "ureq's records are captured: {logged}"
    );
    assert!(
        !logged.contains(key),
        "the bot token in a log line: {logged}"
    );
}
