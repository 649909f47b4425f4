//! The `oracle-sim` binary: model zips + bar files in, JSON lines out, TLS with the written CA,
//! replay to the end, exit 0 on SIGTERM.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use oracle_ctrader::proto::{self as pb, Payload};
use oracle_sim::bars::{Period, format_iso_utc, format_price};
use oracle_sim::symbols::{load_symbols, synthetic};
use support::*;

fn write_csv(path: &std::path::Path, name: &str, digits: u32, n: usize, seed: u64) {
    let d = synthetic(name, Period::M15, n, t0(), seed);
    let mut f = std::fs::File::create(path).unwrap();
    writeln!(f, "time,open,high,low,close,volume").unwrap();
    for b in &d.bars {
        let p = |v| format_price(v, digits);
        writeln!(
            f,
            "{},{},{},{},{},{}",
            format_iso_utc(b.time_ms),
            p(b.open),
            p(b.high),
            p(b.low),
            p(b.close),
            b.volume
        )
        .unwrap();
    }
}

fn write_model_zip(path: &std::path::Path, comment: &str) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    z.start_file(
        "EURUSD_M15_policy.onnx",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    z.write_all(b"not a real model").unwrap();
    z.set_comment(comment);
    z.finish().unwrap();
}

fn fixture_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("oracle-sim-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::create_dir_all(dir.join("models")).unwrap();
    write_csv(&dir.join("data/EURUSD_M15.csv"), "EURUSD", 5, 400, 1);
    write_csv(&dir.join("data/GBPUSD_M15.csv"), "GBPUSD", 5, 400, 2);
    write_model_zip(
        &dir.join("models/EURUSD_M15.zip"),
        r#"{"format_version":"2.0","symbol":{"name":"EURUSD","clean":"EURUSD","timeframe":"M15"},
           "training_config":{"point":0.00001,"pip_value":10.0,"spread_points":9,"slippage_points":2,
           "commission_per_lot":7.0,"digits":5,"lot_sizes":[0,0.01,0.03,0.05]}}"#,
    );
    write_model_zip(&dir.join("models/BROKEN.zip"), "not json");
    dir
}

#[test]
fn symbols_from_bar_files_and_model_zips() {
    let dir = fixture_dir("load");
    let mut warnings = Vec::new();
    let syms = load_symbols(
        Some(&dir.join("data")),
        Some(&dir.join("models")),
        &mut warnings,
    );
    let eur = syms.iter().find(|s| s.spec.name == "EURUSD").unwrap();
    assert_eq!(
        (eur.spec.spread_points, eur.spec.slippage_points),
        (9, 2),
        "from training_config"
    );
    assert_eq!(eur.period, Period::M15);
    assert_eq!(eur.bars.len(), 400);
    let gbp = syms.iter().find(|s| s.spec.name == "GBPUSD").unwrap();
    assert_eq!((gbp.spec.digits, gbp.spec.lot_size), (5, 10_000_000));
    assert!(
        warnings.iter().any(|w| w.contains("BROKEN.zip")),
        "{warnings:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_tls_replays_and_stops_on_sigterm() {
    let dir = fixture_dir("bin");
    let ca = dir.join("ca.pem");
    let creds = dir.join("creds.env");
    let mut child = Command::new(env!("CARGO_BIN_EXE_oracle-sim"))
        .args([
            "--port",
            "0",
            "--json",
            "--speed",
            "fast",
            "--history",
            "300",
            "--bars",
            "3",
        ])
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--models")
        .arg(dir.join("models"))
        .arg("--ca-out")
        .arg(&ca)
        .arg("--credentials-out")
        .arg(&creds)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "listening");
    let addr: std::net::SocketAddr = first["addr"].as_str().unwrap().parse().unwrap();
    assert!(addr.ip().is_loopback());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        std::fs::read_to_string(&creds)
            .unwrap()
            .contains("ORACLE_CTRADER_ACCOUNT_ID=1001")
    );

    let ca_pem = std::fs::read_to_string(&ca).unwrap();
    let mut c = Client::connect_to(addr, &ca_pem).await;
    c.login().await;
    let r = c
        .request(pb::ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: ACC,
            symbol_id: vec![1],
            ..Default::default()
        })
        .await;
    assert!(matches!(r, Payload::SubscribeSpotsRes(_)));
    // 3 live bars × 4 ticks + the opening tick of the 4th, plus the first spot
    let reader = tokio::task::spawn_blocking(move || {
        let l = lines.next().unwrap().unwrap();
        (l, lines)
    });
    // keep reading (fast speed: the market moves as the client reads) until the replay ends
    let mut spots = 0;
    while !reader.is_finished() {
        if let Recv::Msg(e) = c.recv_raw(Duration::from_millis(50)).await {
            if matches!(e.payload, Payload::SpotEvent(_)) {
                spots += 1;
            }
        }
    }
    let (done, _lines) = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done, r#"{"event":"replay_done"}"#);
    // what was queued before the end drains, then the stream stays quiet
    loop {
        match c.recv_raw(Duration::from_millis(300)).await {
            Recv::Msg(e) => {
                if matches!(e.payload, Payload::SpotEvent(_)) {
                    spots += 1;
                }
            }
            Recv::Timeout => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(spots >= 5, "{spots}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap();
    assert_eq!(code.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
