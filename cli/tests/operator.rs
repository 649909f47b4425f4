//! `oracle status|halt|resume|enable|disable` against a running `oracle executor --paper`
//! (docs/operator.md): what a person types, over the executor's operator channel.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_oracle");

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn oracle(args: &[&str], state: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--state")
        .arg(state)
        .stdin(Stdio::null())
        .output()
        .expect("run oracle")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn executor(d: &Path) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    Command::new(BIN)
        .env("ORACLE_IPC_TOKEN", "cli-op-token")
        .args(["executor", "--paper", "--json", "--config"])
        .arg(d.join("executor_config.json"))
        .arg("--state")
        .arg(d.join("state"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn executor")
}

#[test]
fn oracle_status_disable_and_halt_command_the_running_executor() {
    let d = tmpdir("operator");
    let state = d.join("state");
    let cfg = d.join("executor_config.json");
    std::fs::write(
        &cfg,
        r#"{"EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#,
    )
    .expect("config");

    // No executor yet: the command names the socket and exits 1.
    let o = oracle(&["status"], &state);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("operator.sock") && err.contains("no executor answers"),
        "{err}"
    );

    let mut child = executor(&d);
    let sock = state.join("operator.sock");
    for _ in 0..300 {
        if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let o = oracle(&["status"], &state);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("MODELS") && out.contains("GUARD"), "{out}");
    assert!(out.contains("EURUSD") && out.contains("enabled"), "{out}");

    let o = oracle(&["disable", "EURUSD"], &state);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("EURUSD disabled"), "{out}");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).expect("read")).expect("json");
    assert_eq!(file["EURUSD"]["enabled"], false);

    let o = oracle(&["enable", "GBPUSD"], &state);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("GBPUSD") && err.contains("EURUSD"), "{err}");

    let o = oracle(&["halt"], &state);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("halted"), "{out}");

    let o = oracle(&["status", "--json"], &state);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).expect("status --json");
    assert_eq!(s["guard"]["halted"]["reason"], "HALTED_OPERATOR", "{s}");
    // The guard's headroom, money and percent of the initial balance (paper: 100 000, the
    // default limits 5% a day and 10% in all, nothing lost yet).
    assert_eq!(s["guard"]["daily"]["money"], 5000.0, "{s}");
    assert_eq!(s["guard"]["daily"]["pct_of_initial"], 5.0, "{s}");
    assert_eq!(s["guard"]["max_loss"]["money"], 10000.0, "{s}");
    assert_eq!(s["guard"]["max_loss"]["pct_of_initial"], 10.0, "{s}");
    assert_eq!(s["sides"][0]["balance"], 100000.0, "{s}");
    let eur = s["symbols"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "EURUSD"))
        .cloned();
    assert_eq!(eur.map(|e| e["enabled"].clone()), Some(false.into()), "{s}");

    let o = oracle(&["resume"], &state);
    assert!(o.status.success(), "{}", text(&o).1);
    let _ = child.kill();
    let _ = child.wait();
}
