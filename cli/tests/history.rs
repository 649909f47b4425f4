//! `oracle history` end to end against `oracle sim` over TLS: the bar file written is the
//! simulator's bars of the span byte for byte (they come from data/EURUSD_H1.csv), without the
//! bar still forming at the simulator's clock; it loads through `oracle_model`'s bar reader and
//! `oracle backtest --bars` takes it; a span of several requests stays within the simulator's
//! 5 history requests a second (every request the command sent was answered, none refused and
//! sent again: counted in the simulator's timing file); and the refusals, one line each.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_oracle");

/// The simulator's market clock: 10:30 on a Thursday, so the bar of 10:00 is forming.
const MARKET_NOW: &str = "2017-06-15T10:30:00Z";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-history-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("data")).expect("tmp dir");
    d
}

struct Sim {
    child: Child,
    port: u16,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `oracle sim` on EURUSD H1 only, its market held at [`MARKET_NOW`] (the start file never
/// appears), 100 bars a response at most, the timing file on.
fn start_sim(d: &Path) -> Sim {
    std::fs::copy(
        repo().join("data/EURUSD_H1.csv"),
        d.join("data/EURUSD_H1.csv"),
    )
    .expect("bar file");
    let mut child = Command::new(BIN)
        .args([
            "sim",
            "--port",
            "0",
            "--json",
            "--start",
            MARKET_NOW,
            "--max-bars",
            "100",
        ])
        .arg("--data")
        .arg(d.join("data"))
        .arg("--start-file")
        .arg(d.join("never"))
        .arg("--timing-out")
        .arg(d.join("timing.jsonl"))
        .arg("--ca-out")
        .arg(d.join("ca.pem"))
        .arg("--credentials-out")
        .arg(d.join("creds.env"))
        .env_remove("ORACLE_CTRADER_ACCOUNT_ID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("oracle sim starts");
    let out = child.stdout.take().unwrap();
    let mut port = None;
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["event"] == "listening"
        {
            let addr: std::net::SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
            port = Some(addr.port());
            break;
        }
    }
    Sim {
        child,
        port: port.expect("the sim says where it listens"),
    }
}

fn history(d: &Path, sim: &Sim, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("history")
        .args(args)
        .arg("--broker")
        .arg(format!("127.0.0.1:{}", sim.port))
        .arg("--ca")
        .arg(d.join("ca.pem"))
        .arg("--secrets")
        .arg(d.join("creds.env"))
        .arg("--token-file")
        .arg(d.join("no-token-file.json"))
        .stdin(Stdio::null())
        .output()
        .expect("run oracle history")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `GetTrendbarsReq` lines of the sim's timing file, per connection.
fn trendbar_requests(d: &Path) -> std::collections::BTreeMap<u64, usize> {
    let text = std::fs::read_to_string(d.join("timing.jsonl")).unwrap_or_default();
    let mut per = std::collections::BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        if v["ev"] == "request" && v["kind"] == "GetTrendbarsReq" {
            *per.entry(v["conn"].as_u64().unwrap()).or_insert(0) += 1;
        }
    }
    per
}

#[test]
fn history_writes_the_simulators_closed_bars_byte_for_byte_within_five_requests_a_second() {
    let d = tmpdir("bars");
    let sim = start_sim(&d);
    let out = d.join("bars/EURUSD_H1.csv");
    // A file there already: replaced whole.
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, "old\n").unwrap();
    let o = history(
        &d,
        &sim,
        &[
            "--symbol",
            "EURUSD",
            "--timeframe",
            "H1",
            "--from",
            "2017-05-01",
            "--to",
            "2017-07-01T00:00:00Z",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");

    // The simulator's bars of the span are data/EURUSD_H1.csv's lines from 2017-05-01 up to the
    // last bar closed at its clock (09:00, closed at 10:00); the 10:00 bar is forming there.
    let source = std::fs::read_to_string(repo().join("data/EURUSD_H1.csv")).unwrap();
    let forming = "2017-06-15T10:00:00Z,";
    assert!(
        source.lines().any(|l| l.starts_with(forming)),
        "the source has the bar forming at the sim's clock"
    );
    let mut want = String::from("time,open,high,low,close,volume\n");
    for l in source.lines().skip(1) {
        let t = &l[..20];
        if ("2017-05-01T00:00:00Z".."2017-06-15T10:00:00Z").contains(&t) {
            want.push_str(l);
            want.push('\n');
        }
    }
    let got = std::fs::read_to_string(&out).unwrap();
    assert_eq!(got, want, "the file is the simulator's bars, byte for byte");
    assert!(!got.contains(forming), "the forming bar is not written");
    let n = want.lines().count() - 1;
    assert!(n > 500, "{n} bars");

    // Written through a temporary file, none left behind.
    let names: Vec<String> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["EURUSD_H1.csv"]);

    // It loads through the loader's bar reader, every line accepted.
    let reader =
        oracle_model::BarReader::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()))
            .expect("header");
    let read: Vec<_> = reader.collect::<Result<_, _>>().expect("every line a bar");
    assert_eq!(read.len(), n);

