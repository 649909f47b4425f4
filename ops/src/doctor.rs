//! `oracle doctor`: deployment checks for the seed's VM. One line per check:
//!
//! ```text
//! OK   clock: chrony offset 0.012 ms (limit 10 ms)
//! FAIL secrets: /etc/oracle-trader/secrets.env mode 0644 is readable by others — fix: chown root:oracle /etc/oracle-trader/secrets.env && chmod 0640 /etc/oracle-trader/secrets.env
//! WARN clock: neither chronyc nor timedatectl found — fix: install chrony (apt install chrony) and enable it
//! ```
//!
//! A check that did not run says `SKIP` and why (`SKIP broker: not checked (no --broker)`).
//! The exit code is non-zero when any line is `FAIL` (`WARN` and `SKIP` do not fail). Every
//! check is a
//! plain function over its inputs so each OK and FAIL path is tested on temporary files; the only
//! network access is the optional TLS handshake to `--broker` (tests use the simulator on
//! loopback).

use std::fmt;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `oracle doctor` flags (embed with `#[command(flatten)]` or as a subcommand's args).
#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// Models folder: every `*.zip` must load.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// The executor configuration (`executor_config.json`) to validate.
    #[arg(long, default_value = "executor_config.json")]
    pub config: PathBuf,
    /// The secrets environment file, as `oracle executor --secrets` reads it: mode 0600 or 0640
    /// (the group may read it, nobody else; the deploy kit's group is `oracle`), keys
    /// ORACLE_IPC_TOKEN and CTRADER_* or ORACLE_CTRADER_*.
    #[arg(long, default_value = oracle_secrets::DEFAULT_SECRETS)]
    pub secrets: PathBuf,
    /// An IPC token file to check too (mode 0600: the executor's and the predictor's
    /// `--token-file` refuse any group or other access), when the token is not in the secrets
    /// file.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// State folders that need free disk space (journal, twin states, drift ledger);
    /// repeatable. The default is the executor's and the predictor's `--state` default.
    #[arg(long = "state", default_value = "state")]
    pub state: Vec<PathBuf>,
    /// Free space required in each state folder, MB.
    #[arg(long, visible_alias = "min-free-mib", default_value_t = 200)]
    pub min_free_mb: u64,
    /// Largest clock offset accepted, milliseconds (the seed's requirement: 10).
    #[arg(long, default_value_t = 10.0)]
    pub max_offset_ms: f64,
    /// The broker: HOST:PORT, `live`, `demo`, or `auto` (the account's host by its `isLive`, as
    /// the executor's `--broker auto`). A TLS handshake, then, when the secrets hold the
    /// application's credentials, a login as the executor's: application auth, the account
    /// (granted, of the host's kind, authorized), every enabled symbol at the broker, the access
    /// token's expiry and days left. Without it the checks say SKIP.
    #[arg(long)]
    pub broker: Option<String>,
    /// The cTrader token file the executor starts on [default: `tokens/ctrader-token.json` in
    /// the first --state folder]; the newest pair (it or the secrets') is the one checked.
    #[arg(long, value_name = "FILE")]
    pub ctrader_token_file: Option<PathBuf>,
    /// The live host `--broker live|auto` means.
    #[arg(
        long,
        default_value = "live.ctraderapi.com:5035",
        value_name = "HOST:PORT"
    )]
    pub live_host: String,
    /// The demo host `--broker demo|auto` means (`auto` reads the account list there).
    #[arg(
        long,
        default_value = "demo.ctraderapi.com:5035",
        value_name = "HOST:PORT"
    )]
    pub demo_host: String,
    /// CA (PEM) to trust for `--broker` instead of the public roots (e.g. the simulator's).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// TLS check timeout, milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Skip the clock check, which then says SKIP (containers without a clock daemon; never on
    /// the VM).
    #[arg(long)]
    pub skip_clock: bool,
    /// Print only WARN and FAIL lines (and the summary).
    #[arg(long)]
    pub quiet: bool,
}

/// The verdict of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Passed.
    Ok,
    /// Not fatal, but a person should look.
    Warn,
    /// The deployment is not fit to trade.
    Fail,
    /// Not run (the detail says why); not a failure.
    Skip,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// OK / WARN / FAIL / SKIP.
    pub status: Status,
    /// Short check name (`clock`, `config`, `model`, `secrets`, `disk`, `broker`).
    pub name: String,
    /// What was found.
    pub detail: String,
    /// How to fix it (empty for OK).
    pub fix: String,
}

