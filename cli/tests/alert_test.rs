//! `oracle alert-test`: one test message to each configured channel, over a local HTTPS server
//! (the simulator's generated CA) standing in for Telegram and a webhook; what is missing is
//! named; no secret is printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "7412589630:AAF3kQz9_xWmLp2RtYv8NbHc5JdGs1EoUiK";

/// The (path, JSON body) of each request the server read.
type Seen = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// Serves HTTPS on 127.0.0.1, answering 200 `{"ok":true}`; returns its base URL, CA PEM and
/// the (path, JSON body) of each request.
fn server() -> (String, String, Seen) {
    let tls = oracle_sim::tls::generate().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let (config, log) = (tls.server_config.clone(), seen.clone());
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut r = BufReader::new(rustls::StreamOwned::new(conn, tcp));
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let path = line.split(' ').nth(1).unwrap_or_default().to_string();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).unwrap();
            log.lock()
                .unwrap()
                .push((path, serde_json::from_slice(&body).unwrap()));
            let answer = r#"{"ok":true,"result":{}}"#;
            let out = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let s = r.get_mut();
            let _ = s.write_all(out.as_bytes());
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    });
    (base, tls.ca_pem, seen)
}

fn private_file(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-alert-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_secrets_rule_and_the_alerts_crate_name_the_same_telegram_keys() {
    assert_eq!(
        oracle_secrets::TELEGRAM_BOT_TOKEN_KEY,
        oracle_alerts::config::TELEGRAM_BOT_TOKEN_KEY
    );
    assert_eq!(
        oracle_secrets::TELEGRAM_CHAT_ID_KEY,
        oracle_alerts::config::TELEGRAM_CHAT_ID_KEY
    );
}

#[test]
fn alert_test_sends_one_test_message_to_telegram_and_the_webhook_and_prints_no_secret() {
    let (base, ca, seen) = server();
    let d = tmp("ok");
    let secrets = d.join("secrets.env");
    private_file(
        &secrets,
        &format!(
            "ORACLE_TELEGRAM_BOT_TOKEN={TOKEN}\nORACLE_TELEGRAM_CHAT_ID=-1001234567890\nORACLE_IPC_TOKEN=x\n"
        ),
    );
    let config = d.join("executor_config.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "alerts": {
                "telegram": true,
                "telegram_api": base,
                "webhook_url": format!("{base}/hook"),
                "label": "test-desk",
            }
        })
        .to_string(),
    )
    .unwrap();
    let ca_file = d.join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_oracle"))
        .arg("alert-test")
        .arg("--secrets")
        .arg(&secrets)
        .arg("--config")
        .arg(&config)
        .arg("--ca")
        .arg(&ca_file)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "test message sent to 2 of 2 channels\n");
    assert!(!format!("{stdout}{stderr}").contains(&TOKEN[11..]));
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let text = "[test-desk] test message from oracle alert-test: alerts reach this channel";
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, format!("/bot{TOKEN}/sendMessage"));
    assert_eq!(seen[0].1["chat_id"], "-1001234567890");
    assert_eq!(seen[0].1["text"], text);
    assert_eq!(seen[1].0, "/hook");
    assert_eq!(seen[1].1["event"], "test");
    assert_eq!(seen[1].1["text"], text);
}

#[test]
fn alert_test_names_what_is_missing() {
    let d = tmp("missing");
    let secrets = d.join("secrets.env");
    private_file(&secrets, "ORACLE_IPC_TOKEN=x\n");
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_oracle"))
            .arg("alert-test")
            .arg("--secrets")
            .arg(&secrets)
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = run(&[]);
    assert!(
        e.starts_with("oracle alert-test: no alert channel: set ORACLE_TELEGRAM_BOT_TOKEN and ORACLE_TELEGRAM_CHAT_ID"),
        "{e}"
    );
    let e = run(&["--webhook", "http://hooks.example.com/KEY"]);
    assert!(
        e.contains("alerts.webhook_url: must start with https://"),
        "{e}"
    );
    assert!(!e.contains("KEY"), "{e}");

    let config = d.join("executor_config.json");
    std::fs::write(&config, r#"{"alerts": {"telegram": true}}"#).unwrap();
    let e = run(&["--config", config.to_str().unwrap()]);
    assert!(
        e.contains("alerts.telegram is on but ORACLE_TELEGRAM_BOT_TOKEN is not set"),
        "{e}"
    );
    std::fs::write(&config, r#"{"risk": {}}"#).unwrap();
    let e = run(&["--config", config.to_str().unwrap()]);
    assert!(e.contains("no `alerts` section"), "{e}");
}