    // Several requests (100 bars a response), paced: the simulator answers a sixth history
    // request within its second with REQUEST_FREQUENCY_EXCEEDED, which the session would send
    // again, so the simulator would count more requests than the command reports.
    let reported: usize = err
        .split(" GetTrendbarsReq")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("the summary names the requests: {err}"));
    assert!(reported > 5, "more than one second's worth: {reported}");
    assert_eq!(reported, n.div_ceil(100), "{err}");
    let per_conn = trendbar_requests(&d);
    assert_eq!(
        per_conn.values().copied().collect::<Vec<_>>(),
        vec![reported],
        "the simulator saw each request once (none refused for its rate): {per_conn:?}"
    );
    assert!(
        err.contains(&format!(
            "EURUSD H1: {n} closed bars 2017-05-01T00:00:00Z … 2017-06-15T09:00:00Z"
        )),
        "{err}"
    );

    // A `--to` inside a bar: the simulator lists that bar (it opened before `--to` and closed at
    // its clock), but it was still open at `--to`: not written.
    let cut = d.join("cut.csv");
    let o = history(
        &d,
        &sim,
        &[
            "--symbol",
            "EURUSD",
            "--timeframe",
            "H1",
            "--from",
            "2017-06-01",
            "--to",
            "2017-06-01T10:30:00Z",
            "--out",
            cut.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let cut_text = std::fs::read_to_string(&cut).unwrap();
    let open_at_to = "2017-06-01T10:00:00Z,";
    assert!(source.lines().any(|l| l.starts_with(open_at_to)));
    assert!(!cut_text.contains(open_at_to), "{cut_text}");
    assert_eq!(
        cut_text.lines().last().map(|l| &l[..20]),
        Some("2017-06-01T09:00:00Z")
    );

    // `oracle backtest --bars` takes it.
    let zip = repo().join("models/EURUSD_H1.zip");
    if zip.exists() {
        let b = Command::new(BIN)
            .args(["backtest", "--model"])
            .arg(&zip)
            .arg("--bars")
            .arg(&out)
            .arg("--trades")
            .arg(d.join("trades.csv"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(b.status.success(), "{}", stderr(&b));
        assert!(
            !stderr(&b).contains("rejected"),
            "no bar rejected: {}",
            stderr(&b)
        );
    }
    drop(sim);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn history_refuses_an_unknown_symbol_naming_the_close_ones_and_leaves_the_file_as_it_was() {
    let d = tmpdir("unknown");
    let sim = start_sim(&d);
    let out = d.join("EURUSD_H1.csv");
    std::fs::write(&out, "kept\n").unwrap();
    let o = history(
        &d,
        &sim,
        &[
            "--symbol",
            "eurusd",
            "--timeframe",
            "H1",
            "--from",
            "2017-05-01",
            "--to",
            "2017-06-01",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let err = stderr(&o);
    assert!(!o.status.success());
    assert_eq!(
        err,
        format!(
            "oracle history: 127.0.0.1:{}: symbol \"eurusd\" is not in the broker's symbol list (close matches: EURUSD)\n",
            sim.port
        )
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "kept\n");
    drop(sim);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn history_refuses_a_reversed_span_and_a_timeframe_no_model_may_have_in_one_line() {
    let d = tmpdir("refusals");
    let out = d.join("x.csv");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("history")
            .args(args)
            .args(["--symbol", "EURUSD", "--broker", "127.0.0.1:9"])
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = run(&[
        "--timeframe",
        "H1",
        "--from",
        "2024-03-01",
        "--to",
        "2024-02-01",
    ]);
    assert!(!o.status.success());
    assert_eq!(
        stderr(&o),
        "oracle history: --from 2024-03-01 is not before --to 2024-02-01: the span is empty\n"
    );
    for tf in ["MN1", "H2"] {
        let o = run(&[
            "--timeframe",
            tf,
            "--from",
            "2024-01-01",
            "--to",
            "2024-02-01",
        ]);
        assert!(!o.status.success());
        assert_eq!(
            stderr(&o),
            format!(
                "oracle history: --timeframe \"{tf}\" is not one a model may have: one of M1, M2, M3, M4, M5, M10, M15, M30, H1, H4, H12, D1, W1\n"
            )
        );
    }
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn history_with_an_expired_access_token_in_the_token_file_names_oracle_auth_refresh() {
    use oracle_ctrader::Secret;
    use oracle_ctrader::tokenfile::{self, TokenPair};
    use std::os::unix::fs::PermissionsExt as _;
    let d = tmpdir("expired");
    let secrets = d.join("secrets.env");
    std::fs::write(
        &secrets,
        "CTRADER_CLIENT_ID=id\nCTRADER_CLIENT_SECRET=secret-SECRET\nCTRADER_ACCESS_TOKEN=older-SECRET\nCTRADER_ACCOUNT_ID=1001\n",
    )
    .unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The token file's pair is newer than the secrets' (a refresh killed theirs) and expired in
    // 1970: whatever today is, it is refused before any connection.
    let token_file = tokenfile::path_in(&d);
    tokenfile::prepare_folder(&token_file).unwrap();
    let pair = TokenPair {
        access_token: Secret::new("expired-SECRET"),
        refresh_token: Secret::new("refresh-SECRET"),
        obtained_at_ms: 1,
        expires_at_ms: 2,
    };
    tokenfile::store(&token_file, &pair).unwrap();
    let o = Command::new(BIN)
        .args(["history", "--symbol", "EURUSD", "--timeframe", "H1"])
        .args(["--from", "2024-01-01", "--to", "2024-02-01"])
        .args(["--broker", "127.0.0.1:9"])
        .arg("--out")
        .arg(d.join("x.csv"))
        .arg("--secrets")
        .arg(&secrets)
        .arg("--token-file")
        .arg(&token_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(
        stderr(&o),
        format!(
            "oracle history: the access token of the token file {} expired: run `oracle auth --refresh`\n",
            token_file.display()
        )
    );
    assert!(!stderr(&o).contains("SECRET"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn history_resume_keeps_the_files_bars_and_downloads_only_the_rest_and_a_file_that_differs_whole() {
    let d = tmpdir("resume");
    let sim = start_sim(&d);
    let out = d.join("EURUSD_H1.csv");
    let args = |from: &str, extra: &[&'static str]| {
        let mut v = vec![
            "--symbol".to_string(),
            "EURUSD".into(),
            "--timeframe".into(),
            "H1".into(),
            "--from".into(),
            from.into(),
            "--to".into(),
            "2017-07-01".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |v: Vec<String>| {
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        let o = history(&d, &sim, &v);
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    };
    // The whole span once, for the bytes it must come to.
    run(args("2017-05-01", &[]));
    let whole = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = whole.lines().collect();
    // An interrupted download: the middle of the span is there (line 200 to 600).
    let mut part = String::from("time,open,high,low,close,volume\n");
    for l in &lines[200..600] {
        part.push_str(l);
        part.push('\n');
    }
    std::fs::write(&out, &part).unwrap();
    let err = run(args("2017-05-01", &["--resume"]));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), whole, "{err}");
    assert!(err.contains(", 400 kept from the file there)"), "{err}");
    let per_conn = trendbar_requests(&d);
    let counts: Vec<usize> = per_conn.values().copied().collect();
    assert_eq!(counts.len(), 2, "{per_conn:?}");
    assert!(
        counts[1] < counts[0],
        "resuming asked for less than the whole span: {per_conn:?}"
    );

    // A file whose last kept bar differs from the broker's: downloaded whole, and said so.
    let last = lines[599];
    let bad = part.replace(last, &format!("{last}0")); // ten times its volume
    std::fs::write(&out, &bad).unwrap();
    let err = run(args("2017-05-01", &["--resume"]));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), whole);
    assert!(err.contains("differs from the broker's bars"), "{err}");
    assert!(!err.contains("kept from the file there"), "{err}");
    drop(sim);
    let _ = std::fs::remove_dir_all(&d);
}