impl Check {
    pub(crate) fn ok(name: &str, detail: impl Into<String>) -> Self {
        Self {
            status: Status::Ok,
            name: name.into(),
            detail: detail.into(),
            fix: String::new(),
        }
    }
    pub(crate) fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            status: Status::Warn,
            name: name.into(),
            detail: detail.into(),
            fix: fix.into(),
        }
    }
    pub(crate) fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            status: Status::Fail,
            name: name.into(),
            detail: detail.into(),
            fix: fix.into(),
        }
    }
    pub(crate) fn skip(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            status: Status::Skip,
            name: name.into(),
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.status {
            Status::Ok => "OK  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        };
        // One line, whatever the detail holds.
        let detail = self.detail.replace('\n', " ");
        write!(f, "{tag} {}: {detail}", self.name)?;
        if !self.fix.is_empty() {
            let what = if self.status == Status::Skip {
                "to run it"
            } else {
                "fix"
            };
            write!(f, " — {what}: {}", self.fix.replace('\n', " "))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// clock

/// Parses `chronyc tracking`: the `System time` offset in ms (signed: negative = slow) and
/// whether `Leap status` says the clock is not synchronised.
pub fn parse_chrony(text: &str) -> Option<(f64, bool)> {
    let field = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let sys = field("System time")?;
    let mut it = sys.split_whitespace();
    let secs: f64 = it.next()?.parse().ok()?;
    let _unit = it.next(); // "seconds"
    let sign = match it.next() {
        Some("slow") => -1.0,
        _ => 1.0,
    };
    let unsynced = field("Leap status").is_some_and(|v| v.eq_ignore_ascii_case("Not synchronised"));
    Some((sign * secs.abs() * 1000.0, unsynced))
}

/// The clock check from the tools' outputs: `chrony` = the stdout of a successful
/// `chronyc tracking` (None: not installed or failed), `ntp_synced` = `timedatectl show -p
/// NTPSynchronized --value` (None: not available).
pub fn check_clock(chrony: Option<&str>, ntp_synced: Option<&str>, max_ms: f64) -> Check {
    const N: &str = "clock";
    if let Some(text) = chrony {
        return match parse_chrony(text) {
            Some((_, true)) => Check::fail(
                N,
                "chrony: Leap status 'Not synchronised'",
                "check `chronyc sources -v` (reachable NTP servers? UDP 123 open?), then `chronyc makestep`",
            ),
            Some((ms, false)) if ms.abs() < max_ms => {
                Check::ok(N, format!("chrony offset {ms:+.3} ms (limit {max_ms} ms)"))
            }
            Some((ms, false)) => Check::fail(
                N,
                format!("chrony offset {ms:+.3} ms is not under {max_ms} ms"),
                "`chronyc makestep` to step the clock now; check `chronyc sources -v`",
            ),
            None => Check::fail(
                N,
                "`chronyc tracking` gave no 'System time' line",
                "start chronyd: systemctl enable --now chrony",
            ),
        };
    }
    match ntp_synced.map(str::trim) {
        Some("yes") => Check::warn(
            N,
            "timedatectl: NTP synchronized, but the offset cannot be measured without chrony",
            "install chrony (apt install chrony) so the offset can be checked against 10 ms",
        ),
        Some(v) => Check::fail(
            N,
            format!("timedatectl: NTPSynchronized={v}"),
            "install and enable chrony: apt install chrony && systemctl enable --now chrony",
        ),
        None => Check::warn(
            N,
            "neither chronyc nor timedatectl is available: the offset is unknown",
            "install chrony (apt install chrony) and enable it",
        ),
    }
}

fn run_tool(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------------------------------------
// executor_config.json

/// Validates `executor_config.json` with the executor's own rules (`oracle_executor::config`),
/// without rewriting it.
pub fn check_config(path: &Path) -> Check {
    const N: &str = "config";
    let shown = path.display();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return Check::fail(
                N,
                format!("{shown}: {e}"),
                format!(
                    "write {shown} (symbols at the top level: {{\"EURUSD\": {{\"enabled\": true, \"lot_weak\": 0.01, \"lot_moderate\": 0.03, \"lot_strong\": 0.05}}}}) or pass --config"
                ),
            );
        }
    };
    let v: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return Check::fail(
                N,
                format!("{shown}: not valid JSON: {e}"),
                "fix the JSON syntax at that line and column",
            );
        }
    };
    match oracle_executor::config::from_value(&v) {
        Ok(cfg) => {
            let enabled = cfg.symbols.values().filter(|s| s.enabled).count();
            if enabled == 0 {
                Check::warn(
                    N,
                    format!(
                        "{shown}: valid, {} symbol(s), none enabled",
                        cfg.symbols.len()
                    ),
                    "set \"enabled\": true on the symbols to trade",
                )
            } else {
                Check::ok(
                    N,
                    format!(
                        "{shown}: valid, {} symbol(s), {enabled} enabled",
                        cfg.symbols.len()
                    ),
                )
            }
        }
        Err(errs) => {
            let keys: Vec<String> = errs
                .iter()
                .map(|e| format!("{}: {}", e.key, e.msg))
                .collect();
            Check::fail(
                N,
                format!("{shown}: {} error(s): {}", errs.len(), keys.join("; ")),
                "correct the keys named (shell-executor/README.md, executor_config.json)",
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// config against models

/// Cross-checks the configuration against the models folder, the way the executor pairs them
/// (`oracle_executor::config::scan_models`): an enabled symbol with no model never trades (WARN),
/// a model whose symbol has no entry is added disabled at the next start and does not trade
/// until enabled (WARN). SKIP when either side could not be read (its own check says why).
pub fn check_config_models(config: &Path, models: &Path) -> Check {
    const N: &str = "config-models";
    let skip = |why: String| {
        Check::skip(
            N,
            format!("not cross-checked: {why}"),
            "fix the config and models lines above",
        )
    };
    let cfg = match std::fs::read(config)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| oracle_executor::config::from_value(&v).ok())
    {
        Some(c) => c,
        None => return skip(format!("{} is missing or not valid", config.display())),
    };
    let found = match oracle_executor::config::scan_models(models) {
        Ok(f) => f,
        Err(e) => return skip(format!("{}: {e}", models.display())),
    };
    let mut with_model: Vec<&str> = found.iter().map(|m| m.symbol.as_str()).collect();
    with_model.sort_unstable();
    with_model.dedup();
    let no_model: Vec<&str> = cfg
        .symbols
        .iter()
        .filter(|(s, c)| c.enabled && with_model.binary_search(&s.as_str()).is_err())
        .map(|(s, _)| s.as_str())
        .collect();
    let no_entry: Vec<&str> = with_model
        .iter()
        .copied()
        .filter(|s| !cfg.symbols.contains_key(*s))
        .collect();
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    if !no_model.is_empty() {
        problems.push(format!(
            "enabled with no model in {}: {}",
            models.display(),
            no_model.join(", ")
        ));
        fixes.push("copy their SYM_TF.zip models into the folder or set \"enabled\": false");
    }
    if !no_entry.is_empty() {
        problems.push(format!(
            "models with no entry in {} (a start adds them disabled): {}",
            config.display(),
            no_entry.join(", ")
        ));
        fixes.push("add an entry with lots and \"enabled\": true for the ones to trade");
    }
    if problems.is_empty() {
        Check::ok(
            N,
            format!(
                "{} model symbol(s), every one with an entry; every enabled symbol has a model",
                with_model.len()
            ),
        )
    } else {
        Check::warn(N, problems.join("; "), fixes.join("; "))
    }
}

// ---------------------------------------------------------------------------------------------
// models

/// One line per `*.zip` in `dir`: OK with symbol, timeframe and window, or FAIL naming the file
/// and the field (the loader's message).
pub fn check_models(dir: &Path) -> Vec<Check> {
    const N: &str = "model";
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return vec![Check::fail(
                "models",
                format!("{}: {e}", dir.display()),
                "create the folder and copy the SYM_TF.zip models into it, or pass --models",
            )];
        }
    };
    let mut zips: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("zip")))
        .collect();
    zips.sort();
    if zips.is_empty() {
        return vec![Check::fail(
            "models",
            format!("{}: no *.zip model", dir.display()),
            "copy the atomic model zips (SYM_TF.zip) into it",
        )];
    }
    zips.iter()
        .map(|z| match oracle_model::load_model(z) {
            Ok(m) => Check::ok(
                N,
                format!(
                    "{}: {} {} window {}; {}",
                    m.name,
                    m.metadata.symbol,
                    m.metadata.timeframe,
                    m.model.window(),
                    out_of_sample(&m.metadata.raw)
                ),
            ),
            Err(e) => {
                let hint = match &e.kind {
                    oracle_model::LoadErrorKind::WrongFileName { expected, .. } => format!(
                        "rename it to {expected} (check it is the model you meant) or remove it from the folder"
                    ),
                    // A seed-format zip is packed, in its place, by the command the loader
                    // names; `export` reads runtime zips only and would fail the same way.
                    oracle_model::LoadErrorKind::SeedFormat { .. } => format!(
                        "pack it: {} (training/README.md), or remove it from the folder",
                        oracle_model::pack_command(&z.display().to_string())
                    ),
                    _ => "replace it with a zip written by python -m oracle_training train or \
                          pack (training/README.md), or remove it from the folder"
                        .to_owned(),
                };
                Check::fail(N, e.to_string(), hint)
            }
        })
        .collect()
}

