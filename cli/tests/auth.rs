//! `oracle auth` and `oracle accounts` end to end against `oracle sim` over TLS: the prompt and
//! `--code` flows, the token file, `--refresh`, a spent refresh token refused, a folder open to
//! others refused before the refresh token is spent, and the account list with balance — and
//! no secret on the terminal.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use oracle_ctrader::tokenfile;

const BIN: &str = env!("CARGO_BIN_EXE_oracle");
const REDIRECT: &str = "https://localhost/callback";
const CLIENT_ID: &str = "auth-test-client";
const CLIENT_SECRET: &str = "auth-test-SECRET";

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    chmod(&d, 0o700);
    d
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

struct Sim {
    child: Child,
    port: u16,
    ca: PathBuf,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim(d: &Path) -> Sim {
    let ca = d.join("ca.pem");
    let mut child = Command::new(BIN)
        .args([
            "sim",
            "--port",
            "0",
            "--synthetic",
            "600",
            "--json",
            "--ca-out",
        ])
        .arg(&ca)
        .env("ORACLE_SIM_CLIENT_ID", CLIENT_ID)
        .env("ORACLE_SIM_CLIENT_SECRET", CLIENT_SECRET)
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
        ca,
    }
}

/// The authorization page's redirect (what the browser is sent to).
fn allow(sim: &Sim) -> String {
    let pem = std::fs::read(&sim.ca).unwrap();
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i.unwrap() {
            ureq::tls::PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
        .build();
    let agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent();
    let resp = agent
        .get(format!("https://127.0.0.1:{}/apps/auth", sim.port))
        .query("client_id", CLIENT_ID)
        .query("redirect_uri", REDIRECT)
        .query("scope", "trading")
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    resp.headers()["location"].to_str().unwrap().to_string()
}

fn secrets_file(d: &Path) -> PathBuf {
    let p = d.join("secrets.env");
    std::fs::write(
        &p,
        format!("CTRADER_CLIENT_ID={CLIENT_ID}\nCTRADER_CLIENT_SECRET={CLIENT_SECRET}\n"),
    )
    .unwrap();
    chmod(&p, 0o600);
    p
}

fn oracle(args: &[String], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("CTRADER_CLIENT_ID")
        .env_remove("ORACLE_CTRADER_CLIENT_ID")
        .env("RUST_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run oracle");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn no_secret(out: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!out.contains(s), "a secret on the terminal:\n{out}");
    }
}

