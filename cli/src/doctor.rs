//! `oracle doctor`: deployment checks for the seed's VM (issue 8). One line per check, `OK` or
//! `FAIL` with the fix; exit code 0 only when nothing failed (`SKIP` lines do not fail).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// `oracle doctor` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// Models folder: every zip must load.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// The executor configuration to validate.
    #[arg(long, default_value = "executor_config.json")]
    pub config: PathBuf,
    /// The secrets environment file (must not be readable by others).
    #[arg(long, default_value = "/etc/oracle-trader/secrets.env")]
    pub secrets: PathBuf,
    /// Folder of the journal and the twin states (free disk space).
    #[arg(long, default_value = "state")]
    pub state: PathBuf,
    /// Free space required in the state folder, MiB.
    #[arg(long, default_value_t = 200)]
    pub min_free_mib: u64,
    /// Largest clock offset accepted, milliseconds (the seed: 10).
    #[arg(long, default_value_t = 10.0)]
    pub max_offset_ms: f64,
    /// Broker endpoint HOST:PORT to reach over TLS (skipped when absent).
    #[arg(long)]
    pub broker: Option<String>,
    /// CA (PEM) to trust for --broker instead of the public roots (e.g. the simulator's).
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

enum Outcome {
    Ok(String),
    Fail(String),
    Skip(String),
}

fn line(name: &str, o: &Outcome) -> bool {
    let (tag, text, ok) = match o {
        Outcome::Ok(t) => ("OK  ", t, true),
        Outcome::Fail(t) => ("FAIL", t, false),
        Outcome::Skip(t) => ("SKIP", t, true),
    };
    println!("{tag} {name:<10} {text}");
    ok
}

/// Parses chrony's `System time : 0.000012345 seconds slow of NTP time`.
fn chrony_offset_ms(text: &str) -> Option<f64> {
    let l = text
        .lines()
        .find(|l| l.trim_start().starts_with("System time"))?;
    let v = l.split(':').nth(1)?.split_whitespace().next()?;
    v.parse::<f64>().ok().map(|s| s * 1000.0)
}

fn clock(max_ms: f64) -> Outcome {
    if let Ok(o) = Command::new("chronyc").arg("tracking").output() {
        if o.status.success() {
            let text = String::from_utf8_lossy(&o.stdout);
            return match chrony_offset_ms(&text) {
                Some(ms) if ms.abs() < max_ms => Outcome::Ok(format!("chrony offset {ms:.3} ms")),
                Some(ms) => Outcome::Fail(format!(
                    "chrony offset {ms:.3} ms > {max_ms} ms: check `chronyc sources`, then `chronyc makestep`"
                )),
                None => Outcome::Fail("cannot read `chronyc tracking`: is chronyd running? (systemctl enable --now chrony)".into()),
            };
        }
    }
    if let Ok(o) = Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .output()
    {
        if o.status.success() {
            return if String::from_utf8_lossy(&o.stdout).trim() == "yes" {
                Outcome::Ok("timedatectl: NTP synchronized (offset not reported; install chrony to measure it)".into())
            } else {
                Outcome::Fail("timedatectl: NTP not synchronized: apt install chrony && systemctl enable --now chrony".into())
            };
        }
    }
    Outcome::Fail(
        "no chronyc or timedatectl: apt install chrony && systemctl enable --now chrony (the seed wants < 10 ms)".into(),
    )
}

fn config(path: &Path) -> Outcome {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return Outcome::Fail(format!(
                "{}: {e}: create it (oracle executor --check-config --models DIR adds every model's symbol)",
                path.display()
            ));
        }
    };
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return Outcome::Fail(format!("{}: not JSON: {e}", path.display())),
    };
    match oracle_executor::config::from_value(&v) {
        Ok(c) => {
            let enabled = c.symbols.values().filter(|s| s.enabled).count();
            Outcome::Ok(format!(
                "{}: {} symbols, {enabled} enabled",
                path.display(),
                c.symbols.len()
            ))
        }
        Err(errs) => Outcome::Fail(format!(
            "{}: {}",
            path.display(),
            errs.iter()
                .map(|e| format!("{}: {}", e.key, e.msg))
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}

fn models(dir: &Path) -> Vec<(String, Outcome)> {
    let mut zips: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(e) => e
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "zip"))
            .collect(),
        Err(e) => {
            return vec![(
                "models".into(),
                Outcome::Fail(format!("{}: {e}: pass --models DIR", dir.display())),
            )];
        }
    };
    zips.sort();
    if zips.is_empty() {
        return vec![(
            "models".into(),
            Outcome::Fail(format!("no *.zip in {}", dir.display())),
        )];
    }
    zips.iter()
        .map(|z| {
            let o = match oracle_model::load_model(z) {
                Ok(m) => Outcome::Ok(format!(
                    "{} ({} {}, window {})",
                    z.display(),
                    m.metadata.symbol_clean,
                    m.metadata.timeframe,
                    m.metadata.window
                )),
                Err(e) => Outcome::Fail(format!(
                    "{e}: retrain or re-export this zip, or move it out of the folder"
                )),
            };
            ("model".to_string(), o)
        })
        .collect()
}