/// The model's out-of-sample figures as its metadata records them (`training.test`: the test
/// split's backtest, written by `python -m oracle_training train` and `train --bars`, or by
/// `annotate-test` for a model trained before, docs/backtest.md's JSON keys), or that it records
/// none.
pub fn out_of_sample(meta: &serde_json::Value) -> String {
    let t = &meta["training"]["test"];
    if !t.is_object() {
        return "out-of-sample: none recorded (python -m oracle_training annotate-test ZIP records the \
                test split's figures, the bars after its training range, without retraining; \
                oracle backtest on those bars measures them)"
            .to_owned();
    }
    let num = |k: &str, digits: usize| match t[k].as_f64() {
        Some(v) => format!("{v:.digits$}"),
        None => "n/a".to_owned(),
    };
    let span = match (t["first_decided"].as_str(), t["last_decided"].as_str()) {
        (Some(a), Some(b)) => format!("{a} to {b}"),
        _ => "no decided bar".to_owned(),
    };
    format!(
        "out-of-sample (test split, {span}, {} bars decided): return {}%, Sharpe {}, \
         max drawdown {}%, profit factor {}, {} trades",
        t["decided_bars"].as_u64().unwrap_or(0),
        num("total_return_pct", 2),
        num("sharpe", 2),
        num("max_drawdown_pct", 2),
        num("profit_factor", 2),
        t["trades"].as_u64().unwrap_or(0),
    )
}

