//! `oracle doctor`'s checks, each OK and FAIL path on temporary files. The only network used is
//! the loopback simulator (`oracle-sim`, in process) for the TLS check.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oracle_ops::doctor::{self, Status};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oracle-ops-doctor-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn config_ok_and_fail_by_key() {
    let d = tmpdir("config");
    let good = d.join("good.json");
    std::fs::write(
        &good,
        r#"{"EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#,
    )
    .expect("write");
    let c = doctor::check_config(&good);
    assert_eq!(c.status, Status::Ok, "{c}");

    let bad = d.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"EURUSD": {"lot_weak": -1, "lot_moderate": 0.03, "lot_strong": 0.05}}"#,
    )
    .expect("write");
    let c = doctor::check_config(&bad);
    assert_eq!(c.status, Status::Fail, "{c}");
    assert!(c.detail.contains("EURUSD.lot_weak"), "{c}");

    let syntax = d.join("syntax.json");
    std::fs::write(&syntax, "{").expect("write");
    assert_eq!(doctor::check_config(&syntax).status, Status::Fail);
    assert_eq!(
        doctor::check_config(&d.join("absent.json")).status,
        Status::Fail
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_zip_named_for_another_model_fails_with_a_rename_hint() {
    let d = tmpdir("models-misnamed");
    std::fs::copy(
        repo().join("models/EURUSD_H1.zip"),
        d.join("SYNFX02_M5.zip"),
    )
    .expect("copy");
    let lines = doctor::check_models(&d);
    assert_eq!(lines.len(), 1);
    let c = &lines[0];
    assert_eq!(c.status, Status::Fail, "{c}");
    assert!(
        c.detail.starts_with("SYNFX02_M5.zip: ") && c.detail.contains("EURUSD_H1.zip"),
        "{c}"
    );
    assert!(c.fix.starts_with("rename it to EURUSD_H1.zip"), "{c}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn models_ok_per_zip_and_fail_naming_the_file() {
    let ok = doctor::check_models(&repo().join("models"));
    assert!(ok.len() >= 20, "{} lines", ok.len());
    assert!(ok.iter().all(|c| c.status == Status::Ok), "{ok:?}");

    let d = tmpdir("models");
    std::fs::copy(repo().join("models/EURUSD_H1.zip"), d.join("EURUSD_H1.zip")).expect("copy");
    std::fs::write(d.join("BROKEN_M5.zip"), b"not a zip").expect("write");
    let lines = doctor::check_models(&d);
    assert_eq!(lines.len(), 2);
    let bad = lines
        .iter()
        .find(|c| c.status == Status::Fail)
        .expect("a FAIL line");
    assert!(bad.detail.contains("BROKEN_M5.zip"), "{bad}");
    assert!(lines.iter().any(|c| c.status == Status::Ok));

    let empty = tmpdir("models-empty");
    assert_eq!(doctor::check_models(&empty)[0].status, Status::Fail);
    assert_eq!(
        doctor::check_models(&empty.join("absent"))[0].status,
        Status::Fail
    );
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn secrets_file_mode_and_keys() {
    let d = tmpdir("secrets");
    let full = "ORACLE_IPC_TOKEN=abc\nORACLE_CTRADER_CLIENT_ID=x\nORACLE_CTRADER_CLIENT_SECRET=y\nORACLE_CTRADER_ACCESS_TOKEN=z\nORACLE_CTRADER_ACCOUNT_ID=1\n";
    let f = d.join("secrets.env");
    write_mode(&f, full, 0o600);
    let c = doctor::check_secret_file(&f, true);
    assert_eq!(c.status, Status::Ok, "{c}");
    assert!(!c.to_string().contains("abc"), "never print a value: {c}");

    write_mode(&f, full, 0o644);
    let c = doctor::check_secret_file(&f, true);
    assert_eq!(c.status, Status::Fail, "{c}");
    assert!(c.fix.contains("chmod"), "{c}");

    write_mode(&f, "ORACLE_IPC_TOKEN=\n", 0o600);
    assert_eq!(doctor::check_secret_file(&f, true).status, Status::Fail);

    write_mode(&f, "ORACLE_IPC_TOKEN=abc\n", 0o600);
    assert_eq!(doctor::check_secret_file(&f, true).status, Status::Warn);

    assert_eq!(
        doctor::check_secret_file(&d.join("absent.env"), true).status,
        Status::Fail
    );

    let t = d.join("token");
    write_mode(&t, "tok\n", 0o600);
    assert_eq!(doctor::check_secret_file(&t, false).status, Status::Ok);
    write_mode(&t, "tok\n", 0o640);
    // A token file is private to its owner: the executor's and the predictor's --token-file
    // refuse a group-readable one, so doctor does too (whatever the group).
    let c = doctor::check_secret_file(&t, false);
    assert_eq!(c.status, Status::Fail, "{c}");
    assert!(c.fix.contains("chmod 0600"), "{c}");
    write_mode(&t, "tok\n", 0o660);
    assert_eq!(doctor::check_secret_file(&t, false).status, Status::Fail);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn disk_ok_and_fail() {
    let d = tmpdir("disk");
    let c = doctor::check_disk(&d, 1);
    assert_eq!(c.status, Status::Ok, "{c}");
    let c = doctor::check_disk(&d, u64::MAX / 2);
    assert_eq!(c.status, Status::Fail, "{c}");
    assert!(c.to_string().contains("— fix:"), "{c}");
    // A folder not created yet is measured at its nearest existing parent.
    let c = doctor::check_disk(&d.join("not/yet"), 1);
    assert_eq!(c.status, Status::Ok, "{c}");
    assert!(c.detail.contains("not created yet"), "{c}");
    // The default `--state` is relative (`state`): not created yet, it is measured at the
    // working directory.
    let c = doctor::check_disk(Path::new("state-not-created-yet/x"), 1);
    assert_eq!(c.status, Status::Ok, "{c}");
    assert!(c.detail.contains("measured at ."), "{c}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn broker_tls_against_the_loopback_simulator() {
    let d = tmpdir("tls");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut cfg = oracle_sim::SimConfig::default(); // 127.0.0.1:0
    cfg.symbols.push(oracle_sim::symbols::synthetic(
        "EURUSD",
        oracle_sim::bars::Period::M15,
        600,
        1_704_067_200_000,
        1,
    ));
    let sim = rt.block_on(oracle_sim::spawn(cfg)).expect("sim");
    assert!(sim.addr.ip().is_loopback());
    let ca = d.join("ca.pem");
    std::fs::write(&ca, &sim.ca_pem).expect("ca");
    let endpoint = sim.addr.to_string();
    let t = Duration::from_secs(5);

    let c = doctor::check_broker(&endpoint, Some(&ca), t);
    assert_eq!(c.status, Status::Ok, "{c}");
    let c = doctor::check_broker(&format!("localhost:{}", sim.addr.port()), Some(&ca), t);
    assert_eq!(c.status, Status::Ok, "{c}");

    // The public roots do not trust the simulator's CA.
    let c = doctor::check_broker(&endpoint, None, t);
    assert_eq!(c.status, Status::Fail, "{c}");
    assert!(c.fix.contains("--ca"), "{c}");

    // Nothing listening (a loopback port just released).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let c = doctor::check_broker(&format!("127.0.0.1:{port}"), Some(&ca), t);
    assert_eq!(c.status, Status::Fail, "{c}");

    // A bad --ca file.
    std::fs::write(d.join("empty.pem"), "").expect("write");
    let c = doctor::check_broker(&endpoint, Some(&d.join("empty.pem")), t);
    assert_eq!(c.status, Status::Fail, "{c}");

    rt.block_on(sim.shutdown());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn whole_run_exit_code_follows_fail_lines() {
    let d = tmpdir("run");
    let cfg = d.join("executor_config.json");
    std::fs::write(
        &cfg,
        r#"{"EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#,
    )
    .expect("write");
    let secrets = d.join("secrets.env");
    write_mode(&secrets, "ORACLE_IPC_TOKEN=abc\n", 0o600);
    let args = doctor::DoctorArgs {
        models: repo().join("models"),
        config: cfg,
        secrets: secrets.clone(),
        token_file: None,
        state: vec![d.join("state")],
        min_free_mb: 1,
        max_offset_ms: 10.0,
        broker: None,
        ctrader_token_file: None,
        live_host: "live.ctraderapi.com:5035".into(),
        demo_host: "demo.ctraderapi.com:5035".into(),
        ca: None,
        timeout_ms: 1000,
        skip_clock: true,
        quiet: false,
    };
    let lines = doctor::checks(&args);
    assert!(lines.iter().all(|c| c.status != Status::Fail), "{lines:?}");
    write_mode(&secrets, "ORACLE_IPC_TOKEN=abc\n", 0o666);
    let lines = doctor::checks(&args);
    assert_eq!(
        lines.iter().filter(|c| c.status == Status::Fail).count(),
        1,
        "{lines:?}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

fn doctor_args(d: &Path, config: PathBuf, secrets: PathBuf) -> doctor::DoctorArgs {
    doctor::DoctorArgs {
        models: repo().join("models"),
        config,
        secrets,
        token_file: None,
        state: vec![d.join("state")],
        min_free_mb: 1,
        max_offset_ms: 10.0,
        broker: None,
        ctrader_token_file: None,
        live_host: "live.ctraderapi.com:5035".into(),
        demo_host: "demo.ctraderapi.com:5035".into(),
        ca: None,
        timeout_ms: 1000,
        skip_clock: true,
        quiet: false,
    }
}

#[test]
fn doctor_says_skip_for_the_broker_check_without_broker() {
    let d = tmpdir("skip");
    let cfg = d.join("executor_config.json");
    std::fs::write(
        &cfg,
        r#"{"EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#,
    )
    .expect("write");
    let secrets = d.join("secrets.env");
    write_mode(&secrets, "ORACLE_IPC_TOKEN=abc\n", 0o600);
    let lines = doctor::checks(&doctor_args(&d, cfg, secrets));
    let line = |name: &str| {
        lines
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} line: {lines:?}"))
            .to_string()
    };
    let broker = line("broker");
    assert!(
        broker.starts_with("SKIP broker: not checked (no --broker)")
            && broker.contains("--broker HOST:PORT"),
        "{broker}"
    );
    assert!(line("clock").starts_with("SKIP clock: not checked (--skip-clock)"));
    // A SKIP is not a failure.
    assert!(lines.iter().all(|c| c.status != Status::Fail), "{lines:?}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn doctor_finds_enabled_symbols_without_a_model() {
    let d = tmpdir("cross");
    let models = d.join("models");
    std::fs::create_dir_all(&models).expect("dir");
    std::fs::copy(
        repo().join("models/EURUSD_H1.zip"),
        models.join("EURUSD_H1.zip"),
    )
    .expect("copy");
    std::fs::copy(
        repo().join("models/SYNIDX01_M15.zip"),
        models.join("SYNIDX01_M15.zip"),
    )
    .expect("copy");
    let cfg = d.join("executor_config.json");
    // GER40 enabled without a model; AAPL disabled without one (fine); SYNIDX01 has a model but
    // no entry.
    std::fs::write(
        &cfg,
        r#"{"EURUSD": {"lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05},
            "GER40": {"enabled": true, "lot_weak": 0.1, "lot_moderate": 0.2, "lot_strong": 0.3},
            "AAPL": {"enabled": false, "lot_weak": 1, "lot_moderate": 2, "lot_strong": 3}}"#,
    )
    .expect("write");
    let c = doctor::check_config_models(&cfg, &models);
    assert_eq!(c.status, Status::Warn, "{c}");
    assert!(
        c.detail.contains("enabled with no model") && c.detail.contains("GER40"),
        "{c}"
    );
    assert!(!c.detail.contains("AAPL"), "{c}");
    assert!(
        c.detail.contains("models with no entry") && c.detail.contains("SYNIDX01"),
        "{c}"
    );
    assert!(c.to_string().contains("— fix:"), "{c}");
    // Both sides agree: OK.
    std::fs::write(
        &cfg,
        r#"{"EURUSD": {"lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05},
            "SYNIDX01": {"enabled": false, "lot_weak": 0.1, "lot_moderate": 0.2, "lot_strong": 0.3}}"#,
    )
    .expect("write");
    assert_eq!(
        doctor::check_config_models(&cfg, &models).status,
        Status::Ok
    );
    // A config that does not load: SKIP (its own line says why), not a second FAIL.
    std::fs::write(&cfg, "{").expect("write");
    assert_eq!(
        doctor::check_config_models(&cfg, &models).status,
        Status::Skip
    );
    // The whole run carries the line.
    let secrets = d.join("secrets.env");
    write_mode(&secrets, "ORACLE_IPC_TOKEN=abc\n", 0o600);
    let mut args = doctor_args(&d, d.join("absent.json"), secrets);
    args.models = models;
    assert!(
        doctor::checks(&args)
            .iter()
            .any(|c| c.name == "config-models")
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn doctor_accepts_the_ctrader_keys_the_executor_accepts() {
    let d = tmpdir("keys");
    let f = d.join("secrets.env");
    // The executor reads CTRADER_<NAME> as well as ORACLE_CTRADER_<NAME>.
    write_mode(
        &f,
        "ORACLE_IPC_TOKEN=abc\nexport CTRADER_CLIENT_ID=x\nCTRADER_CLIENT_SECRET='y'\nCTRADER_ACCESS_TOKEN=\"z\"\nORACLE_CTRADER_ACCOUNT_ID=1\n",
        0o600,
    );
    let c = doctor::check_secret_file(&f, true);
    assert_eq!(c.status, Status::Ok, "{c}");
    // A key the executor would not read is named (a typo), never its value.
    write_mode(
        &f,
        "ORACLE_IPC_TOKEN=abc\nCTRADER_CLIENT_ID=x\nCTRADER_CLIENT_SECRET=y\nCTRADER_ACCESS_TOKEN=z\nCTRADER_ACCOUNT_ID=1\nCTRADER_CLIENTSECRET=val-SECRET\n",
        0o600,
    );
    let c = doctor::check_secret_file(&f, true);
    assert_eq!(c.status, Status::Warn, "{c}");
    assert!(
        c.detail.contains("CTRADER_CLIENTSECRET") && !c.to_string().contains("val-SECRET"),
        "{c}"
    );
    // A line the executor cannot parse fails here too, by line number.
    write_mode(&f, "ORACLE_IPC_TOKEN=abc\nnot a pair SECRET\n", 0o600);
    let c = doctor::check_secret_file(&f, true);
    assert_eq!(c.status, Status::Fail, "{c}");
    assert!(
        c.detail.contains("secrets.env:2") && !c.to_string().contains("SECRET"),
        "{c}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn secrets_file_0640_is_accepted_by_executor_and_doctor() {
    let d = tmpdir("0640");
    let f = d.join("secrets.env");
    let text = "ORACLE_IPC_TOKEN=abc\nORACLE_CTRADER_CLIENT_ID=x\nORACLE_CTRADER_CLIENT_SECRET=y\nORACLE_CTRADER_ACCESS_TOKEN=z\nORACLE_CTRADER_ACCOUNT_ID=77\n";
    for (mode, accepted) in [
        (0o600, true),
        (0o640, true),
        (0o400, true),
        (0o644, false),
        (0o660, false),
    ] {
        write_mode(&f, text, mode);
        let executor = oracle_secrets::SecretsFile::read(&f);
        let doctor = doctor::check_secret_file(&f, true);
        assert_eq!(
            executor.is_ok(),
            accepted,
            "{mode:o}: executor {executor:?}"
        );
        assert_eq!(
            doctor.status != Status::Fail,
            accepted,
            "{mode:o}: doctor {doctor}"
        );
        if accepted {
            let cli = <oracle_executor::shell::Cli as clap::Parser>::try_parse_from([
                "oracle-executor".as_ref(),
                "--broker".as_ref(),
                "127.0.0.1:1".as_ref(),
                "--secrets".as_ref(),
                f.as_os_str(),
            ])
            .expect("parses");
            let rc = cli.run_config().expect("the executor starts on it");
            assert_eq!(rc.broker.map(|b| b.account_id), Some(77));
        }
    }
    // One default file name: doctor's default is the executor's documented secrets file.
    let args = <DoctorCli as clap::Parser>::parse_from(["doctor"]);
    assert_eq!(args.a.secrets, Path::new(oracle_secrets::DEFAULT_SECRETS));
    // `--state` has the executor's default.
    let ex = <oracle_executor::shell::Cli as clap::Parser>::parse_from(["oracle-executor"]);
    assert_eq!(args.a.state, vec![ex.state]);
    let _ = std::fs::remove_dir_all(&d);
}

#[derive(clap::Parser)]
struct DoctorCli {
    #[command(flatten)]
    a: doctor::DoctorArgs,
}

#[test]
fn a_seed_format_zip_fails_with_the_pack_command_for_its_path() {
    // The seed's format: its SB3 and hmmlearn members, the seed's metadata fields only.
    use std::io::{Read, Write};
    let bytes = std::fs::read(repo().join("models/EURUSD_H1.zip")).expect("models/EURUSD_H1.zip");
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("zip");
    let mut meta: serde_json::Value = serde_json::from_slice(src.comment()).expect("metadata");
    meta.as_object_mut().expect("object").retain(|k, _| {
        [
            "format_version",
            "generated_at",
            "symbol",
            "training_config",
            "hmm_config",
            "rl_config",
            "actions",
        ]
        .contains(&k.as_str())
    });
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for name in ["EURUSD_H1_hmm.pkl", "EURUSD_H1_ppo.zip"] {
        let mut data = Vec::new();
        src.by_name(name)
            .expect("seed member")
            .read_to_end(&mut data)
            .expect("read");
        w.start_file(name, zip::write::SimpleFileOptions::default())
            .expect("start");
        w.write_all(&data).expect("write");
    }
    w.set_comment(meta.to_string());
    let d = tmpdir("models-seed");
    let path = d.join("EURUSD_H1.zip");
    std::fs::write(&path, w.finish().expect("finish").into_inner()).expect("write");
    let lines = doctor::check_models(&d);
    let c = &lines[0];
    assert_eq!(c.status, Status::Fail, "{c}");
    assert!(c.detail.contains("seed-format model zip"), "{c}");
    let command = format!(
        "python -m oracle_training pack --from {} --bars TRAINING_BARS.csv",
        path.display()
    );
    assert!(c.fix.contains(&command), "{c}");
    assert!(!c.fix.contains("oracle_training export"), "{c}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_models_line_gives_its_out_of_sample_figures_or_says_it_records_none() {
    // Every bundled model records its test split (the bars after data.train, never trained
    // on; `python -m oracle_training annotate-test`): its line gives the figures.
    let bundled = doctor::check_models(&repo().join("models"));
    assert_eq!(bundled.len(), 20);
    for c in &bundled {
        assert_eq!(c.status, Status::Ok, "{c}");
        assert!(
            c.detail.contains("; out-of-sample (test split, ")
                && c.detail.contains(" 2050 bars decided): return "),
            "{c}"
        );
    }
    let eurusd = bundled
        .iter()
        .find(|c| c.detail.starts_with("EURUSD_H1"))
        .expect("EURUSD_H1 line");
    let zip = std::fs::File::open(repo().join("models/EURUSD_H1.zip")).expect("zip");
    let zip = zip::ZipArchive::new(zip).expect("readable zip");
    let meta: serde_json::Value = serde_json::from_slice(zip.comment()).expect("metadata");
    assert!(
        eurusd.detail.ends_with(&doctor::out_of_sample(&meta)),
        "{eurusd}"
    );
    // A model that records none says so, and how to record them without retraining.
    let none = doctor::out_of_sample(&serde_json::json!({"training": {}}));
    assert!(
        none.starts_with("out-of-sample: none recorded (python -m oracle_training annotate-test "),
        "{none}"
    );

    // A model trained by `train --bars` keeps its test split's backtest under training.test
    // (docs/backtest.md's JSON keys).
    let meta = serde_json::json!({"training": {"test": {
        "decided_bars": 812, "first_decided": "2024-03-01T00:00:00Z",
        "last_decided": "2024-06-28T20:00:00Z", "total_return_pct": 3.456,
        "sharpe": 1.234, "max_drawdown_pct": 2.5, "profit_factor": null, "trades": 41
    }}});
    assert_eq!(
        doctor::out_of_sample(&meta),
        "out-of-sample (test split, 2024-03-01T00:00:00Z to 2024-06-28T20:00:00Z, 812 bars \
         decided): return 3.46%, Sharpe 1.23, max drawdown 2.50%, profit factor n/a, 41 trades"
    );
}

// ---------------------------------------------------------------------------------------------
// doctor --broker: the login over the simulator (TLS)

use oracle_sim::config::{
    DEFAULT_ACCESS_TOKEN, DEFAULT_ACCOUNT_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
};

/// A simulator with `symbols`, its one account live or demo; the runtime holding it.
fn sim_with(symbols: &[&str], live: bool) -> (tokio::runtime::Runtime, oracle_sim::SimHandle) {
    sim_with_token(symbols, live, 2_628_000)
}

/// [`sim_with`], its access token expiring `expires_in_s` after the start (negative: expired).
fn sim_with_token(
    symbols: &[&str],
    live: bool,
    expires_in_s: i64,
) -> (tokio::runtime::Runtime, oracle_sim::SimHandle) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut cfg = oracle_sim::SimConfig::default();
    for s in symbols {
        // `US500=US500.cash`: the bars under the model's name, listed under the broker's.
        let s = match s.split_once('=') {
            Some((model, broker)) => {
                cfg.broker
                    .broker_names
                    .insert(model.to_string(), broker.to_string());
                model
            }
            None => s,
        };
        cfg.symbols.push(oracle_sim::symbols::synthetic(
            s,
            oracle_sim::bars::Period::M15,
            600,
            1_704_067_200_000,
            1,
        ));
    }
    for a in &mut cfg.broker.accounts {
        a.is_live = live;
    }
    cfg.broker.tokens[0].expires_in_s = expires_in_s;
    let sim = rt.block_on(oracle_sim::spawn(cfg)).expect("sim");
    (rt, sim)
}

/// A deployment folder for the simulator: config with `enabled`, secrets (client id and secret
/// `secret`, account id, the sim's pair), CA, state folder; doctor's arguments with `--broker`.
fn broker_deployment(
    tag: &str,
    sim: &oracle_sim::SimHandle,
    enabled: &[&str],
    client_secret: &str,
    account: i64,
) -> (PathBuf, doctor::DoctorArgs) {
    let d = tmpdir(tag);
    let cfg = d.join("executor_config.json");
    let entries: Vec<String> = enabled
        .iter()
        .map(|s| match s.split_once('=') {
            Some((model, broker)) => format!(
                r#""{model}": {{"enabled": true, "broker_symbol": "{broker}", "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#
            ),
            None => format!(
                r#""{s}": {{"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05}}"#
            ),
        })
        .collect();
    std::fs::write(&cfg, format!("{{{}}}", entries.join(", "))).expect("write");
    let secrets = d.join("secrets.env");
    write_mode(
        &secrets,
        &format!(
            "ORACLE_IPC_TOKEN=abc\nORACLE_CTRADER_CLIENT_ID={DEFAULT_CLIENT_ID}\nORACLE_CTRADER_CLIENT_SECRET={client_secret}\nORACLE_CTRADER_ACCESS_TOKEN={DEFAULT_ACCESS_TOKEN}\nORACLE_CTRADER_REFRESH_TOKEN={DEFAULT_REFRESH_TOKEN}\nORACLE_CTRADER_ACCOUNT_ID={account}\n"
        ),
        0o600,
    );
    let ca = d.join("ca.pem");
    std::fs::write(&ca, &sim.ca_pem).expect("ca");
    let state = d.join("state");
    std::fs::create_dir_all(&state).expect("state");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let mut args = doctor_args(&d, cfg, secrets);
    args.state = vec![state];
    args.broker = Some(sim.addr.to_string());
    args.ca = Some(ca);
    args.timeout_ms = 5000;
    (d, args)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn line(lines: &[doctor::Check], name: &str) -> doctor::Check {
    lines
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} line: {lines:#?}"))
        .clone()
}

#[test]
fn doctor_broker_logs_in_checks_the_symbols_and_says_the_token_days_left_over_the_simulator() {
    // FTMO's names: US500 is listed as `US500.cash`; the config says so with broker_symbol.
    let (rt, sim) = sim_with(&["EURUSD", "US500=US500.cash"], false);
    let (d, args) = broker_deployment(
        "login-ok",
        &sim,
        &["EURUSD", "US500=US500.cash"],
        DEFAULT_CLIENT_SECRET,
        DEFAULT_ACCOUNT_ID,
    );
    // The token file the executor starts on: the sim's pair, 12.5 days left.
    let pair = oracle_ctrader::tokenfile::TokenPair {
        access_token: oracle_ctrader::Secret::new(DEFAULT_ACCESS_TOKEN),
        refresh_token: oracle_ctrader::Secret::new(DEFAULT_REFRESH_TOKEN),
        obtained_at_ms: now_ms() - 1000,
        expires_at_ms: now_ms() + 12 * 86_400_000 + 43_200_000,
    };
    let tokens = doctor::ctrader_token_file(&args);
    oracle_ctrader::tokenfile::prepare_folder(&tokens).expect("tokens folder");
    oracle_ctrader::tokenfile::store(&tokens, &pair).expect("store");
    let lines = doctor::checks(&args);
    for name in [
        "broker",
        "broker-app",
        "broker-account",
        "broker-symbols",
        "broker-token",
    ] {
        let c = line(&lines, name);
        assert_eq!(c.status, Status::Ok, "{c}");
    }
    let acc = line(&lines, "broker-account").to_string();
    assert!(
        acc.contains(&format!("account {DEFAULT_ACCOUNT_ID} authorized"))
            && acc.contains("a demo account"),
        "{acc}"
    );
    let sym = line(&lines, "broker-symbols").to_string();
    assert!(sym.contains("US500 as US500.cash"), "{sym}");
    let tok = line(&lines, "broker-token").to_string();
    assert!(tok.contains("12 days left"), "{tok}");
    // No secret on any line.
    let all: String = lines.iter().map(|c| c.to_string()).collect();
    for secret in [
        DEFAULT_ACCESS_TOKEN,
        DEFAULT_REFRESH_TOKEN,
        DEFAULT_CLIENT_SECRET,
    ] {
        assert!(!all.contains(secret), "a secret printed: {all}");
    }
    rt.block_on(sim.shutdown());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn doctor_broker_names_the_failing_step_with_its_fix() {
    let (rt, sim) = sim_with(&["EURUSD", "US500=US500.cash"], false);
    // A wrong client secret: application auth fails, the steps after it say SKIP.
    let (d, args) = broker_deployment(
        "login-app",
        &sim,
        &["EURUSD"],
        "not-the-secret",
        DEFAULT_ACCOUNT_ID,
    );
    let lines = doctor::checks(&args);
    let app = line(&lines, "broker-app");
    assert_eq!(app.status, Status::Fail, "{app}");
    assert!(app.fix.contains("CTRADER_CLIENT_SECRET"), "{app}");
    assert_eq!(line(&lines, "broker-account").status, Status::Skip);
    assert_eq!(line(&lines, "broker-symbols").status, Status::Skip);
    // No token file: the secrets' pair, expiry unknown (WARN, not FAIL).
    let tok = line(&lines, "broker-token");
    assert_eq!(tok.status, Status::Warn, "{tok}");
    assert!(tok.fix.contains("oracle auth"), "{tok}");
    let _ = std::fs::remove_dir_all(&d);

    // An account the token does not grant: named, with the granted ones.
    let (d, args) = broker_deployment(
        "login-account",
        &sim,
        &["EURUSD"],
        DEFAULT_CLIENT_SECRET,
        4242,
    );
    let lines = doctor::checks(&args);
    assert_eq!(line(&lines, "broker-app").status, Status::Ok);
    let acc = line(&lines, "broker-account");
    assert_eq!(acc.status, Status::Fail, "{acc}");
    assert!(
        acc.detail.contains("account 4242 is not among")
            && acc.detail.contains(&format!("{DEFAULT_ACCOUNT_ID} demo")),
        "{acc}"
    );
    assert!(acc.fix.contains("oracle accounts"), "{acc}");
    let _ = std::fs::remove_dir_all(&d);

    // FTMO's index names: `US500` (no broker_symbol) is not at the broker, `US500.cash` is named
    // as the close match.
    let (d, args) = broker_deployment(
        "login-symbols",
        &sim,
        &["EURUSD", "US500"],
        DEFAULT_CLIENT_SECRET,
        DEFAULT_ACCOUNT_ID,
    );
    let lines = doctor::checks(&args);
    assert_eq!(line(&lines, "broker-account").status, Status::Ok);
    let sym = line(&lines, "broker-symbols");
    assert_eq!(sym.status, Status::Fail, "{sym}");
    assert!(
        sym.detail
            .contains("US500: not at the broker; close matches: US500.cash")
            && !sym.detail.contains("EURUSD"),
        "{sym}"
    );
    assert!(sym.fix.contains("broker_symbol"), "{sym}");
    let _ = std::fs::remove_dir_all(&d);
    rt.block_on(sim.shutdown());
}

#[test]
fn doctor_broker_refuses_a_live_account_on_the_demo_host_naming_the_live_host_and_auto_picks_it() {
    let (rt, sim) = sim_with(&["EURUSD"], true);
    let (d, args) = broker_deployment(
        "login-live",
        &sim,
        &["EURUSD"],
        DEFAULT_CLIENT_SECRET,
        DEFAULT_ACCOUNT_ID,
    );
    // The simulator standing in for the demo host (`--broker demo` with --demo-host at it).
    let mut demo = args.clone();
    demo.broker = Some("demo".into());
    demo.demo_host = sim.addr.to_string();
    let lines = doctor::checks(&demo);
    let acc = line(&lines, "broker-account");
    assert_eq!(acc.status, Status::Fail, "{acc}");
    assert!(
        acc.detail.contains("is a live account") && acc.detail.contains("demo host"),
        "{acc}"
    );
    assert!(
        acc.fix.contains("--broker live.ctraderapi.com:5035"),
        "{acc}"
    );
    // `--broker auto`: the account list (read at the demo host) says live: the live host.
    let mut auto = args.clone();
    auto.broker = Some("auto".into());
    auto.demo_host = sim.addr.to_string();
    auto.live_host = format!("localhost:{}", sim.addr.port());
    let lines = doctor::checks(&auto);
    let host = line(&lines, "broker-host");
    assert_eq!(host.status, Status::Ok, "{host}");
    assert!(
        host.detail.contains("is a live account")
            && host
                .detail
                .ends_with(&format!("localhost:{}", sim.addr.port())),
        "{host}"
    );
    for name in ["broker", "broker-app", "broker-account", "broker-symbols"] {
        let c = line(&lines, name);
        assert_eq!(c.status, Status::Ok, "{c}");
    }
    assert!(
        line(&lines, "broker").detail.starts_with("localhost:"),
        "{lines:#?}"
    );
    rt.block_on(sim.shutdown());
    let _ = std::fs::remove_dir_all(&d);
}

// ---------------------------------------------------------------------------------------------
// the deploy kit

/// `KEY=` lines of a unit, continuation lines (`\`) joined, each split into words.
fn unit_commands(text: &str, key: &str) -> Vec<Vec<String>> {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key}=")))
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The executor's unit: its doctor checks the executor's own state folder (the token file the
/// executor starts on and stores refreshed pairs in) and the account's host (`--broker auto`,
/// as the executor); the token file lies under a path the service may write under
/// `ProtectSystem=strict`.
#[test]
fn the_executor_unit_doctors_its_token_file_and_host_and_may_write_the_token_file() {
    #[derive(clap::Parser)]
    struct Doctor {
        #[command(flatten)]
        args: doctor::DoctorArgs,
    }
    use clap::Parser as _;
    let text =
        std::fs::read_to_string(repo().join("deploy/oracle-executor.service")).expect("unit");
    let pre = unit_commands(&text, "ExecStartPre");
    let doctor_cmd = pre
        .iter()
        .find(|c| c.get(1).map(String::as_str) == Some("doctor"))
        .expect("an ExecStartPre runs oracle doctor");
    let d = Doctor::try_parse_from(doctor_cmd.iter().skip(1)).expect("doctor's flags parse");
    let start = unit_commands(&text, "ExecStart");
    let exec = &start[0];
    assert_eq!(
        exec.get(1).map(String::as_str),
        Some("executor"),
        "{exec:?}"
    );
    let cli = oracle_executor::shell::Cli::try_parse_from(exec.iter().skip(1))
        .expect("the executor's flags parse");
    // The token file doctor checks is the executor's.
    assert_eq!(
        doctor::ctrader_token_file(&d.args),
        oracle_ctrader::tokenfile::path_in(&cli.state)
    );
    // Both pick the host by the account.
    assert_eq!(d.args.broker.as_deref(), Some("auto"));
    assert_eq!(cli.broker.as_deref(), Some("auto"));
    // Every state folder doctor measures is one the services write.
    let writable: Vec<PathBuf> = unit_commands(&text, "ReadWritePaths")
        .concat()
        .into_iter()
        .map(PathBuf::from)
        .collect();
    assert!(text.contains("ProtectSystem=strict"));
    let token_file = oracle_ctrader::tokenfile::path_in(&cli.state);
    for p in d.args.state.iter().chain([&token_file]) {
        assert!(
            writable.iter().any(|w| p.starts_with(w)),
            "{} is not under ReadWritePaths {writable:?}",
            p.display()
        );
    }
    // And the config doctor validates is the executor's.
    assert_eq!(d.args.config, cli.config);
}

/// After `oracle auth` the token pair is in the executor's token file: the secrets then need no
/// access token (the executor starts on the file's pair), and doctor does not ask for one.
#[test]
fn secrets_without_tokens_are_enough_when_the_token_file_holds_a_pair() {
    let d = tmpdir("secrets-token-file");
    let secrets = d.join("secrets.env");
    write_mode(
        &secrets,
        "ORACLE_IPC_TOKEN=abc\nORACLE_CTRADER_CLIENT_ID=id\nORACLE_CTRADER_CLIENT_SECRET=s\nORACLE_CTRADER_ACCOUNT_ID=7\n",
        0o600,
    );
    let tokens = oracle_ctrader::tokenfile::path_in(&d.join("state"));
    // No token file yet: live trading needs the access token.
    let c = doctor::check_secret_file_beside(&secrets, true, Some(&tokens));
    assert_eq!(c.status, Status::Warn, "{c}");
    assert!(c.detail.contains("ORACLE_CTRADER_ACCESS_TOKEN"), "{c}");
    // `oracle auth` stored a pair: the secrets are complete.
    std::fs::create_dir_all(d.join("state")).expect("state");
    std::fs::set_permissions(d.join("state"), std::fs::Permissions::from_mode(0o750))
        .expect("chmod");
    oracle_ctrader::tokenfile::prepare_folder(&tokens).expect("tokens folder");
    oracle_ctrader::tokenfile::store(
        &tokens,
        &oracle_ctrader::tokenfile::TokenPair {
            access_token: oracle_ctrader::Secret::new("a"),
            refresh_token: oracle_ctrader::Secret::new("r"),
            obtained_at_ms: 1,
            expires_at_ms: 2,
        },
    )
    .expect("store");
    let c = doctor::check_secret_file_beside(&secrets, true, Some(&tokens));
    assert_eq!(c.status, Status::Ok, "{c}");
    let _ = std::fs::remove_dir_all(&d);
}

/// An access token expired while the executor was down (a kill -9 before its refresh request):
/// the executor's start refreshes it, so the doctor the unit runs before that start must not
/// stop it. The login says WARN; `--broker auto` takes the host the executor chose at its last
/// start (it cannot read the list either).
#[test]
fn doctor_broker_warns_not_fails_on_an_expired_access_token_the_executor_refreshes() {
    let (rt, sim) = sim_with_token(&["EURUSD"], true, -60);
    let (d, args) = broker_deployment(
        "login-expired",
        &sim,
        &["EURUSD"],
        DEFAULT_CLIENT_SECRET,
        DEFAULT_ACCOUNT_ID,
    );
    let lines = doctor::checks(&args);
    let acc = line(&lines, "broker-account");
    assert_eq!(acc.status, Status::Warn, "{acc}");
    assert!(acc.detail.contains("OA_AUTH_TOKEN_EXPIRED"), "{acc}");
    assert!(lines.iter().all(|c| c.status != Status::Fail), "{lines:#?}");
    // --broker auto: the list cannot be read; with no host kept, FAIL.
    let live_host = format!("localhost:{}", sim.addr.port());
    let mut auto = args.clone();
    auto.broker = Some("auto".into());
    auto.demo_host = sim.addr.to_string();
    auto.live_host = live_host.clone();
    let lines = doctor::checks(&auto);
    assert_eq!(
        line(&lines, "broker-host").status,
        Status::Fail,
        "{lines:#?}"
    );
    // The host the executor kept at its last start: used, WARN, the login goes on there.
    std::fs::write(
        auto.state[0].join("broker-host"),
        format!("{DEFAULT_ACCOUNT_ID} true {live_host}\n"),
    )
    .expect("write");
    let lines = doctor::checks(&auto);
    let host = line(&lines, "broker-host");
    assert_eq!(host.status, Status::Warn, "{host}");
    assert!(host.detail.contains(&live_host), "{host}");
    assert!(
        line(&lines, "broker").detail.starts_with(&live_host),
        "{lines:#?}"
    );
    assert!(lines.iter().all(|c| c.status != Status::Fail), "{lines:#?}");
    rt.block_on(sim.shutdown());
    let _ = std::fs::remove_dir_all(&d);
}