fn secrets(path: &Path) -> Outcome {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o007 != 0 {
                Outcome::Fail(format!(
                    "{} mode {mode:o} is readable by others: chmod 600 {}",
                    path.display(),
                    path.display()
                ))
            } else {
                Outcome::Ok(format!("{} mode {mode:o}", path.display()))
            }
        }
        Err(e) => Outcome::Fail(format!(
            "{}: {e}: copy deploy/secrets.env.example there and chmod 600 it",
            path.display()
        )),
    }
}

fn disk(dir: &Path, min_mib: u64) -> Outcome {
    let probe = if dir.exists() { dir } else { Path::new(".") };
    let out = Command::new("df").arg("-Pk").arg(probe).output();
    let free_kib = out.ok().and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let l = text.lines().nth(1)?.to_string();
        l.split_whitespace().nth(3)?.parse::<u64>().ok()
    });
    match free_kib {
        Some(k) if k / 1024 >= min_mib => {
            Outcome::Ok(format!("{}: {} MiB free", probe.display(), k / 1024))
        }
        Some(k) => Outcome::Fail(format!(
            "{}: {} MiB free < {min_mib} MiB: free space or move the state folder",
            probe.display(),
            k / 1024
        )),
        None => Outcome::Fail(format!(
            "cannot read free space of {} (df -Pk)",
            probe.display()
        )),
    }
}

fn tls(endpoint: &str, ca: Option<&Path>) -> Outcome {
    let host = endpoint
        .rsplit_once(':')
        .map_or(endpoint, |(h, _)| h)
        .to_string();
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(p) => {
            let pem = match std::fs::read(p) {
                Ok(b) => b,
                Err(e) => return Outcome::Fail(format!("--ca {}: {e}", p.display())),
            };
            for c in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
                let _ = roots.add(c);
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    let cfg = match cfg {
        Ok(c) => Arc::new(c),
        Err(e) => return Outcome::Fail(format!("TLS setup: {e}")),
    };
    let name = match rustls::pki_types::ServerName::try_from(host.clone()) {
        Ok(n) => n,
        Err(e) => return Outcome::Fail(format!("{host}: {e}")),
    };
    let addr = match endpoint.to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(a) => a,
        None => {
            return Outcome::Fail(format!(
                "{endpoint}: cannot resolve: check DNS and the host name"
            ));
        }
    };
    let mut sock = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Fail(format!(
                "{endpoint}: {e}: check the firewall / egress rules"
            ));
        }
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
    let mut conn = match rustls::ClientConnection::new(cfg, name) {
        Ok(c) => c,
        Err(e) => return Outcome::Fail(format!("TLS: {e}")),
    };
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            return Outcome::Fail(format!("{endpoint}: TLS handshake failed: {e}"));
        }
    }
    let _ = conn.writer().flush();
    let _ = sock.read(&mut [0u8; 0]);
    Outcome::Ok(format!(
        "{endpoint}: TLS handshake ok ({:?})",
        conn.protocol_version()
            .map_or_else(String::new, |v| format!("{v:?}"))
    ))
}

/// Runs the checks; exit code 0 when none failed.
pub fn run(args: &DoctorArgs) -> i32 {
    let mut ok = true;
    ok &= line("clock", &clock(args.max_offset_ms));
    ok &= line("config", &config(&args.config));
    for (n, o) in models(&args.models) {
        ok &= line(&n, &o);
    }
    ok &= line("secrets", &secrets(&args.secrets));
    ok &= line("disk", &disk(&args.state, args.min_free_mib));
    let t = match &args.broker {
        Some(b) => tls(b, args.ca.as_deref()),
        None => Outcome::Skip("no --broker given: TLS reachability not checked".into()),
    };
    ok &= line("broker", &t);
    println!(
        "{}",
        if ok {
            "doctor: all checks passed"
        } else {
            "doctor: some checks FAILED (fixes above)"
        }
    );
    i32::from(!ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chrony_offsets() {
        let t = "Reference ID    : A9FEA97B (169.254.169.123)\nSystem time     : 0.000012345 seconds slow of NTP time\n";
        assert_eq!(
            chrony_offset_ms(t).map(|v| (v * 1e6).round()),
            Some(12345.0)
        );
        assert_eq!(chrony_offset_ms("nothing"), None);
    }
}