// ---------------------------------------------------------------------------------------------
// credentials

/// The name of group `gid` from `/etc/group` (None if not found).
fn group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        let id: u32 = f.next()?.parse().ok()?;
        (id == gid).then(|| name.to_string())
    })
}

/// The mode rule of a secret file: the executor's ([`oracle_secrets::mode_verdict`]:
/// owner read/write, group read at most, nothing for others; 0600 and 0640 pass). `Ok` carries
/// the note and, for a group-readable file whose group is not `oracle` (the deploy kit's), a
/// warning: accepted, but every member of that group can read the secrets.
pub fn secret_mode_verdict(
    mode: u32,
    group: Option<&str>,
) -> Result<(String, Option<String>), String> {
    let note = oracle_secrets::mode_verdict(mode)?;
    let m = mode & 0o777;
    if m & 0o040 != 0 && group != Some("oracle") {
        let g = group.unwrap_or("?");
        return Ok((
            format!("{note}, group {g}"),
            Some(format!(
                "every member of group {g} can read it (the deploy kit's group is oracle)"
            )),
        ));
    }
    if m & 0o040 != 0 {
        return Ok((format!("{note}, group oracle"), None));
    }
    Ok((note, None))
}

/// Keys a secrets file must set (names only are ever printed, never values).
pub const REQUIRED_SECRETS: [&str; 1] = [oracle_secrets::IPC_TOKEN_KEY];

/// Checks a secrets env file (`KEY=value` lines) or a token file (`env = false`): it exists, its
/// mode follows [`secret_mode_verdict`], and (env files) it parses as the executor reads it and
/// the keys are set, broker keys under either spelling the executor accepts (`CTRADER_<NAME>`
/// or `ORACLE_CTRADER_<NAME>`).
pub fn check_secret_file(path: &Path, env: bool) -> Check {
    check_secret_file_beside(path, env, None)
}