#[test]
fn oracle_auth_then_refresh_then_accounts_against_the_simulator() {
    let d = tmpdir("auth");
    let sim = start_sim(&d);
    let secrets = secrets_file(&d);
    let state = d.join("state");
    std::fs::create_dir(&state).unwrap();
    chmod(&state, 0o750);
    let token_file = oracle_ctrader::tokenfile::path_in(&state);
    let s = |v: &str| v.to_string();
    let common = |extra: &[String]| {
        let mut v = vec![
            s("auth"),
            s("--secrets"),
            secrets.display().to_string(),
            s("--token-file"),
            token_file.display().to_string(),
            s("--token-url"),
            format!("https://127.0.0.1:{}/apps/token", sim.port),
            s("--ca"),
            sim.ca.display().to_string(),
        ];
        v.extend_from_slice(extra);
        v
    };

    // the prompt: the URL is printed, the redirect URL pasted
    let redirect = allow(&sim);
    let code = redirect.split("code=").nth(1).unwrap().to_string();
    let out = oracle(
        &common(&[s("--redirect-uri"), s(REDIRECT)]),
        &format!("{redirect}\n"),
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains(&format!("client_id={CLIENT_ID}"))
            && all.contains("redirect_uri=https%3A%2F%2Flocalhost%2Fcallback")
            && all.contains("scope=trading"),
        "{all}"
    );
    assert!(all.contains("token pair written to"), "{all}");
    let first = tokenfile::load(&token_file).unwrap().expect("a token file");
    let tokens = token_file.parent().unwrap().to_path_buf();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(&tokens).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "oracle auth made a private folder");
    }
    no_secret(
        &all,
        &[
            CLIENT_SECRET,
            &code,
            first.access_token.expose(),
            first.refresh_token.expose(),
        ],
    );

    // --code with a used code: refused, the file untouched
    let out = oracle(
        &common(&[s("--redirect-uri"), s(REDIRECT), s("--code"), code.clone()]),
        "",
    );
    let all = text(&out);
    assert!(
        !out.status.success() && all.contains("INVALID_GRANT"),
        "{all}"
    );
    no_secret(&all, &[CLIENT_SECRET, &code]);
    assert_eq!(tokenfile::load(&token_file).unwrap().as_ref(), Some(&first));

    // a fresh code given with --code
    let out = oracle(
        &common(&[s("--redirect-uri"), s(REDIRECT), s("--code"), allow(&sim)]),
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let second = tokenfile::load(&token_file).unwrap().unwrap();
    assert_ne!(second, first);

    // a folder the group may read: refused before the refresh token is spent
    chmod(&tokens, 0o750);
    let out = oracle(&common(&[s("--refresh")]), "");
    let all = text(&out);
    assert!(
        !out.status.success() && all.contains("refusing") && all.contains("0750"),
        "{all}"
    );
    chmod(&tokens, 0o700);

    // --refresh: a new pair in the file
    let out = oracle(&common(&[s("--refresh")]), "");
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let third = tokenfile::load(&token_file).unwrap().unwrap();
    assert_ne!(third.refresh_token, second.refresh_token);
    no_secret(
        &all,
        &[
            CLIENT_SECRET,
            second.refresh_token.expose(),
            third.access_token.expose(),
            third.refresh_token.expose(),
        ],
    );

    // the spent refresh token is refused
    let old_file = d.join("old").join("ctrader-token.json");
    std::fs::create_dir(old_file.parent().unwrap()).unwrap();
    chmod(old_file.parent().unwrap(), 0o700);
    tokenfile::store(&old_file, &second).unwrap();
    let mut args = common(&[s("--refresh")]);
    args[4] = old_file.display().to_string();
    let out = oracle(&args, "");
    let all = text(&out);
    assert!(
        !out.status.success() && all.contains("INVALID_GRANT"),
        "{all}"
    );
    no_secret(&all, &[CLIENT_SECRET, second.refresh_token.expose()]);

    // the accounts the new access token can trade
    let out = oracle(
        &[
            s("accounts"),
            s("--host"),
            format!("127.0.0.1:{}", sim.port),
            s("--ca"),
            sim.ca.display().to_string(),
            s("--secrets"),
            secrets.display().to_string(),
            s("--token-file"),
            token_file.display().to_string(),
        ],
        "",
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let row = all
        .lines()
        .find(|l| l.starts_with("1001 "))
        .unwrap_or_else(|| panic!("no row for account 1001:\n{all}"));
    for want in ["demo", "7001001", "oracle-sim", "100000.00", "USD"] {
        assert!(row.contains(want), "{want} missing: {row}");
    }
    assert!(all.contains("scope trade"), "{all}");
    no_secret(&all, &[CLIENT_SECRET, third.access_token.expose()]);

    // with the spent token file, the list is refused with what to do
    let mut args: Vec<String> = vec![
        s("accounts"),
        s("--host"),
        format!("127.0.0.1:{}", sim.port),
        s("--ca"),
        sim.ca.display().to_string(),
        s("--secrets"),
        secrets.display().to_string(),
        s("--token-file"),
    ];
    args.push(old_file.display().to_string());
    let out = oracle(&args, "");
    let all = text(&out);
    assert!(
        !out.status.success() && all.contains("oracle auth --refresh"),
        "{all}"
    );
    drop(sim);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn oracle_auth_and_accounts_name_what_is_missing() {
    let d = tmpdir("auth-missing");
    let s = |v: &str| v.to_string();
    let token_file = d.join("ctrader-token.json").display().to_string();
    // no client id anywhere
    let empty = d.join("empty.env");
    std::fs::write(&empty, "# nothing\n").unwrap();
    chmod(&empty, 0o600);
    let out = oracle(
        &[
            s("auth"),
            s("--secrets"),
            empty.display().to_string(),
            s("--token-file"),
            token_file.clone(),
        ],
        "",
    );
    let all = text(&out);
    assert!(
        !out.status.success() && all.contains("CTRADER_CLIENT_ID") && all.contains("empty.env"),
        "{all}"
    );
    // no redirect URI for the code flow
    let secrets = secrets_file(&d);
    let out = oracle(
        &[
            s("auth"),
            s("--secrets"),
            secrets.display().to_string(),
            s("--token-file"),
            token_file.clone(),
        ],
        "",
    );
    let all = text(&out);
    assert!(
        !out.status.success() && all.contains("--redirect-uri"),
        "{all}"
    );
    // a plain-HTTP token endpoint
    let out = oracle(
        &[
            s("auth"),
            s("--refresh"),
            s("--secrets"),
            secrets.display().to_string(),
            s("--token-file"),
            token_file.clone(),
            s("--token-url"),
            s("http://127.0.0.1:1/apps/token"),
        ],
        "",
    );
    let all = text(&out);
    assert!(!out.status.success() && all.contains("https://"), "{all}");
    // --refresh with nothing to refresh
    let out = oracle(
        &[
            s("auth"),
            s("--refresh"),
            s("--secrets"),
            secrets.display().to_string(),
            s("--token-file"),
            token_file.clone(),
        ],
        "",
    );
    let all = text(&out);
    assert!(
        !out.status.success()
            && all.contains("CTRADER_REFRESH_TOKEN")
            && all.contains("oracle auth"),
        "{all}"
    );
    // accounts without any access token
    let out = oracle(
        &[
            s("accounts"),
            s("--secrets"),
            secrets.display().to_string(),
            s("--token-file"),
            token_file,
        ],
        "",
    );
    let all = text(&out);
    assert!(
        !out.status.success() && all.contains("CTRADER_ACCESS_TOKEN"),
        "{all}"
    );
    no_secret(&all, &[CLIENT_SECRET]);
    let _ = std::fs::remove_dir_all(&d);
}