/// [`check_secret_file`], with the cTrader token file the executor starts on (`oracle auth`
/// wrote it): when it holds a pair, the secrets need no access token (the executor takes the
/// file's pair).
pub fn check_secret_file_beside(path: &Path, env: bool, ctrader_tokens: Option<&Path>) -> Check {
    use oracle_secrets::{SecretsFile, mode_fix, parse};
    let n = if env { "secrets" } else { "token-file" };
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return Check::fail(
                n,
                format!("{shown}: {e}"),
                if env {
                    format!(
                        "install -m 0640 -o root -g oracle deploy/secrets.env.example {shown}, then fill it in"
                    )
                } else {
                    format!("write the token to {shown} with mode 0600")
                },
            );
        }
    };
    #[cfg(unix)]
    let (mode, gid) = {
        use std::os::unix::fs::MetadataExt;
        (meta.mode(), meta.gid())
    };
    #[cfg(not(unix))]
    let (mode, gid) = (0o600u32, 0u32);
    let group = group_name(gid);
    let (mode_note, group_warning) = match secret_mode_verdict(mode, group.as_deref()) {
        Ok(_) if !env && mode & 0o077 != 0 => {
            // The token file's readers (the executor's and the predictor's --token-file) take
            // it private to its owner only.
            return Check::fail(
                n,
                format!(
                    "{shown}: mode {:04o}: a token file must be private to its owner (the executor and the predictor refuse it)",
                    mode & 0o777
                ),
                format!("chmod 0600 {shown} (or put ORACLE_IPC_TOKEN in the secrets file)"),
            );
        }
        Ok(v) => v,
        Err(why) => return Check::fail(n, format!("{shown}: {why}"), mode_fix(path)),
    };
    let group_fix = format!("chown root:oracle {shown} (or chmod 0600 {shown})");
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return Check::fail(
                n,
                format!("{shown}: {mode_note}, but unreadable: {e}"),
                "run doctor as root or as the oracle user",
            );
        }
    };
    if !env {
        return if text.trim().is_empty() {
            Check::fail(n, format!("{shown}: empty"), "write the IPC token into it")
        } else if let Some(w) = group_warning {
            Check::warn(n, format!("{shown}: {mode_note}: {w}"), group_fix)
        } else {
            Check::ok(n, format!("{shown}: {mode_note}"))
        };
    }
    let vars = match parse(&text, &shown.to_string()) {
        Ok(v) => v,
        Err(e) => {
            return Check::fail(
                n,
                e,
                "write KEY=VALUE lines (# comments; optional export and quotes)",
            );
        }
    };
    let file = SecretsFile::from_vars(vars);
    let missing: Vec<&str> = REQUIRED_SECRETS
        .iter()
        .copied()
        .filter(|k| file.get(k).is_none())
        .collect();
    if !missing.is_empty() {
        return Check::fail(
            n,
            format!("{shown}: {mode_note}; not set: {}", missing.join(", ")),
            format!("set them in {shown} (a long random token: openssl rand -hex 32)"),
        );
    }
    let unknown = file.unknown_ctrader_keys();
    if !unknown.is_empty() {
        return Check::warn(
            n,
            format!(
                "{shown}: {mode_note}; keys the executor does not read: {}",
                unknown.join(", ")
            ),
            format!(
                "the broker keys are CTRADER_<NAME> or ORACLE_CTRADER_<NAME> with NAME one of {}",
                oracle_secrets::CTRADER_KEYS.join(", ")
            ),
        );
    }
    let stored_pair =
        ctrader_tokens.is_some_and(|t| matches!(oracle_ctrader::tokenfile::load(t), Ok(Some(_))));
    let live_missing: Vec<String> = file
        .live_missing()
        .into_iter()
        .filter(|k| !(stored_pair && k == "ORACLE_CTRADER_ACCESS_TOKEN"))
        .collect();
    if !live_missing.is_empty() {
        return Check::warn(
            n,
            format!(
                "{shown}: {mode_note}; live trading needs: {} (or the same names without ORACLE_)",
                live_missing.join(", ")
            ),
            format!(
                "fill them in {shown} from the cTrader Open API application (paper mode runs without them)"
            ),
        );
    }
    if let Some(w) = group_warning {
        return Check::warn(n, format!("{shown}: {mode_note}: {w}"), group_fix);
    }
    Check::ok(n, format!("{shown}: {mode_note}, all keys set"))
}

// ---------------------------------------------------------------------------------------------
// disk

/// Free MB available to unprivileged users on the file system holding `path`.
pub fn free_mb(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized, writable statvfs
    // that the call fills in; we read it only when the call reports success.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let bytes = u128::from(st.f_bavail) * u128::from(st.f_frsize);
    Ok(u64::try_from(bytes / 1_000_000).unwrap_or(u64::MAX))
}

/// Free space for a state folder (or, if it does not exist yet, its nearest existing parent).
pub fn check_disk(dir: &Path, min_mb: u64) -> Check {
    const N: &str = "disk";
    // A relative folder (the default `state`) not created yet is measured at the working
    // directory, where the executor and the predictor will create it.
    let existing = dir
        .ancestors()
        .find(|p| p.exists() && !p.as_os_str().is_empty())
        .or_else(|| dir.is_relative().then_some(Path::new(".")));
    let Some(at) = existing else {
        return Check::fail(
            N,
            format!("{}: no existing parent folder", dir.display()),
            "create the state folder (systemd's StateDirectory= does it)",
        );
    };
    let note = if at == dir {
        String::new()
    } else {
        format!(" (not created yet; measured at {})", at.display())
    };
    match free_mb(at) {
        Ok(mb) if mb >= min_mb => Check::ok(
            N,
            format!("{}: {mb} MB free (need {min_mb}){note}", dir.display()),
        ),
        Ok(mb) => Check::fail(
            N,
            format!(
                "{}: {mb} MB free, under the {min_mb} MB the journal and states need{note}",
                dir.display()
            ),
            "free disk space (journalctl --vacuum-size=100M, apt-get clean) or grow the volume",
        ),
        Err(e) => Check::fail(
            N,
            format!("{}: statvfs failed: {e}", dir.display()),
            "check the mount",
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// broker TLS

fn tls_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(p) => {
            let pem = std::fs::read(p).map_err(|e| format!("--ca {}: {e}", p.display()))?;
            let mut n = 0;
            for c in rustls_pemfile::certs(&mut pem.as_slice()) {
                let c = c.map_err(|e| format!("--ca {}: {e}", p.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("--ca {}: {e}", p.display()))?;
                n += 1;
            }
            if n == 0 {
                return Err(format!("--ca {}: no PEM certificate in it", p.display()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A TLS handshake with `endpoint` (`HOST:PORT`), verifying its certificate against `ca` (or the
/// public roots). Nothing is sent after the handshake.
pub fn check_broker(endpoint: &str, ca: Option<&Path>, timeout: Duration) -> Check {
    const N: &str = "broker";
    let fix_net = "check the host name and port (cTrader: live.ctraderapi.com:5035 / demo.ctraderapi.com:5035), DNS, and that outbound TCP to it is allowed";
    let Some((host, _port)) = endpoint.rsplit_once(':') else {
        return Check::fail(
            N,
            format!("{endpoint}: expected HOST:PORT"),
            "pass --broker HOST:PORT",
        );
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let cfg = match tls_config(ca) {
        Ok(c) => c,
        Err(e) => return Check::fail(N, e, "give a readable PEM file to --ca"),
    };
    let addr = match endpoint.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        Ok(None) | Err(_) => {
            return Check::fail(N, format!("{endpoint}: cannot resolve"), fix_net);
        }
    };
    let t0 = Instant::now();
    let mut tcp = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => return Check::fail(N, format!("{endpoint} ({addr}): TCP: {e}"), fix_net),
    };
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let name = match rustls::pki_types::ServerName::try_from(host.clone()) {
        Ok(n) => n,
        Err(e) => return Check::fail(N, format!("{host}: {e}"), "pass a DNS name or an IP"),
    };
    let mut conn = match rustls::ClientConnection::new(cfg, name) {
        Ok(c) => c,
        Err(e) => return Check::fail(N, format!("{endpoint}: {e}"), fix_net),
    };
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            let fix = if e.to_string().contains("certificate") || e.to_string().contains("Unknown")
            {
                "the server's certificate is not trusted: for the real broker use the public roots (no --ca); for the simulator pass its CA with --ca"
            } else {
                fix_net
            };
            return Check::fail(N, format!("{endpoint}: TLS handshake: {e}"), fix);
        }
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let ver = conn
        .protocol_version()
        .map_or_else(|| "?".to_string(), |v| format!("{v:?}"));
    conn.send_close_notify();
    let _ = conn.write_tls(&mut tcp);
    let _ = tcp.shutdown(std::net::Shutdown::Both);
    Check::ok(
        N,
        format!("{endpoint}: TLS handshake OK ({ver}, certificate verified, {ms:.1} ms)"),
    )
}

// ---------------------------------------------------------------------------------------------
// the whole run

/// Runs every check and returns the lines (in order).
pub fn checks(args: &DoctorArgs) -> Vec<Check> {
    let mut out = Vec::new();
    if args.skip_clock {
        out.push(Check::skip(
            "clock",
            "not checked (--skip-clock)",
            "run without --skip-clock",
        ));
    } else {
        let chrony = run_tool("chronyc", &["tracking"]);
        let ntp = if chrony.is_none() {
            run_tool("timedatectl", &["show", "-p", "NTPSynchronized", "--value"])
        } else {
            None
        };
        out.push(check_clock(
            chrony.as_deref(),
            ntp.as_deref(),
            args.max_offset_ms,
        ));
    }
    out.push(check_config(&args.config));
    out.extend(check_models(&args.models));
    out.push(check_config_models(&args.config, &args.models));
    out.push(check_secret_file_beside(
        &args.secrets,
        true,
        Some(&ctrader_token_file(args)),
    ));
    if let Some(t) = &args.token_file {
        out.push(check_secret_file(t, false));
    }
    for d in &args.state {
        out.push(check_disk(d, args.min_free_mb));
    }
    match &args.broker {
        Some(b) => out.extend(broker_checks(args, b)),
        None => out.push(Check::skip(
            "broker",
            "not checked (no --broker)",
            "pass --broker HOST:PORT (cTrader: live.ctraderapi.com:5035 or demo.ctraderapi.com:5035)",
        )),
    }
    out
}

/// The cTrader token file doctor checks: `--ctrader-token-file`, else the one in the first
/// `--state` folder (the executor's, in the deploy kit).
pub fn ctrader_token_file(args: &DoctorArgs) -> PathBuf {
    args.ctrader_token_file.clone().unwrap_or_else(|| {
        oracle_ctrader::tokenfile::path_in(
            args.state
                .first()
                .map_or(Path::new("state"), PathBuf::as_path),
        )
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The host `oracle executor --broker auto` chose at its last start for `account`
/// (`broker-host` in its state folder, the first `--state`): `(HOST:PORT, live)`, when it is one
/// of `--live-host`/`--demo-host`.
fn kept_host(args: &DoctorArgs, account: i64) -> Option<(String, bool)> {
    let dir = args.state.first()?;
    let text = std::fs::read_to_string(dir.join("broker-host")).ok()?;
    let mut f = text.split_whitespace();
    let (acc, live) = (
        f.next()?.parse::<i64>().ok()?,
        f.next()?.parse::<bool>().ok()?,
    );
    let want = if live {
        &args.live_host
    } else {
        &args.demo_host
    };
    (acc == account && f.next()? == want).then(|| (want.clone(), live))
}

/// `--broker`: the TLS handshake, then the login lines and the token line (see
/// [`crate::login`]).
fn broker_checks(args: &DoctorArgs, broker: &str) -> Vec<Check> {
    use crate::login;
    use oracle_secrets::SecretsFile;
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut out = Vec::new();
    let secrets = SecretsFile::read(&args.secrets).ok();
    let get = |k: &str| {
        secrets
            .as_ref()
            .and_then(|f| f.ctrader(k))
            .map(str::to_string)
    };
    let token_file = ctrader_token_file(args);
    let stored = oracle_ctrader::tokenfile::load(&token_file);
    let secrets_pair = get("ACCESS_TOKEN").is_some() && get("REFRESH_TOKEN").is_some();
    let access = match &stored {
        Ok(Some(p)) => Some(p.access_token.expose().to_string()),
        _ => get("ACCESS_TOKEN"),
    };
    let account_id = secrets.as_ref().and_then(|f| {
        oracle_secrets::account_id(None, Some(f), &|k| std::env::var(k).ok())
            .ok()
            .flatten()
    });
    let app = get("CLIENT_ID").zip(get("CLIENT_SECRET"));
    let tls = tls_config(args.ca.as_deref());
    // The endpoint, and the kind of host it is.
    let (endpoint, host_is_live) = match broker {
        "live" => (args.live_host.clone(), Some(true)),
        "demo" => (args.demo_host.clone(), Some(false)),
        "auto" => {
            let (Some((id, secret)), Some(access), Some(account), Ok(tls)) =
                (&app, &access, account_id, &tls)
            else {
                out.push(Check::fail(
                    "broker-host",
                    "--broker auto needs the application's credentials, an access token and the account id (secrets file or token file)",
                    "fill CTRADER_CLIENT_ID, CTRADER_CLIENT_SECRET and ORACLE_CTRADER_ACCOUNT_ID in the secrets file and run `oracle auth`, or pass --broker HOST:PORT",
                ));
                return out;
            };
            match login::account_is_live(
                &args.demo_host,
                tls.clone(),
                id,
                secret,
                access,
                account,
                timeout,
            ) {
                Ok(live) => {
                    let ep = if live {
                        &args.live_host
                    } else {
                        &args.demo_host
                    };
                    out.push(Check::ok(
                        "broker-host",
                        format!(
                            "auto: account {account} is a {} account (isLive, read at {}): {ep}",
                            if live { "live" } else { "demo" },
                            args.demo_host
                        ),
                    ));
                    (ep.clone(), Some(live))
                }
                Err(e) => match kept_host(args, account) {
                    // The executor does the same (an access token that expired while it was
                    // down: only its session refreshes it).
                    Some((ep, live)) => {
                        out.push(Check::warn(
                            "broker-host",
                            format!(
                                "auto: the account list could not be read ({e}); the host the executor chose at its last start: {ep} ({})",
                                if live { "live" } else { "demo" }
                            ),
                            "none if the lines below are OK (the executor uses the same host)",
                        ));
                        (ep, Some(live))
                    }
                    None => {
                        out.push(Check::fail(
                            "broker-host",
                            format!("auto: the account's kind could not be read: {e}"),
                            "fix the credentials (the lines below say which), or pass --broker HOST:PORT",
                        ));
                        return out;
                    }
                },
            }
        }
        other => (
            other.to_string(),
            other
                .rsplit_once(':')
                .and_then(|(h, _)| oracle_ctrader::accounts::host_is_live(h)),
        ),
    };
    let tls_line = check_broker(&endpoint, args.ca.as_deref(), timeout);
    let tls_ok = tls_line.status == Status::Ok;
    out.push(tls_line);
    let Some((id, secret)) = app else {
        out.push(Check::skip(
            "broker-login",
            format!(
                "not checked: no CTRADER_CLIENT_ID / CTRADER_CLIENT_SECRET in {} (paper mode needs none)",
                args.secrets.display()
            ),
            "set the application's credentials in the secrets file",
        ));
        return out;
    };
    out.push(match &stored {
        Ok(s) => login::check_token(s.as_ref(), &token_file, secrets_pair, now_ms()),
        Err(e) => Check::fail(
            "broker-token",
            e.clone(),
            format!(
                "chown oracle {} && chmod 0600 it (or remove it and run `oracle auth`)",
                token_file.display()
            ),
        ),
    });
    let (Some(access), true, Ok(tls)) = (access, tls_ok, tls) else {
        out.push(Check::skip(
            "broker-login",
            "not checked (no access token, or the TLS handshake failed)",
            "fix the lines above",
        ));
        return out;
    };
    let config = std::fs::read(&args.config)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| oracle_executor::config::from_value(&v).ok());
    out.extend(login::check_login(&login::Login {
        endpoint: &endpoint,
        host_is_live,
        tls,
        client_id: &id,
        client_secret: &secret,
        access_token: &access,
        refreshable: matches!(stored, Ok(Some(_))) || get("REFRESH_TOKEN").is_some(),
        account_id,
        config,
        timeout,
    }));
    out
}

/// `oracle doctor`: prints one line per check; exit code 1 if any FAIL, else 0.
pub fn run_doctor(args: &DoctorArgs) -> ExitCode {
    let lines = checks(args);
    let stdout = std::io::stdout();
    let mut o = stdout.lock();
    for c in &lines {
        if args.quiet && matches!(c.status, Status::Ok | Status::Skip) {
            continue;
        }
        let _ = writeln!(o, "{c}");
    }
    let fails = lines.iter().filter(|c| c.status == Status::Fail).count();
    let warns = lines.iter().filter(|c| c.status == Status::Warn).count();
    let skips = lines.iter().filter(|c| c.status == Status::Skip).count();
    let _ = writeln!(
        o,
        "doctor: {} check(s), {fails} FAIL, {warns} WARN, {skips} SKIP",
        lines.len()
    );
    if fails > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHRONY_OK: &str = "Reference ID    : A9FEA97B (169.254.169.123)\nStratum         : 4\nSystem time     : 0.000012345 seconds slow of NTP time\nLast offset     : -0.000001 seconds\nLeap status     : Normal\n";

    #[test]
    fn chrony_offsets_parse_with_sign() {
        let (ms, unsynced) = parse_chrony(CHRONY_OK).expect("parses");
        assert!((ms + 0.012345).abs() < 1e-9, "{ms}");
        assert!(!unsynced);
        let fast = CHRONY_OK.replace("0.000012345 seconds slow", "0.020000000 seconds fast");
        assert!((parse_chrony(&fast).expect("parses").0 - 20.0).abs() < 1e-9);
    }

    #[test]
    fn clock_ok_fail_warn() {
        assert_eq!(check_clock(Some(CHRONY_OK), None, 10.0).status, Status::Ok);
        let far = CHRONY_OK.replace("0.000012345", "0.015000000");
        let c = check_clock(Some(&far), None, 10.0);
        assert_eq!(c.status, Status::Fail);
        assert!(c.to_string().contains("— fix:"), "{c}");
        let unsynced = CHRONY_OK.replace("Normal", "Not synchronised");
        assert_eq!(
            check_clock(Some(&unsynced), None, 10.0).status,
            Status::Fail
        );
        assert_eq!(
            check_clock(Some("garbage"), None, 10.0).status,
            Status::Fail
        );
        assert_eq!(check_clock(None, Some("yes\n"), 10.0).status, Status::Warn);
        assert_eq!(check_clock(None, Some("no\n"), 10.0).status, Status::Fail);
        let none = check_clock(None, None, 10.0);
        assert_eq!(none.status, Status::Warn);
        assert!(none.fix.contains("install chrony"));
    }

    #[test]
    fn secret_modes() {
        assert_eq!(
            secret_mode_verdict(0o100600, Some("root")).map(|v| v.1),
            Ok(None)
        );
        assert_eq!(
            secret_mode_verdict(0o640, Some("oracle")).map(|v| v.1),
            Ok(None)
        );
        // The executor's rule accepts 0640 whatever the group: doctor accepts it too and warns
        // when the group is not the deploy kit's (was refused, unlike the executor).
        let (_, warning) = secret_mode_verdict(0o640, Some("users")).expect("accepted");
        assert!(warning.is_some_and(|w| w.contains("group users")));
        assert!(secret_mode_verdict(0o644, Some("oracle")).is_err());
        assert!(secret_mode_verdict(0o660, Some("oracle")).is_err());
        assert!(secret_mode_verdict(0o604, Some("root")).is_err());
    }

    #[test]
    fn line_format() {
        let c = Check::fail("disk", "x: 1 MB free", "free space");
        assert_eq!(c.to_string(), "FAIL disk: x: 1 MB free — fix: free space");
        assert_eq!(Check::ok("model", "A").to_string(), "OK   model: A");
    }
}
